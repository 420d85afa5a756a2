"""Tables S3 / S4 / S7 and the TF-IDF baselines: preprocessing, held-out parts, grid tables, stages."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from embaug.cli import main
from embaug.data.heldout import held_out_parts
from embaug.errors import EmbaugError
from embaug.evaluate.knn import knn_accuracy
from embaug.evaluate.preprocess import metric_name, preprocessed
from embaug.evaluate.split import labelled_split
from embaug.evaluate.tfidf import svd_vectors, tfidf_vectors
from embaug.report.grid_tables import GridCell, grid_table

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
