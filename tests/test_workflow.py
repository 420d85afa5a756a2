"""The Snakemake workflow end to end on .test/config.yaml, its rerun logic, and bad configs.

The study runs once per module (about 1.5-3 minutes on 2 CPU cores); every other test here is
a dry run or a failing run that stops early.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from embaug.store import EmbeddingStore

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO_ROOT / ".test" / "config.yaml"
MODELS = ["tiny", "tiny__bbc__dropout", "tiny__bbc__crops"]
COLUMNS = {"tiny": "base", "tiny__bbc__dropout": "dropout", "tiny__bbc__crops": "crops"}
UPSTREAM_OF_SCORES = {"download", "chunk", "init_model", "finetune", "embed", "linear"}


def test_config() -> dict:
    """.test/config.yaml with its (repo-relative) dataset sources and MTEB task files made absolute."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for spec, key in [(s, "source") for s in config["datasets"].values()] + [
        (s, "path") for s in config["mteb_tasks"].values()
    ]:
        if not Path(spec[key]).is_absolute():
            spec[key] = str((REPO_ROOT / spec[key]).resolve())
    return config


test_config.__test__ = False  # a helper, not a test


def snakemake(
    workdir: Path, config: dict, *args: str, timeout: int = 900, snakefile: Path = REPO_ROOT / "Snakefile"
) -> subprocess.CompletedProcess:
    """Run the repository's workflow (or a copy's ``snakefile``) in ``workdir`` with ``config``
    (written next to it).

    A study without a name is named `test`, as .test/config.yaml: its files are in results/test/.
    """
    if isinstance(config.get("study"), dict):
        config = {**config, "study": {"name": "test", **config["study"]}}
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def job_stats(text: str) -> Counter:
    """The 'Job stats' table of a (dry) run: rule -> job count (without the total)."""
    match = re.search(r"Job stats:\njob\s+count\n[-\s]+\n((?:\S+\s+\d+\n?)+)", text)
    assert match, f"no Job stats table in:\n{text[-3000:]}"
    counts = Counter()
    for line in match.group(1).strip().splitlines():
        rule, count = line.split()
        if rule != "total":
            counts[rule] = int(count)
    return counts


def reasons(text: str) -> dict[str, set[str]]:
    """The 'Reasons:' summary of a dry run: reason -> rules it applies to."""
    found: dict[str, set[str]] = {}
    section = text.split("\nReasons:\n", 1)[1] if "\nReasons:\n" in text else ""
    reason = None
    for line in section.splitlines():
        if re.match(r"^ {4}\S.*:$", line):
            reason = line.strip().rstrip(":")
        elif re.match(r"^ {8}\S", line) and reason:
            found.setdefault(reason, set()).update(r.strip() for r in line.split(","))
        elif line and not line.startswith(" "):
            break
    return found


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The .test study, run once: ``(workdir, config, job stats of the run)``."""
    config = test_config()
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workdir, config)
    assert result.returncode == 0, output(result)[-6000:]
    return workdir, config, job_stats(output(result))


def read_scores(workdir: Path, family: str, model: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "test" / "scores" / family / model / "bbc.csv")


# --- outputs of the run ------------------------------------------------------------------------


def test_run_scheduled_every_stage(study):
    _, _, stats = study
    assert stats["download"] == 1 and stats["chunk"] == 1 and stats["init_model"] == 1
    assert stats["finetune"] == 2  # dropout and crops
    assert stats["embed"] == 3 and stats["knn"] == 3 and stats["linear"] == 3
    assert stats["score_table"] == 3  # table2_knn, table2_knn_cosine, table2_linear


def test_raw_and_chunks(study):
    workdir, _, _ = study
    raw = pd.read_parquet(workdir / "data" / "test" / "raw" / "bbc.parquet")
    assert list(raw.columns) == ["doc_id", "text", "label"]
    assert len(raw) == 160 and raw["doc_id"].is_unique
    assert set(raw["label"]) == {"business", "entertainment", "politics", "sport", "tech"}
    chunks = pd.read_parquet(workdir / "data" / "test" / "chunks" / "bbc" / "n2.parquet")
    assert list(chunks.columns) == ["doc_id", "chunk_id", "text"]
    assert set(chunks["doc_id"]) <= set(raw["doc_id"])
    assert (chunks["text"].str.count(r"\. ") == 2).all()


def test_table2_files(study):
    workdir, _, _ = study
    tables = workdir / "results" / "test" / "tables"
    table = pd.read_csv(tables / "table2_knn.csv")
    assert list(table.columns) == ["dataset", "base", "dropout", "crops"]
    assert table["dataset"].tolist() == ["bbc", "average"]
    markdown = (tables / "table2_knn.md").read_text()
    assert markdown.startswith("# kNN accuracy (%), k=10, Euclidean, last layer\n")
    assert "| dataset" in markdown and "| bbc" in markdown and "| average" in markdown
    for name in ("table2_knn_cosine", "table2_linear"):
        assert (tables / f"{name}.csv").exists() and (tables / f"{name}.md").exists()


@pytest.mark.parametrize(
    ("table", "family", "metric"),
    [
        ("table2_knn", "knn", "euclidean"),
        ("table2_knn_cosine", "knn", "cosine"),
        ("table2_linear", "linear", "logistic"),
    ],
)
def test_table_cells_are_last_layer_scores(study, table, family, metric):
    workdir, _, _ = study
    values = pd.read_csv(workdir / "results" / "test" / "tables" / f"{table}.csv").set_index("dataset")
    for model, column in COLUMNS.items():
        scores = read_scores(workdir, family, model)
        last = scores[(scores["layer"] == 2) & (scores["metric"] == metric)]["accuracy"]
        assert len(last) == 1
        assert values.loc["bbc", column] == pytest.approx(100 * last.iloc[0], abs=0.01)
        assert values.loc["average", column] == pytest.approx(values.loc["bbc", column], abs=0.01)


@pytest.mark.parametrize("model", MODELS)
def test_score_files_one_row_per_layer_and_metric(study, model):
    workdir, _, _ = study
    knn = read_scores(workdir, "knn", model)
    assert list(knn.columns) == ["layer", "metric", "k", "accuracy", "n_train", "n_test"]
    assert sorted(zip(knn["layer"], knn["metric"])) == sorted(
        (layer, metric) for layer in (0, 1, 2) for metric in ("euclidean", "cosine")
    )
    assert (knn["k"] == 10).all()
    linear = read_scores(workdir, "linear", model)
    assert list(linear.columns) == ["layer", "metric", "accuracy", "n_train", "n_fit", "n_test"]
    assert linear["layer"].tolist() == [0, 1, 2] and (linear["metric"] == "logistic").all()
    assert (linear["n_fit"] == 144).all()  # below evaluation.linear.max_train: the whole training split
    for scores in (knn, linear):
        assert (scores["n_train"] == 144).all() and (scores["n_test"] == 16).all()  # 90/10 of 160
        # accuracies on 16 test documents are multiples of 1/16
        np.testing.assert_allclose(scores["accuracy"] * 16, np.round(scores["accuracy"] * 16), atol=1e-9)
        assert scores["accuracy"].between(0, 1).all()


@pytest.mark.parametrize("model", MODELS)
def test_embeddings(study, model):
    workdir, _, _ = study
    raw = pd.read_parquet(workdir / "data" / "test" / "raw" / "bbc.parquet")
    stored = EmbeddingStore(workdir / "results" / "test" / "embeddings" / model / "bbc")
    assert (stored.n_docs, stored.dim, stored.dtype) == (160, 32, "float32")  # dtype follows precision
    assert stored.layers == [0, 1, 2]
    assert stored.doc_ids.tolist() == raw["doc_id"].tolist()
    assert all(np.isfinite(layer).all() for layer in stored)


@pytest.mark.parametrize("augmentation", ["dropout", "crops"])
def test_fine_tuned_models(study, augmentation):
    workdir, _, _ = study
    folder = workdir / "results" / "test" / "models" / f"tiny__bbc__{augmentation}"
    log = pd.read_csv(folder / "train_log.csv")
    assert list(log.columns[:4]) == ["step", "loss", "lr", "seconds"]
    run = json.loads((folder / "run.json").read_text())
    assert run["run"] == f"tiny__bbc__{augmentation}"
    assert run["base_model"] == "results/test/base_models/tiny"
    settings = run["settings"]
    assert settings["augmentation"] == augmentation and settings["pairs"] == augmentation
    assert settings["batch_size"] == 16 and settings["learning_rate"] == 1e-3
    assert settings["max_length"] == 64 and settings["device"] == "cpu" and settings["seed"] == 42
    assert run["steps"] == -(-run["training_documents"] // 16) == len(log)
    assert log["step"].tolist() == list(range(1, len(log) + 1))
    assert np.isfinite(log["loss"]).all()
    assert log["lr"].max() == pytest.approx(1e-3) and log["lr"].iloc[-1] < 1e-3
    assert {"config.json", "model.safetensors", "modules.json"} <= {p.name for p in folder.iterdir()}


def test_logs(study):
    workdir, _, _ = study
    logs = workdir / "logs" / "test"
    expected = [
        "download/bbc.log",
        "chunk/bbc/n2.log",
        "init_model/tiny.log",
        "finetune/tiny__bbc__dropout.log",
        "finetune/tiny__bbc__crops.log",
        "tables/table2_knn.log",
        *[f"{family}/{model}/bbc.log" for family in ("embed", "knn", "linear") for model in MODELS],
    ]
    missing = [name for name in expected if not (logs / name).is_file()]
    assert not missing
    assert "bbc: 160 documents, 5 labels" in (logs / "download" / "bbc.log").read_text()
    assert re.search(r"\d+ chunks from \d+ documents", (logs / "chunk" / "bbc" / "n2.log").read_text())


# --- rerun logic (dry runs) --------------------------------------------------------------------


def test_second_run_has_nothing_to_do(study):
    workdir, config, _ = study
    result = snakemake(workdir, config, "--dry-run")
    assert result.returncode == 0, output(result)[-3000:]
    assert "Nothing to be done" in output(result)


def test_changing_k_reruns_only_knn_and_its_tables(study):
    workdir, config, _ = study
    changed = json.loads(json.dumps(config))
    changed.setdefault("evaluation", {}).setdefault("knn", {})["k"] = 5
    result = snakemake(workdir, changed, "--dry-run")
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    stats = job_stats(text)
    assert stats["knn"] == 3  # every model's kNN scores
    assert stats["score_table"] == 2  # table2_knn and table2_knn_cosine, not table2_linear
    assert "output: results/test/tables/table2_linear" not in text
    assert "output: results/test/tables/table2_knn.csv" in text
    assert not UPSTREAM_OF_SCORES & set(stats), stats
    # the change of k itself triggers knn; what else runs, runs because it reads knn's outputs
    why = reasons(text)
    assert "knn" in why.get("params have changed since last execution", set()), why
    direct = set().union(*[rules for reason, rules in why.items() if "updated by another job" not in reason])
    assert not direct & UPSTREAM_OF_SCORES, why


def test_changing_how_often_training_checkpoints_retrains_nothing(study):
    """The checkpoint interval does not change a model, so it is no parameter Snakemake tracks."""
    workdir, config, _ = study
    changed = json.loads(json.dumps(config))
    changed.setdefault("training", {})["checkpoint_every"] = 7
    result = snakemake(workdir, changed, "--dry-run", "--printshellcmds", "--forcerun", "finetune")
    text = output(result)
    assert "--checkpoint-dir results/test/checkpoints/tiny__bbc__crops --checkpoint-every 7" in text
    result = snakemake(workdir, changed, "--dry-run")
    assert result.returncode == 0, output(result)[-3000:]
    assert "Nothing to be done" in output(result)


def test_a_datasets_training_block_retrains_without_downloading_again(study):
    """`datasets.bbc.training` changes the runs on bbc, not the downloaded corpus."""
    workdir, config, _ = study
    changed = json.loads(json.dumps(config))
    changed["datasets"]["bbc"]["training"] = {"batch_size": 8}
    result = snakemake(workdir, changed, "--dry-run")
    assert result.returncode == 0, output(result)[-3000:]
    stats = job_stats(output(result))
    assert stats["finetune"] == 2 and "download" not in stats and "chunk" not in stats, stats


def test_each_study_writes_only_its_own_folders(study, tmp_path):
    """Another study (another name) in the same directory plans all of its own jobs and touches
    none of this one's files."""
    workdir, config, _ = study
    other = {**json.loads(json.dumps(config)), "study": {**config["study"], "name": "other"}}
    result = snakemake(workdir, other, "--dry-run", "--printshellcmds")
    assert result.returncode == 0, output(result)[-3000:]
    text = output(result)
    assert job_stats(text)["download"] == 1 and "results/other/tables/table2_knn.csv" in text
    assert not re.search(r"(results|data|logs)/test/", text)


def test_touching_raw_data_alone_reruns_nothing(study):
    """Snakemake ignores a newer mtime when a small input's checksum is unchanged (provenance)."""
    workdir, config, _ = study
    raw = workdir / "data" / "test" / "raw" / "bbc.parquet"
    before = raw.stat()
    try:
        os.utime(raw, (before.st_atime + 1000, before.st_mtime + 1000))
        result = snakemake(workdir, config, "--dry-run")
    finally:
        os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert result.returncode == 0, output(result)[-3000:]
    assert "Nothing to be done" in output(result)


def test_changed_raw_data_reruns_everything_downstream_but_not_download(study):
    workdir, config, full_run = study
    raw = workdir / "data" / "test" / "raw" / "bbc.parquet"
    before, content = raw.stat(), raw.read_bytes()
    try:
        table = pd.read_parquet(raw)
        table.loc[0, "text"] = table.loc[0, "text"] + " One more sentence."
        table.to_parquet(raw, index=False)
        os.utime(raw, (before.st_atime + 1000, before.st_mtime + 1000))
        result = snakemake(workdir, config, "--dry-run")
    finally:
        raw.write_bytes(content)
        os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    stats = job_stats(text)
    assert "download" not in stats
    for rule, count in {
        "chunk": 1,
        "init_model": 1,
        "finetune": 2,
        "embed": 3,
        "knn": 3,
        "linear": 3,
    }.items():
        assert stats[rule] == count, (rule, stats)
    assert stats["score_table"] == 3
    # everything the study ran depends on the raw table, except its download
    expected = Counter({rule: n for rule, n in full_run.items() if rule != "download"})
    assert stats == expected
    # and with the original bytes back there is nothing to do again
    again = snakemake(workdir, config, "--dry-run")
    assert "Nothing to be done" in output(again)


# --- bad configs -------------------------------------------------------------------------------


def test_unknown_augmentation_fails_the_dry_run(tmp_path):
    config = test_config()
    config["study"]["augmentations"] = ["dropout", "myaug"]
    result = snakemake(tmp_path, config, "--dry-run")
    text = output(result)
    assert result.returncode != 0
    assert "study.augmentations" in text and "'myaug'" in text
    assert not (tmp_path / "results" / "test").exists()


def test_unknown_dataset_in_study_fails_the_dry_run(tmp_path):
    config = test_config()
    config["study"]["train_on"] = ["bbc", "nosuch"]
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert "study.train_on" in output(result) and "'nosuch'" in output(result)


def test_missing_text_column_fails_download_with_key_in_log(tmp_path):
    source = tmp_path / "broken.parquet"
    pd.DataFrame({"body": ["some text. more text."] * 3, "label": ["a", "b", "c"]}).to_parquet(source)
    config = test_config()
    config["datasets"] = {"broken": {"source": str(source)}}
    config["models"]["tiny"]["tokenizer_corpus"] = ["broken"]
    config["study"]["train_on"] = ["broken"]
    result = snakemake(tmp_path, config, "data/test/raw/broken.parquet")
    assert result.returncode != 0
    assert "download" in output(result)
    log = (tmp_path / "logs" / "test" / "download" / "broken.log").read_text()
    assert "datasets.broken.text" in log
    assert "embaug download: error: dataset 'broken'" in log
    assert not (tmp_path / "data" / "test" / "raw" / "broken.parquet").exists()


REVISION = "6996ce1e91bd2a9c7d7f61daec37463394f73f09"  # a commit of microsoft/mpnet-base


def test_pinned_hub_model_is_downloaded_once_into_the_cache_dir(tmp_path):
    """A hub model with a revision: one download_model job into cache_dir/hub, read by its users."""
    config = test_config()
    config["models"]["hub"] = {"source": "org/some-model", "revision": REVISION}
    config["study"]["models"] = ["tiny", "hub"]
    result = snakemake(tmp_path, config, "--dry-run", "--printshellcmds")
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    folder = f"data/cache/hub/models--org--some-model/snapshots/{REVISION}"
    assert job_stats(text)["download_model"] == 1
    assert (
        f"embaug download-model --repo org/some-model --revision {REVISION} --cache-dir data/cache/hub "
        "--name hub" in text
    )
    assert f"embaug finetune --model {folder} " in text and f"embaug embed --model {folder} " in text


def test_model_revision_must_be_a_commit(tmp_path):
    config = test_config()
    config["models"]["hub"] = {"source": "org/some-model", "revision": "main"}
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0 and "revision" in output(result), output(result)[-2000:]
