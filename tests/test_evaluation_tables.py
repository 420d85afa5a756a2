"""Tables S3 / S4 / S7 and the TF-IDF baselines: preprocessing, held-out parts, grid tables, stages."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from embaug.cli import main
from embaug.data.heldout import held_out_parts
from embaug.data.split import labelled_split
from embaug.errors import EmbaugError
from embaug.evaluate import preprocess
from embaug.evaluate.knn import knn_accuracy
from embaug.evaluate.preprocess import TransformedRows, fit_transform, metric_name, preprocessed
from embaug.evaluate.tfidf import svd_vectors, tfidf_vectors
from embaug.report.grid_tables import GridCell, grid_table
from embaug.store import EmbeddingStore

# --- preprocessing (Table S3) ------------------------------------------------------------------


def capture(seen: list):
    """A scorer that records what it was given and returns 0."""

    def scorer(embeddings, labels, train, test):
        seen.append(embeddings)
        return 0.0

    return scorer


def test_centring_and_whitening_use_the_training_rows_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32) * [1, 2, 3, 4, 5]
    x[50:] += 100.0  # test rows far away: if they leaked, the mean / covariance would move
    train, test = np.arange(50), np.arange(50, 60)
    seen: list = []
    preprocessed(capture(seen), "centred")(x, np.zeros(60), train, test)
    np.testing.assert_allclose(seen[-1][train].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(seen[-1], x - x[train].mean(axis=0), atol=1e-4)
    preprocessed(capture(seen), "whitened")(x, np.zeros(60), train, test)
    np.testing.assert_allclose(np.cov(seen[-1][train], rowvar=False), np.eye(5), atol=1e-3)
    expected = PCA(whiten=True, svd_solver="full").fit(x[train]).transform(x)
    np.testing.assert_allclose(seen[-1], expected, rtol=1e-4, atol=1e-3)
    raw = capture(seen)
    assert preprocessed(raw, "raw") is raw


def test_whitening_changes_euclidean_knn_and_unknown_name_fails():
    rng = np.random.default_rng(1)
    labels = np.repeat(["a", "b"], 50)
    x = rng.normal(size=(100, 2)) * [100.0, 1.0]  # the class signal is in the low-variance axis
    x[:, 1] += np.where(labels == "a", -1.5, 1.5)
    train, test = labelled_split(labels, 0.2, 0)
    knn = partial(knn_accuracy, k=5)
    assert preprocessed(knn, "whitened")(x, labels, train, test) > knn(x, labels, train, test) + 0.2
    with pytest.raises(EmbaugError, match="unknown preprocessing 'scaled'"):
        preprocessed(knn, "scaled")
    assert metric_name("raw", "cosine") == "cosine" and metric_name("whitened", "cosine") == "whitened_cosine"


def test_transforms_fitted_in_blocks_equal_the_in_memory_ones(monkeypatch, tmp_path):
    # a float16 memory map read in blocks of 7 rows gives scikit-learn's centring and whitening,
    # and whitened kNN the same accuracy as PCA(whiten=True) followed by scikit-learn's kNN
    monkeypatch.setattr(preprocess, "_BLOCK", 7)
    rng = np.random.default_rng(3)
    labels = np.array(list("abc"))[rng.integers(0, 3, 120)]
    x = rng.normal(size=(120, 6)) * [50.0, 1.0, 2.0, 3.0, 0.5, 8.0] + 20.0
    x[:, 1] += np.where(labels == "a", 2.0, 0.0)
    np.save(tmp_path / "layer.npy", x.astype(np.float16))
    stored = np.load(tmp_path / "layer.npy", mmap_mode="r")
    x = stored.astype(np.float64)
    train, test = labelled_split(labels, 0.25, 42)
    centred = TransformedRows(stored, fit_transform("centred", stored, train))
    np.testing.assert_allclose(np.asarray(centred), x - x[train].mean(axis=0), atol=1e-9)
    whitened = TransformedRows(stored, fit_transform("whitened", stored, train))
    pca = PCA(whiten=True, svd_solver="full").fit(x[train])
    np.testing.assert_allclose(whitened[test], pca.transform(x[test]), atol=1e-8)
    assert fit_transform("raw", stored, train) is None
    for metric in ("euclidean", "cosine"):
        expected = KNeighborsClassifier(n_neighbors=5, metric=metric, algorithm="brute")
        expected.fit(pca.transform(x[train]), labels[train])
        accuracy = preprocessed(partial(knn_accuracy, k=5, metric=metric), "whitened")(
            stored, labels, train, test
        )
        assert accuracy == expected.score(pca.transform(x[test]), labels[test])


# --- TF-IDF baselines -----------------------------------------------------------------------------


def test_tfidf_vocabulary_from_fit_rows_only(corpus):
    texts = corpus["text"].tolist() + ["zebra zebra quokka"]
    fit_rows = np.arange(len(corpus))
    vectors = tfidf_vectors(texts, fit_rows, {"sublinear_tf": True})
    assert vectors.shape[0] == len(texts)
    assert vectors[-1].nnz == 0  # words only the unseen document has are not features
    np.testing.assert_allclose(np.sqrt(vectors[:-1].multiply(vectors[:-1]).sum(axis=1)), 1.0, atol=1e-6)
    svd = svd_vectors(vectors, fit_rows, 5, seed=0)
    assert svd.shape == (len(texts), 5) and svd.dtype == np.float32
    with pytest.raises(EmbaugError, match="baselines.tfidf"):
        tfidf_vectors(texts, fit_rows, {"min_dff": 2})


def test_tfidf_stage_scores_like_a_model(tmp_path, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    out_tfidf, out_svd = tmp_path / "tfidf.csv", tmp_path / "svd.csv"
    settings = json.dumps({"sublinear_tf": True, "min_df": 1})
    argv = ["tfidf", "--corpus", str(raw), "--settings", settings, "--svd-components", "8", "--k", "3"]
    argv += ["--test-fraction", "0.25", "--out-tfidf", str(out_tfidf), "--out-svd", str(out_svd)]
    assert main(argv) == 0
    for path in (out_tfidf, out_svd):
        scores = pd.read_csv(path)
        assert list(scores.columns) == ["layer", "metric", "k", "accuracy", "n_train", "n_test"]
        assert scores["metric"].tolist() == ["euclidean", "cosine"] and (scores["layer"] == 0).all()
        assert (scores["n_train"] == 30).all() and (scores["n_test"] == 10).all()
    # topic words separate the four synthetic topics: TF-IDF kNN is (nearly) perfect
    assert pd.read_csv(out_tfidf)["accuracy"].min() >= 0.9
    # the same numbers as scoring the vectors directly on the shared split
    labels = corpus["label"].to_numpy(dtype=str)
    train, test = labelled_split(labels, 0.25, 42)
    vectors = tfidf_vectors(corpus["text"].tolist(), train, {"sublinear_tf": True, "min_df": 1})
    expected = knn_accuracy(vectors, labels, train, test, k=3)
    assert pd.read_csv(out_tfidf)["accuracy"].iloc[0] == pytest.approx(expected)


# --- held-out parts (Table S4) ---------------------------------------------------------------------


def test_held_out_test_part_is_the_knn_test_split(corpus):
    corpus = corpus.copy()
    corpus.loc[::7, "label"] = "unlabeled"
    train_part, test_part = held_out_parts(corpus, 0.2, 3)
    _, test = labelled_split(corpus["label"].to_numpy(dtype=str), 0.2, 3)
    assert test_part["doc_id"].tolist() == corpus["doc_id"].iloc[test].tolist()
    assert not set(train_part["doc_id"]) & set(test_part["doc_id"])
    assert len(train_part) + len(test_part) == len(corpus)
    assert (test_part["label"] != "unlabeled").all()
    assert (train_part["label"] == "unlabeled").sum() == (corpus["label"] == "unlabeled").sum()


# --- grid tables (Tables S3, S7) -------------------------------------------------------------------


def test_grid_table_rows_columns_and_missing_cells(tmp_path):
    path = tmp_path / "s.csv"
    rows = [(0, "euclidean", 0.1), (2, "euclidean", 0.5), (2, "whitened_euclidean", 0.7)]
    pd.DataFrame(rows, columns=["layer", "metric", "accuracy"]).to_csv(path, index=False)
    other = tmp_path / "t.csv"
    pd.DataFrame([(0, "euclidean", 0.3)], columns=["layer", "metric", "accuracy"]).to_csv(other, index=False)
    cells = [
        GridCell("bbc", "m", "raw", "euclidean", str(path)),
        GridCell("bbc", "m", "whitened", "whitened_euclidean", str(path)),
        GridCell("bbc", "tfidf", "raw", "euclidean", str(other)),
    ]
    table = grid_table(cells)
    assert table.index.names == ["dataset", "model"]
    assert table.index.tolist() == [("bbc", "m"), ("bbc", "tfidf")]
    assert table.columns.tolist() == ["raw", "whitened"]
    assert table.loc[("bbc", "m")].tolist() == pytest.approx([50.0, 70.0])
    assert table.loc[("bbc", "tfidf"), "raw"] == pytest.approx(30.0)
    assert np.isnan(table.loc[("bbc", "tfidf"), "whitened"])


# --- the workflow: .test/config.yaml + .test/evaluation_tables.yaml ----------------------------------

TABLES = ["tableS3", "tableS4", "tableS7", "table2_knn"]


def evaluation_config() -> dict:
    """.test/config.yaml updated key by key with .test/evaluation_tables.yaml (as --configfile does)."""
    from test_workflow import REPO_ROOT, test_config

    config = test_config()
    overlay = yaml.safe_load((REPO_ROOT / ".test" / "evaluation_tables.yaml").read_text())
    for key, value in overlay.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def table_targets() -> list[str]:
    return [f"results/test/tables/{name}.csv" for name in TABLES]


def last_layer(path: Path, metric: str) -> float:
    scores = pd.read_csv(path)
    chosen = scores[scores["metric"] == metric]
    return 100 * float(chosen.loc[chosen["layer"].idxmax(), "accuracy"])


def test_dry_run_schedules_the_split_baselines_and_pooled_embeddings(tmp_path):
    from test_workflow import job_stats, output, snakemake

    result = snakemake(tmp_path, evaluation_config(), "--dry-run", *table_targets())
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    stats = job_stats(text)
    assert stats["download"] == 1 and stats["split_dataset"] == 1  # bbc.train is split, not downloaded
    assert stats["chunk"] == 2  # bbc (Table 2 runs) and bbc.train (Table S4 run)
    assert stats["finetune"] == 3 and "output: results/test/models/tiny__bbc.train__crops" in text
    assert stats["baselines"] == 1 and stats["knn_preprocessed"] == 2
    assert stats["embed_pooled"] == 2 and stats["knn_pooled"] == 2  # cls, token:3; mean is the usual file
    assert stats["grid_table"] == 2 and stats["table_s4"] == 1 and stats["score_table"] == 1
    # Table 2 gets the baselines
    assert "--cell bbc tfidf results/test/scores/baselines/tfidf/bbc.csv" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table_s3": {"datasets": ["nosuch"]}}, "table_s3.datasets names 'nosuch'"),
        ({"table_s7": {"models": ["nosuch"]}}, "table_s7.models names 'nosuch'"),
        ({"table_s4": {"enabled": False}}, "table_s4.enabled"),
    ],
)
def test_bad_table_config_names_the_key(tmp_path, change, message):
    from test_workflow import output, snakemake

    config = evaluation_config()
    for key, value in change.items():
        config[key].update(value)
    result = snakemake(tmp_path, config, "--dry-run", *table_targets())
    assert result.returncode != 0 and message in output(result), output(result)[-3000:]


@pytest.fixture(scope="module")
def tables_study(tmp_path_factory):
    """The four tables built from scratch on the .test study (about 3 minutes on 2 shared cores)."""
    from test_workflow import output, snakemake

    config = evaluation_config()
    workdir = tmp_path_factory.mktemp("tables")
    result = snakemake(workdir, config, *table_targets())
    assert result.returncode == 0, output(result)[-6000:]
    return workdir, config


def read_table(workdir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "test" / "tables" / f"{name}.csv")


@pytest.mark.slow
def test_table_s3_cells_are_the_score_files(tables_study):
    workdir, _ = tables_study
    table = read_table(workdir, "tableS3").set_index(["dataset", "model"])
    columns = [f"{p}_{m}" for p in ("raw", "centred", "whitened") for m in ("euclidean", "cosine")]
    assert table.columns.tolist() == columns
    assert table.index.tolist() == [("bbc", m) for m in ("tiny", "tiny__bbc__crops", "tfidf", "tfidf_svd")]
    scores = workdir / "results" / "test" / "scores"
    for model in ("tiny", "tiny__bbc__crops"):
        for column in columns:
            prep, metric = column.split("_")
            path = scores / ("knn" if prep == "raw" else "knn_preprocessed") / model / "bbc.csv"
            expected = last_layer(path, metric if prep == "raw" else column)
            assert table.loc[("bbc", model), column] == pytest.approx(expected, abs=0.01)
    for baseline in ("tfidf", "tfidf_svd"):
        path = scores / "baselines" / baseline / "bbc.csv"
        assert table.loc[("bbc", baseline), "raw_cosine"] == pytest.approx(
            last_layer(path, "cosine"), abs=0.01
        )
        assert table.loc[("bbc", baseline), columns[2:]].isna().all()  # no centred / whitened TF-IDF


@pytest.mark.slow
def test_table_s4_trains_on_the_training_part_and_queries_the_test_part(tables_study):
    workdir, config = tables_study
    raw = pd.read_parquet(workdir / "data" / "test" / "raw" / "bbc.parquet")
    train_part = pd.read_parquet(workdir / "data" / "test" / "raw" / "bbc.train.parquet")
    test_part = pd.read_parquet(workdir / "data" / "test" / "raw" / "bbc.test.parquet")
    chunks = pd.read_parquet(workdir / "data" / "test" / "chunks" / "bbc.train" / "n2.parquet")
    held_out = set(test_part["doc_id"])
    assert not held_out & set(train_part["doc_id"]) and not held_out & set(chunks["doc_id"])
    assert sorted(held_out | set(train_part["doc_id"])) == sorted(raw["doc_id"])
    _, test = labelled_split(
        raw["label"].to_numpy(dtype=str), 0.1, config.get("evaluation", {}).get("seed", 42)
    )
    assert held_out == set(raw["doc_id"].iloc[test])  # the kNN queries are exactly the held-out part
    run = json.loads((workdir / "results/test/models/tiny__bbc.train__crops/run.json").read_text())
    assert run["training_documents"] <= len(train_part)
    table = read_table(workdir, "tableS4").set_index("dataset")
    assert table.columns.tolist() == ["base", "crops", "tfidf", "tfidf_svd"]
    assert table.index.tolist() == ["bbc", "average"]
    scores = workdir / "results" / "test" / "scores"
    expected = {
        "base": scores / "knn" / "tiny" / "bbc.csv",
        "crops": scores / "knn" / "tiny__bbc.train__crops" / "bbc.csv",
        "tfidf": scores / "baselines" / "tfidf" / "bbc.csv",
        "tfidf_svd": scores / "baselines" / "tfidf_svd" / "bbc.csv",
    }
    for column, path in expected.items():
        assert table.loc["bbc", column] == pytest.approx(last_layer(path, "euclidean"), abs=0.01)
        assert pd.read_csv(path)["n_test"].iloc[0] == len(test_part)


@pytest.mark.slow
def test_table_s7_and_table2_baselines(tables_study):
    workdir, _ = tables_study
    scores = workdir / "results" / "test" / "scores"
    table = read_table(workdir, "tableS7").set_index(["dataset", "model"])
    assert table.columns.tolist() == ["mean", "cls", "token:3"] and table.index.tolist() == [("bbc", "tiny")]
    expected = {
        "mean": scores / "knn" / "tiny" / "bbc.csv",
        "cls": scores / "knn_pooled" / "cls" / "tiny" / "bbc.csv",
        "token:3": scores / "knn_pooled" / "token3" / "tiny" / "bbc.csv",
    }
    for column, path in expected.items():
        assert table.loc[("bbc", "tiny"), column] == pytest.approx(last_layer(path, "euclidean"), abs=0.01)
    stored = EmbeddingStore(workdir / "results" / "test" / "embeddings_pooled" / "cls" / "tiny" / "bbc")
    assert stored.layers == [2] and stored.layer(2).shape == (160, 32)
    table2 = read_table(workdir, "table2_knn").set_index("dataset")
    assert table2.columns.tolist() == ["base", "dropout", "crops", "tfidf", "tfidf_svd"]
    for baseline in ("tfidf", "tfidf_svd"):
        expected_value = last_layer(scores / "baselines" / baseline / "bbc.csv", "euclidean")
        assert table2.loc["bbc", baseline] == pytest.approx(expected_value, abs=0.01)
