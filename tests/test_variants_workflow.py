"""Run variants in the workflow: .test/config.yaml with the overlays of every family at once
(.test/seeds.yaml, sweeps.yaml, freeze.yaml, tableS6.yaml). Dry runs and bad configs here; the
whole study (65 jobs, about 10 minutes on 2 busy CPU cores) is one slow test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_workflow import REPO_ROOT, job_stats, output, snakemake, test_config

from embaug.store import EmbeddingStore

FAMILIES = ["seeds", "sweeps", "freeze", "tableS6"]
TARGETS = [
    "results/test/tables/seeds_knn.csv",
    "results/test/figures/figureS1_sweeps.png",
    "results/test/figures/figure4a_freeze.png",
    "results/test/tables/tableS6.csv",
]
VARIANT_RUNS = {
    "tiny__bbc__dropout", "tiny__bbc__crops",
    "tiny__bbc__dropout__seed-1", "tiny__bbc__crops__seed-1",
    "tiny__bbc__dropout__lr-0.003", "tiny__bbc__crops__lr-0.003",
    "tiny__bbc__dropout__tau-0.1", "tiny__bbc__crops__tau-0.1",
    "tiny__bbc__dropout__pool-cls", "tiny__bbc__crops__pool-cls",
    "tiny__bbc__dropout__n-3", "tiny__bbc__crops__n-3",
    "tiny__bbc__crops__mask-0.2",
    "tiny__bbc__crops__freeze-0", "tiny__bbc__crops__freeze-1",
    "tiny__bbc__crops__ep-2", "tiny_bare__bbc__crops__ep-2",
}  # fmt: skip


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` on ``base`` key by key, as Snakemake merges several --configfile files."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def variants_config() -> dict:
    config = test_config()
    for family in FAMILIES:
        config = merged(config, yaml.safe_load((REPO_ROOT / ".test" / f"{family}.yaml").read_text()))
    return config


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("variants_dry")
    result = snakemake(workdir, variants_config(), *TARGETS, "--dry-run", "--printshellcmds")
    assert result.returncode == 0, output(result)[-4000:]
    return output(result)


def test_every_family_expands_into_its_runs(dry_run):
    stats = job_stats(dry_run)
    assert stats["finetune"] == len(VARIANT_RUNS) == 17
    assert stats["init_model"] == 3  # tiny, tiny_bare, tiny_other
    assert stats["chunk"] == 2  # n2 and n3
    assert stats["seeds_table"] == 1 and stats["sweep_figure"] == 2 and stats["table_s6"] == 1
    trained = set(re.findall(r"--run (\S+)", dry_run))
    assert trained == VARIANT_RUNS


def test_baselines_are_columns_of_the_seeds_table_and_table_s6(tmp_path):
    config = merged(variants_config(), {"baselines": {"enabled": True}})
    result = snakemake(tmp_path, config, TARGETS[0], TARGETS[3], "--dry-run", "--printshellcmds")
    assert result.returncode == 0, output(result)[-4000:]
    (seeds,) = re.findall(r"embaug seeds-table .*", output(result))
    (table_s6,) = re.findall(r"embaug table .*tableS6.*", output(result))
    for baseline in ("tfidf", "tfidf_svd"):
        assert f"--cell bbc {baseline} - results/test/scores/baselines/{baseline}/bbc.csv" in seeds
        assert f"--cell bbc {baseline} results/test/scores/baselines/{baseline}/bbc.csv" in table_s6


def finetune_command(text: str, run: str) -> str:
    (line,) = re.findall(rf"embaug finetune .*--run {re.escape(run)} .*", text)
    return line


def test_overrides_reach_training_chunking_and_embedding(dry_run):
    def settings(run: str) -> dict:
        quoted = re.search(r"--settings '([^']*)'", finetune_command(dry_run, run)).group(1)
        return json.loads(quoted)

    default = settings("tiny__bbc__crops")
    assert "freeze_layers" not in default  # unset: left to TrainSettings' default (train everything)
    assert default["learning_rate"] == 1e-3 and default["seed"] == 42
    expected = {
        "tiny__bbc__crops__freeze-1": {"freeze_layers": 1},
        "tiny__bbc__crops__lr-0.003": {"learning_rate": 0.003},
        "tiny__bbc__crops__tau-0.1": {"temperature": 0.1},
        "tiny__bbc__crops__mask-0.2": {"mask_fraction": 0.2},
        "tiny__bbc__crops__pool-cls": {"pooling": "cls"},
        "tiny__bbc__crops__seed-1": {"seed": 1},
        "tiny_bare__bbc__crops__ep-2": {"epochs": 2},
        "tiny__bbc__crops__n-3": {},
    }
    for run, changed in expected.items():
        assert settings(run) == {**default, **changed}, run
    assert "--chunks data/test/chunks/bbc/n3.parquet" in finetune_command(dry_run, "tiny__bbc__crops__n-3")
    assert "--chunks data/test/chunks/bbc/n2.parquet" in finetune_command(dry_run, "tiny__bbc__crops")
    embeds = {m.group(1): m.group(0) for m in re.finditer(r"embaug embed .*--name (\S+) .*", dry_run)}
    assert "--pooling cls" in embeds["tiny__bbc__crops__pool-cls"]
    # the pooling panel's base model is embedded with each pooling too (Table S7's knn_pooled)
    cls_point = "--point pooling cls 'base, same pooling' results/test/scores/knn_pooled/cls/tiny/bbc.csv"
    assert cls_point in dry_run
    assert "--pooling mean" in embeds["tiny__bbc__crops__seed-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sweeps": {"learning_rate": [1.0e-3, -1]}},
            "study.sweeps.learning_rate: -1 is not a valid learning_rate",
        ),
        ({"sweeps": {"pooling": ["max"]}}, "study.sweeps.pooling: 'max' is not a valid pooling"),
        ({"comparison_models": ["nosuch"]}, "study.comparison_models names 'nosuch'"),
        (
            {"sweeps": {"sentences": {"values": [1, 3], "settings": {"batch_size": [8]}}}},
            "study.sweeps.sentences.settings.batch_size has 1 values, study.sweeps.sentences.values 2",
        ),
        (
            {"sweeps": {"sentences": {"values": [1], "settings": {"batch_size": 0}}}},
            "study.sweeps.sentences.settings.batch_size: 0 is not a valid batch_size",
        ),
        (
            {"sweeps": {"temperature": {"values": [0.1], "augmentations": ["nosuch"]}}},
            "study.sweep_augmentations",
        ),
    ],
)
def test_bad_variant_config_names_the_key(tmp_path, change, message):
    config = test_config()
    config["study"].update(change)
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert message in output(result), output(result)[-2000:]


def last_layer(workdir: Path, model: str) -> float:
    scores = pd.read_csv(workdir / "results" / "test" / "scores" / "knn" / model / "bbc.csv")
    chosen = scores[scores["metric"] == "euclidean"]
    return 100 * float(chosen.loc[chosen["layer"].idxmax(), "accuracy"])


@pytest.mark.slow
def test_variant_tables_end_to_end(tmp_path):
    config = variants_config()
    result = snakemake(tmp_path, config, *TARGETS, timeout=3600)
    assert result.returncode == 0, output(result)[-6000:]
    tables = tmp_path / "results" / "test" / "tables"

    seeds = pd.read_csv(tables / "seeds_knn.csv").set_index("dataset")
    assert seeds.index.tolist() == ["bbc", "average"]
    for augmentation in ("dropout", "crops"):
        values = [last_layer(tmp_path, f"tiny__bbc__{augmentation}{s}") for s in ("", "__seed-1")]
        assert seeds.loc["bbc", f"{augmentation} mean"] == pytest.approx(np.mean(values), abs=0.01)
        assert seeds.loc["bbc", f"{augmentation} sd"] == pytest.approx(np.std(values, ddof=1), abs=0.01)
        assert seeds.loc["bbc", f"{augmentation} n"] == 2
    assert seeds.loc["bbc", "base mean"] == pytest.approx(last_layer(tmp_path, "tiny"), abs=0.01)
    assert seeds.loc["bbc", "crops - dropout n"] == 2
    assert "± " in (tables / "seeds_knn.md").read_text()

    s6 = pd.read_csv(tables / "tableS6.csv").set_index("dataset")
    columns = {
        "tiny": "tiny",
        "tiny + dropout": "tiny__bbc__dropout",
        "tiny + crops": "tiny__bbc__crops",
        "tiny_other": "tiny_other",
        "tiny + crops (epochs 2)": "tiny__bbc__crops__ep-2",
        "tiny_bare + crops (epochs 2)": "tiny_bare__bbc__crops__ep-2",
    }
    assert s6.index.tolist() == ["bbc", "average"] and list(s6.columns) == list(columns)
    for column, model in columns.items():
        assert s6.loc["bbc", column] == pytest.approx(last_layer(tmp_path, model), abs=0.01)

    sweeps = pd.read_csv(tables / "figureS1_sweeps.csv")
    assert list(sweeps.columns) == [
        "setting", "value", "dropout", "crops", "base, same pooling", "base (not fine-tuned)"
    ]  # fmt: skip
    base_pooled = sweeps[sweeps["setting"] == "pooling"].set_index("value")["base, same pooling"]
    cls = pd.read_csv(tmp_path / "results/test/scores/knn_pooled/cls/tiny/bbc.csv")
    cls = cls.query("metric == 'euclidean'")
    assert base_pooled.to_dict() == pytest.approx(
        {"mean": last_layer(tmp_path, "tiny"), "cls": 100 * cls["accuracy"].iloc[-1]}, abs=0.01
    )
    assert sweeps["setting"].tolist() == [s for s in ("learning_rate", "temperature", "pooling", "sentences",
                                                      "mask_fraction") for _ in range(2)]  # fmt: skip
    row = sweeps[(sweeps["setting"] == "temperature") & (sweeps["value"] == "0.1")].iloc[0]
    assert row["crops"] == pytest.approx(last_layer(tmp_path, "tiny__bbc__crops__tau-0.1"), abs=0.01)
    assert pd.isna(sweeps[sweeps["setting"] == "mask_fraction"]["dropout"]).all()
    freeze = pd.read_csv(tables / "figure4a_freeze.csv")
    assert freeze["value"].tolist() == [0, 1]
    assert freeze["crops"].tolist() == pytest.approx(
        [last_layer(tmp_path, f"tiny__bbc__crops__freeze-{k}") for k in (0, 1)], abs=0.01
    )
    assert freeze["crops, nothing frozen"].tolist() == pytest.approx(
        [last_layer(tmp_path, "tiny__bbc__crops")] * 2
    )
    for name in ("figureS1_sweeps", "figure4a_freeze"):
        assert (tmp_path / "results" / "test" / "figures" / f"{name}.png").stat().st_size > 10_000

    # the frozen run kept the base model's embedding layer and first block bit for bit
    base = load_file(str(tmp_path / "results/test/base_models/tiny/model.safetensors"))
    frozen = load_file(str(tmp_path / "results/test/models/tiny__bbc__crops__freeze-1/model.safetensors"))
    for name, weight in base.items():
        same = torch.equal(weight, frozen[name])
        assert same == name.startswith(("embeddings.", "encoder.layer.0.", "pooler.")), name
    run = json.loads((tmp_path / "results/test/models/tiny_bare__bbc__crops__ep-2/run.json").read_text())
    assert run["settings"]["epochs"] == 2 and run["steps"] == 2 * -(-run["training_documents"] // 16)
    assert EmbeddingStore(tmp_path / "results/test/embeddings/tiny_bare__bbc__crops__ep-2/bbc").layers == [0]
    again = snakemake(tmp_path, config, *TARGETS, "--dry-run")
    assert "Nothing to be done" in output(again)


def scratch_config(**mteb) -> dict:
    """.test/config.yaml with .test/tableS6.yaml: a comparison model and two from-scratch runs."""
    overlay = yaml.safe_load((REPO_ROOT / ".test" / "tableS6.yaml").read_text())
    config = merged(test_config(), overlay)
    config["mteb"] = {**config["mteb"], "enabled": True, **mteb}
    return config


SCRATCH_TARGETS = ["results/test/tables/scratch_mteb.csv", "results/test/figures/figure4_layers_knn_bbc.png"]
SCRATCH_ROWS = {
    "tiny": "tiny",
    "tiny + dropout": "tiny__bbc__dropout",
    "tiny + crops": "tiny__bbc__crops",
    "tiny + crops (epochs 2)": "tiny__bbc__crops__ep-2",
    "tiny_bare + crops (epochs 2)": "tiny_bare__bbc__crops__ep-2",
}


def test_section_3_4_table_and_figure_4b_references_are_planned(tmp_path):
    blocks = {"sts": ["STS16"], "classification": ["Banking77Classification"]}
    result = snakemake(tmp_path, scratch_config(blocks=blocks), *SCRATCH_TARGETS, "--dry-run", "-p")
    assert result.returncode == 0, output(result)[-4000:]
    text = output(result)
    (table,) = re.findall(r"embaug mteb-table .*", text)
    rows = re.findall(r"--row ('[^']*'|\S+) results/test/mteb/(\S+)", table)
    assert [(label.strip("'"), model) for label, model in rows] == list(SCRATCH_ROWS.items())
    assert """--blocks '{"sts": ["STS16"]}'""" in table  # Section 3.4: without classification
    assert "Banking77Classification" not in text  # nor are those tasks run for it
    (figure,) = re.findall(r"embaug figure-layers .*", text)
    references = re.findall(r"--reference (\S+) ", figure)
    assert references == ["tiny_other", "tiny__bbc__crops__ep-2", "tiny_bare__bbc__crops__ep-2"]
    assert re.findall(r"--model (\S+) ", figure) == ["tiny", "tiny__bbc__dropout", "tiny__bbc__crops"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"models": ["tiny"], "blocks": ["nosuch"]}, "mteb.tables.mine.blocks names 'nosuch'"),
        ({"models": ["tiny"], "from_scratch": True}, "mteb.tables.mine.from_scratch needs its train_on"),
    ],
)
def test_bad_mteb_table_names_the_key(tmp_path, table, message):
    result = snakemake(tmp_path, scratch_config(tables={"mine": table}), "--dry-run")
    assert result.returncode != 0
    assert message in output(result), output(result)[-2000:]


@pytest.mark.slow
def test_section_3_4_table_and_figure_4b_on_the_test_data(tmp_path):
    result = snakemake(tmp_path, scratch_config(), *SCRATCH_TARGETS, timeout=3600)
    assert result.returncode == 0, output(result)[-6000:]
    results = tmp_path / "results" / "test"
    table = pd.read_csv(results / "tables" / "scratch_mteb.csv").set_index("model")
    assert table.index.tolist() == list(SCRATCH_ROWS)
    assert list(table.columns) == ["STS16", "sts (mean)", "block average"]
    assert table["STS16"].between(-100, 100).all() and table["STS16"].nunique() == len(SCRATCH_ROWS)
    curves = pd.read_csv(results / "figures" / "figure4_layers_knn_bbc.csv")
    curves = curves[curves["metric"] == "euclidean"]
    assert set(curves["model"]) == {"tiny", "tiny__bbc__dropout", "tiny__bbc__crops", "tiny_other",
                                    "tiny__bbc__crops__ep-2", "tiny_bare__bbc__crops__ep-2"}  # fmt: skip
    # the bare embedding layer has one layer; the from-scratch BERT all three
    assert curves.groupby("model")["layer"].apply(list).to_dict()["tiny_bare__bbc__crops__ep-2"] == [0]
    assert last_layer(tmp_path, "tiny__bbc__crops__ep-2") == pytest.approx(
        100 * curves.query("model == 'tiny__bbc__crops__ep-2'")["accuracy"].iloc[-1], abs=0.01
    )
