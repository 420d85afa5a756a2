"""The study plan (embaug.plan) of .test/config.yaml and its variant overlays, without Snakemake:
the runs, their names and settings, and the config errors it names."""

from __future__ import annotations

import copy

import pytest
from test_config_checks import SCHEMA, with_defaults
from test_variants_workflow import VARIANT_RUNS, variants_config
from test_workflow import test_config

from embaug.config_checks import ConfigError
from embaug.plan import plan_runs, run_id, scratch_runs


def spec(model: str, augmentation: str, **overrides) -> dict:
    return {"model": model, "dataset": "bbc", "augmentation": augmentation, "overrides": overrides}


def test_the_test_study_is_its_core_runs():
    plan = plan_runs(with_defaults(test_config()), SCHEMA)
    assert plan.runs == {
        "tiny__bbc__dropout": spec("tiny", "dropout"),
        "tiny__bbc__crops": spec("tiny", "crops"),
    }
    assert plan.core_runs == ["tiny__bbc__dropout", "tiny__bbc__crops"]
    assert plan.sweeps == []
    assert (plan.sweep_model, plan.sweep_on) == ("tiny", "bbc")


def test_every_variant_family_adds_its_runs():
    config = with_defaults(variants_config())
    unchanged = copy.deepcopy(config)
    plan = plan_runs(config, SCHEMA)
    assert set(plan.runs) == VARIANT_RUNS
    assert plan.core_runs == ["tiny__bbc__dropout", "tiny__bbc__crops"]  # seed 42 is the default
    assert plan.runs["tiny__bbc__crops__seed-1"] == spec("tiny", "crops", seed=1)
    assert plan.runs["tiny__bbc__crops__mask-0.2"] == spec("tiny", "crops", mask_fraction=0.2)
    assert plan.runs["tiny_bare__bbc__crops__ep-2"] == spec("tiny_bare", "crops", epochs=2)
    sweeps = {sweep.setting: sweep for sweep in plan.sweeps}
    assert list(sweeps) == [
        "learning_rate",
        "temperature",
        "pooling",
        "sentences",
        "mask_fraction",
        "freeze_layers",
    ]
    assert sweeps["pooling"].points == [("mean", {"pooling": "mean"}), ("cls", {"pooling": "cls"})]
    assert sweeps["pooling"].augmentations == ["dropout", "crops"]
    assert sweeps["mask_fraction"].augmentations == ["crops"]
    assert config == unchanged  # the plan derives, never writes


def test_a_sweep_entry_settings_give_each_point_its_overrides():
    config = test_config()
    config["study"]["sweeps"] = {
        "sentences": {"values": [2, 4], "settings": {"batch_size": [8, 4], "epochs": 3}}
    }
    plan = plan_runs(with_defaults(config), SCHEMA)
    assert plan.sweeps[0].points == [
        (2, {"batch_size": 8, "epochs": 3, "sentences": 2}),
        (4, {"batch_size": 4, "epochs": 3, "sentences": 4}),
    ]
    # sentences 2 is the config's: the first point's name has no n- segment
    assert "tiny__bbc__crops__bs-8__ep-3" in plan.runs
    assert plan.runs["tiny__bbc__crops__n-4__bs-4__ep-3"] == spec(
        "tiny", "crops", sentences=4, batch_size=4, epochs=3
    )


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        (None, "tiny__bbc__crops"),
        ({"epochs": 10, "learning_rate": 1.0e-4}, "tiny__bbc__crops__lr-0.0001__ep-10"),  # segment order
        ({"learning_rate": 1.0e-3, "seed": 42}, "tiny__bbc__crops"),  # the defaults name nothing
        ({"seed": 1}, "tiny__bbc__crops__seed-1"),
        ({"pooling": "token:7"}, "tiny__bbc__crops__pool-token7"),
        ({"mask_fraction": 0.2, "batch_size": 16}, "tiny__bbc__crops__mask-0.2"),
    ],
)
def test_run_id_names_the_settings_that_differ(overrides, name):
    assert run_id(with_defaults(test_config()), "tiny", "bbc", "crops", overrides) == name


def test_run_id_default_batch_size_is_the_dataset_s():
    config = test_config()
    config["datasets"]["bbc"]["training"] = {"batch_size": 8}
    config = with_defaults(config)
    assert run_id(config, "tiny", "bbc", "crops", {"batch_size": 8}) == "tiny__bbc__crops"
    assert run_id(config, "tiny", "bbc", "crops", {"batch_size": 16}) == "tiny__bbc__crops__bs-16"


def test_scratch_runs_are_labelled_with_their_settings():
    assert scratch_runs(with_defaults(variants_config()), "bbc") == [
        ("tiny + crops (epochs 2)", "tiny__bbc__crops__ep-2"),
        ("tiny_bare + crops (epochs 2)", "tiny_bare__bbc__crops__ep-2"),
    ]


@pytest.mark.parametrize(
    ("study", "message"),
    [
        (
            {"sweeps": {"sentences": {"values": [1, 3], "settings": {"batch_size": [8]}}}},
            "config: study.sweeps.sentences.settings.batch_size has 1 values, "
            "study.sweeps.sentences.values 2: give one per value, or one for all",
        ),
        (
            {"sweeps": {"pooling": ["max"]}},
            "config: study.sweeps.pooling: 'max' is not a valid pooling (",
        ),
        (
            {"comparison_models": ["nosuch"]},
            "config: study.comparison_models names 'nosuch', which is not defined (defined: tiny)",
        ),
        (
            {"sweeps": {"temperature": [0.1]}, "sweep_on": "other"},
            "config: study.sweep_on names 'other', which is not defined (defined: bbc)",
        ),
        (
            {"from_scratch": {"tiny": {"epochs": 2}}, "train_on": []},
            "config: study.from_scratch needs study.train_on (the datasets to train on)",
        ),
    ],
)
def test_a_bad_variant_names_its_config_key(study, message):
    config = test_config()
    config["study"].update(study)
    with pytest.raises(ConfigError) as error:
        plan_runs(with_defaults(config), SCHEMA)
    assert str(error.value).startswith(message)
