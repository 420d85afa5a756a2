"""The study plan (embaug.plan.StudyPlan) without Snakemake: folders, model paths, each job's settings,
the tables' cells, the figures' inputs, MTEB planning, the default targets, and the config errors it
names; and that it derives everything without changing the config."""

from __future__ import annotations

import copy
import json

import pytest
from test_config_checks import SCHEMA, with_defaults
from test_variants_workflow import variants_config
from test_workflow import test_config

from embaug.config_checks import ConfigError
from embaug.plan import StudyPlan, study_name
from embaug.plan.shell import quoted, repeated
from embaug.plan.sizing import JobSizing

R = "results/test"


def study(config: dict | None = None) -> StudyPlan:
    return StudyPlan(with_defaults(config or test_config()), SCHEMA, "test")


def test_the_test_study_targets_its_tables_scores_maps_and_figures():
    plan = study()
    models = ("tiny", "tiny__bbc__dropout", "tiny__bbc__crops")
    tables = ("table2_knn", "table2_knn_cosine", "table2_linear")  # kNN by both metrics, linear probe
    expected = {f"{R}/tables/{table}.{ext}" for table in tables for ext in ("csv", "md")}
    expected |= {f"{R}/scores/{family}/{m}/bbc.csv" for family in ("knn", "linear") for m in models}
    expected |= {f"{R}/tsne/{m}/bbc.png" for m in models}
    expected |= {f"{R}/figures/figure2_tsne_bbc.png", f"{R}/figures/figure4_layers_knn_bbc.png"}
    expected |= {f"{R}/figures/loss/tiny__bbc__{a}.png" for a in ("dropout", "crops")}
    expected |= {f"{R}/figures/figure1_training_curves.png"}  # training.eval_every is on
    assert set(plan.targets) == expected
    assert plan.tables.vs_paper_targets(plan.targets, ["table2_knn", "table1_mteb"]) == [
        f"{R}/tables/table2_knn_vs_paper.csv",
        f"{R}/tables/table2_knn_vs_paper.md",
    ]


def test_the_plan_derives_and_never_writes_the_config():
    config = test_config()
    config["embedding"]["dtype"] = None
    config["precision"] = "bfloat16"
    config["mteb"].update(layer_tasks="all", blocks={"sts": ["STS16"], "retrieval": ["SciFact"]})
    config["models"]["packaged"] = {"source": "package:json/model"}
    config = with_defaults(config)
    unchanged = copy.deepcopy(config)
    plan = StudyPlan(config, SCHEMA, "test")
    assert plan.embedding_dtype == "float16"  # stored embeddings follow precision
    assert plan.mteb.layer_tasks == ["STS16", "SciFact"]  # "all": every task of the blocks
    assert plan.model_path("packaged").endswith("/json/model")  # the installed package's folder
    assert config == unchanged


def test_model_paths_and_the_files_a_model_depends_on():
    config = test_config()
    config["models"]["hub"] = {"source": "org/name"}
    config["models"]["pinned"] = {"source": "org/pinned", "revision": "a" * 40}
    config["models"]["mlm"] = {
        "source": "pretrained:tiny",
        "pretraining": {"corpora": ["bbc"], "steps": 2},
    }
    plan = study(config)
    assert plan.model_path("tiny") == f"{R}/base_models/tiny"
    assert plan.model_path("tiny__bbc__crops") == f"{R}/models/tiny__bbc__crops"
    assert plan.model_path("mlm") == f"{R}/pretrained/mlm"
    assert plan.model_path("pinned") == f"data/cache/hub/models--org--pinned/snapshots/{'a' * 40}"
    assert plan.hub_model_name("org--pinned", "a" * 40) == "pinned"
    assert (plan.model_path("hub"), plan.model_files("hub")) == ("org/name", [])  # an unpinned hub id
    assert plan.model_files("mlm") == [f"{R}/pretrained/mlm"]
    assert plan.model_origin("tiny__bbc__crops") == "tiny"


def test_a_run_s_training_settings_merge_config_dataset_augmentation_and_overrides():
    config = variants_config()
    config["datasets"]["bbc"]["training"] = {"batch_size": 8}
    plan = study(config)
    settings = json.loads(plan.train_settings("tiny__bbc__crops__mask-0.2"))
    assert settings["batch_size"] == 8  # the dataset's
    assert settings["mask_fraction"] == 0.2  # the run's override
    assert settings["augmentation"] == "crops" and settings["device"] == "cpu"
    assert "checkpoint_every" not in settings  # how a run is carried out, not what it trains
    assert None not in settings.values()  # unset options are left to TrainSettings' defaults
    every = plan.config["training"]["checkpoint_every"]
    expected = f"--checkpoint-dir {R}/checkpoints/r --checkpoint-every {every}"
    assert plan.checkpoint_args("r", f"{R}/models/r") == expected


def test_table_s4_and_figure3_runs_are_planned_apart_from_the_core_runs():
    config = test_config()
    config["table_s4"] = {"enabled": True}
    config["figure3"] = {"enabled": True, "evaluate_on": "bbc", "train_on": ["bbc"]}
    plan = study(config)
    assert plan.core_runs == ["tiny__bbc__dropout", "tiny__bbc__crops"]
    assert plan.runs["tiny__bbc.train__crops"]["settings_of"] == "bbc"
    assert plan.figure3_runs == ["tiny__bbc.match-bbc__crops"]
    figure3 = plan.runs["tiny__bbc.match-bbc__crops"]
    assert figure3["eval_corpora"] == figure3["scored_on"] == ["bbc"]
    assert figure3["settings"]["eval_docs"] == 0
    assert json.loads(plan.train_settings("tiny__bbc.match-bbc__crops"))["eval_metric"] == "euclidean"
    assert plan.run_checks("tiny__bbc.train__crops") == ["data/test/checks/bbc.json"]
    assert [cell[1] for cell in plan.tables.s4_cells()] == ["base", "dropout", "crops"]
    assert f"{R}/tables/tableS4.csv" in plan.targets
    assert f"{R}/figures/figure3_curves.png" in plan.targets


def test_table_cells_read_the_score_files_of_their_models():
    config = test_config()
    config["evaluation"] = {"knn": {"metrics": ["euclidean", "cosine"]}}
    config["table_s7"] = {"enabled": True, "poolings": ["mean", "cls"]}
    plan = study(config)
    assert plan.tables.score_tables() == ["table2_knn", "table2_knn_cosine", "table2_linear"]
    assert plan.tables.table2_cells("table2_knn_cosine")[1] == (
        "bbc",
        "dropout",
        f"{R}/scores/knn/tiny__bbc__dropout/bbc.csv",
    )
    s7 = plan.tables.s7_cells()
    assert (s7[0][-1], s7[1][-1]) == (
        f"{R}/scores/knn/tiny/bbc.csv",  # the configured pooling: the usual kNN scores
        f"{R}/scores/knn_pooled/cls/tiny/bbc.csv",
    )
    with pytest.raises(ConfigError, match="tableS4.csv needs table_s4.enabled"):
        plan.tables.s4_cells()


def test_mteb_rows_blocks_and_per_layer_plan():
    config = test_config()
    config["mteb"]["enabled"] = True
    plan = study(config)
    assert plan.mteb.rows("table1_mteb") == [
        ("tiny", "tiny"),
        ("tiny + dropout", "tiny__bbc__dropout"),
        ("tiny + crops", "tiny__bbc__crops"),
    ]
    assert plan.mteb.layer_plan == ((0, 2), ["tiny", "tiny__bbc__dropout", "tiny__bbc__crops"])
    assert plan.mteb.local_args("STS16") == f"--local-path {quoted(config['mteb_tasks']['STS16']['path'])}"
    assert plan.mteb.encoding("tiny") == "--max-length 512 --no-normalize"  # as the authors'
    assert plan.mteb.encoding("tiny__bbc__crops") == "--max-length 384 --normalize"  # exported runs
    assert f"{R}/figures/figure4c_mteb_layers.png" in plan.targets


def test_figure_arguments_are_quoted_shell_words():
    plan = study()
    assert plan.figures.figure2_args("bbc").startswith(
        f"--panel base {R}/tsne/tiny/bbc.parquet {R}/scores/knn/tiny/bbc.csv --panel dropout"
    )
    assert repeated("--cell", [("a b", "c")]) == "--cell 'a b' c"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"study": {"train_on": ["nosuch"]}},
            "config: study.train_on names 'nosuch', which is not defined under datasets",
        ),
        ({"table_s3": {"datasets": ["nosuch"]}}, "config: table_s3.datasets names 'nosuch'"),
        ({"table_s4": {"augmentations": ["nosuch"]}}, "config: table_s4.augmentations names 'nosuch'"),
        (
            {"mteb": {"tables": {"mine": {"models": ["nosuch"]}}}},
            "config: mteb.tables.mine names model 'nosuch'",
        ),
        ({"mteb": {"layer_models": ["nosuch"]}}, "config: mteb.layer_models names 'nosuch'"),
        ({"evaluation": {"tsne": {"datasets": ["nosuch"]}}}, "config: 'nosuch' (evaluation.tsne.datasets)"),
        (
            {
                "figure3": {
                    "enabled": True,
                    "train_on": ["bbc"],
                    "sentence_delta": {"train_on": "other", "step": 1},
                }
            },
            "config: figure3.sentence_delta.train_on 'other' is not trained on",
        ),
    ],
)
def test_a_name_the_plan_cannot_find_fails_naming_its_config_key(change, message):
    config = test_config()
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value}
    with pytest.raises(ConfigError) as error:
        study(config)
    assert str(error.value).startswith(message)


def test_the_study_name_comes_from_the_config_or_its_file():
    assert study_name({"study": {"name": "mine"}}, ["config/x.yaml"]) == "mine"
    assert study_name({"study": {}}, ["config/my_corpus.yaml"]) == "my_corpus"
    with pytest.raises(ConfigError, match="cannot name a folder"):
        study_name({"study": {}}, ["config/my corpus.yaml"])


def test_job_sizes_use_the_run_s_base_model_shape():
    sizing = JobSizing(study(), gpu=False)
    shape = sizing.model_shape("tiny__bbc__crops")
    assert (shape.layers, shape.dim) == (2, 32)
    assert sizing.model_shape("tiny") == shape
