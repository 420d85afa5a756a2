"""Rule pretrain in the workflow: a pretrained base that `models:` names, and what re-runs.

The .test study with a second base, `tiny_mlm: {source: pretrained:tiny}`, runs once per module
to two kNN score files (one run of each base, about a minute on 2 CPU cores); the other tests are
dry runs.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_variants_workflow import last_layer
from test_workflow import job_stats, output, reasons, snakemake, test_config

PRETRAINING = {
    "corpora": ["bbc"], "steps": 6, "batch_size": 16, "max_length": 64, "heldout_docs": 16,
    "eval_every": 3, "checkpoint_every": 2,
}  # fmt: skip
TARGETS = [
    "results/test/scores/knn/tiny__bbc__crops/bbc.csv",
    "results/test/scores/knn/tiny_mlm__bbc__crops/bbc.csv",
    "results/test/figures/pretrain_loss/tiny_mlm.png",
]
DOWNSTREAM = {"pretrain", "finetune", "embed", "knn", "figure_pretrain_loss"}


def pretrain_config() -> dict:
    config = test_config()
    config["models"]["tiny_mlm"] = {"source": "pretrained:tiny", "pretraining": dict(PRETRAINING)}
    config["study"].update(models=["tiny", "tiny_mlm"], augmentations=["crops"])
    return config


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``(workdir, config)`` after the run to TARGETS."""
    config = pretrain_config()
    workdir = tmp_path_factory.mktemp("pretrain_study")
    result = snakemake(workdir, config, *TARGETS)
    assert result.returncode == 0, output(result)[-6000:]
    stats = job_stats(output(result))
    assert stats["pretrain"] == 1 and stats["init_model"] == 1 and stats["finetune"] == 2, stats
    return workdir, config


def test_the_run_fine_tunes_the_pretrained_base(study):
    workdir, _ = study
    base = workdir / "results" / "test" / "pretrained" / "tiny_mlm"
    record = json.loads((base / "run.json").read_text())
    assert record["base_model"] == "results/test/base_models/tiny" and record["settings"]["steps"] == 6
    run = json.loads(
        (workdir / "results" / "test" / "models" / "tiny_mlm__bbc__crops" / "run.json").read_text()
    )
    assert run["base_model"] == "results/test/pretrained/tiny_mlm"
    assert (workdir / "results" / "test" / "figures" / "pretrain_loss" / "tiny_mlm.csv").exists()
    assert not (
        workdir / "results" / "test" / "checkpoints" / "pretrained" / "tiny_mlm"
    ).exists()  # removed when done


def test_the_pretraining_steps_figure_puts_each_base_at_its_steps(study):
    workdir, config = study
    result = snakemake(workdir, config, "results/test/figures/pretraining_steps_bbc.png")
    assert result.returncode == 0, output(result)[-4000:]
    table = pd.read_csv(workdir / "results" / "test" / "tables" / "pretraining_steps_bbc.csv")
    assert table["value"].tolist() == [0, 6]  # tiny as initialised, tiny_mlm after 6 steps
    for steps, model in ((0, "tiny"), (6, "tiny_mlm")):
        row = table[table["value"] == steps].iloc[0]
        assert row["base"] == pytest.approx(last_layer(workdir, model), abs=0.01)
        assert row["crops"] == pytest.approx(last_layer(workdir, f"{model}__bbc__crops"), abs=0.01)
    assert (workdir / "results" / "test" / "figures" / "pretraining_steps_bbc.png").stat().st_size > 10_000


def test_changing_a_pretraining_setting_reruns_pretraining_and_what_follows_only(study):
    workdir, config = study
    changed = json.loads(json.dumps(config))
    changed["models"]["tiny_mlm"]["pretraining"]["learning_rate"] = 1.0e-3
    result = snakemake(workdir, changed, *TARGETS, "--dry-run")
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    stats = job_stats(text)
    assert set(stats) == DOWNSTREAM, stats
    assert stats["finetune"] == 1 and stats["embed"] == 1 and stats["knn"] == 1  # tiny_mlm's run only
    assert "output: results/test/models/tiny_mlm__bbc__crops" in text
    assert "output: results/test/models/tiny__bbc__crops" not in text  # the other base's run stays
    why = reasons(text)
    assert why.get("params have changed since last execution") == {"pretrain"}, why
    direct = set().union(*[rules for reason, rules in why.items() if "updated by another job" not in reason])
    assert direct == {"pretrain"}, why


def test_changing_the_checkpoint_interval_reruns_nothing(study):
    workdir, config = study
    changed = json.loads(json.dumps(config))
    changed["models"]["tiny_mlm"]["pretraining"]["checkpoint_every"] = 5
    result = snakemake(workdir, changed, *TARGETS, "--dry-run")
    assert result.returncode == 0, output(result)[-3000:]
    assert "Nothing to be done" in output(result)


def test_the_settings_reach_the_stage_quoted(study):
    workdir, config = study
    result = snakemake(workdir, config, *TARGETS, "--dry-run", "--printshellcmds", "--forcerun", "pretrain")
    text = output(result)
    command = "embaug pretrain --model results/test/base_models/tiny --corpus data/test/raw/bbc.parquet"
    assert f"{command} --settings '{{" in text
    assert "--checkpoint-dir results/test/checkpoints/pretrained/tiny_mlm --checkpoint-every 2" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": "pretrained:nosuch"},
            "models.tiny_mlm.source: pretrained:nosuch names a model that is not",
        ),
        ({"pretraining": {"corpora": ["nosuch"]}}, "models.tiny_mlm.pretraining.corpora names 'nosuch'"),
        ({"pretraining": {"corpora": ["bbc"], "stepz": 3}}, "stepz"),
        ({"pretraining": None}, "models.tiny_mlm.pretraining: required for source: pretrained:tiny"),
        ({"source": "pretrained:tiny_mlm"}, "models.tiny_mlm.source: pretrained: sources form a loop"),
        (
            {"pretraining": {"corpora": ["bbc"], "mask_replace_prob": 0.95}},
            "models.tiny_mlm.pretraining: mask_replace_prob + random_replace_prob is 1.05",
        ),
    ],
)
def test_a_bad_pretraining_entry_fails_the_dry_run_naming_the_key(tmp_path, change, message):
    config = pretrain_config()
    config["models"]["tiny_mlm"].update(change)
    config["models"]["tiny_mlm"] = {k: v for k, v in config["models"]["tiny_mlm"].items() if v is not None}
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert message in output(result), output(result)[-2000:]
