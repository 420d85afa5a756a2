"""The linear probe: the authors' settings, memory-mapped input, and the documented training cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from embaug.cli import build_parser, main
from embaug.data.split import labelled_split, stratified_subsample
from embaug.evaluate.linear import LinearSettings, linear_accuracy, probe
from embaug.store import EmbeddingStore, EmbeddingWriter

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def clusters(n_per_class: int = 30, n_classes: int = 3, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, dim))
    labels = np.repeat([f"c{i}" for i in range(n_classes)], n_per_class)
    points = centres[np.repeat(np.arange(n_classes), n_per_class)] + rng.normal(size=(len(labels), dim))
    return points.astype(np.float32), labels


def test_default_probe_is_the_authors():
    """berenslab/text-embed-augm lin_acc: StandardScaler, then LogisticRegression(penalty=None,
    solver="saga", tol=1e-2, max_iter=1000, random_state=42)."""
    scaler, regression = (step for _, step in probe().steps)
    assert isinstance(scaler, StandardScaler) and scaler.with_mean and scaler.with_std
    assert isinstance(regression, LogisticRegression)
    params = regression.get_params()
    assert params["C"] == np.inf  # no penalty (scikit-learn >= 1.8 spells penalty=None this way)
    assert (params["solver"], params["tol"], params["max_iter"], params["random_state"]) == (
        "saga",
        0.01,
        1000,
        42,
    )
    assert LinearSettings().max_train == 100_000


def test_cli_and_schema_defaults_match_the_settings():
    args = build_parser().parse_args(["linear", "--embeddings", "e", "--corpus", "c", "--out", "o"])
    defaults = LinearSettings()
    assert (args.C, args.solver, args.tol, args.max_iter, args.max_train) == (
        defaults.C,
        defaults.solver,
        defaults.tol,
        defaults.max_iter,
        defaults.max_train,
    )
    linear = yaml.safe_load(SCHEMA.read_text())["properties"]["evaluation"]["properties"]["linear"][
        "properties"
    ]
    schema = {key: linear[key]["default"] for key in ("C", "solver", "tol", "max_iter", "max_train")}
    assert schema == {"C": None, "solver": "saga", "tol": 0.01, "max_iter": 1000, "max_train": 100_000}


def test_l2_option():
    regression = probe(LinearSettings(C=0.5, solver="lbfgs")).steps[-1][1]
    assert (regression.C, regression.solver) == (0.5, "lbfgs")


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_memory_mapped_layer_scores_as_an_array(tmp_path, dtype):
    points, labels = clusters()
    with EmbeddingWriter(tmp_path / "s", [0], len(points), points.shape[1], dtype) as writer:
        writer.write(np.arange(len(points)), 0, points)
    mapped = EmbeddingStore(tmp_path / "s").layer(0)
    train, test = labelled_split(labels, 0.2, 42)
    in_memory = points.astype(dtype).astype(np.float32)
    expected = probe().fit(in_memory[train], labels[train]).score(in_memory[test], labels[test])
    assert linear_accuracy(mapped, labels, train, test) == pytest.approx(expected)


def test_training_cap_is_a_stratified_subsample():
    labels = np.repeat(["a", "b", "c"], [600, 300, 100])
    rows = np.arange(1000)
    kept = stratified_subsample(rows, labels, 100, 42)
    assert len(kept) == 100 and np.all(np.diff(kept) > 0)
    assert pd.Series(labels[kept]).value_counts().to_dict() == {"a": 60, "b": 30, "c": 10}
    assert np.array_equal(kept, stratified_subsample(rows, labels, 100, 42))
    assert np.array_equal(stratified_subsample(rows, labels, None, 42), rows)
    assert np.array_equal(stratified_subsample(rows, labels, 5000, 42), rows)
    single = labels.copy()
    single[0] = "lonely"  # too rare to stratify: a plain seeded subsample
    assert len(stratified_subsample(rows, single, 100, 42)) == 100


def test_capped_probe_fits_on_the_subsample(monkeypatch):
    points, labels = clusters(n_per_class=40)
    train, test = labelled_split(labels, 0.25, 42)
    fitted = {}
    original = LogisticRegression.fit

    def spy(self, x, y, *args, **kwargs):
        fitted["rows"] = len(x)
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    linear_accuracy(points, labels, train, test, LinearSettings(max_train=30))
    assert fitted["rows"] == 30


def test_linear_stage_records_the_fitted_documents(tmp_path, corpus, capfd, bars_shown):
    """``n_fit`` per layer, and a bar of the layers probed on stderr (a job's log)."""
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    points, _ = clusters(n_per_class=len(corpus), n_classes=1)
    with EmbeddingWriter(tmp_path / "s", [0, 4], len(corpus), 8, "float16", corpus["doc_id"]) as writer:
        for position in range(2):
            writer.write(np.arange(len(corpus)), position, points[: len(corpus)])
    out = tmp_path / "linear.csv"
    args = ["linear", "--embeddings", str(tmp_path / "s"), "--corpus", str(raw), "--test-fraction", "0.25"]
    args += ["--out", str(out)]
    assert main([*args, "--max-train", "20"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["layer", "metric", "accuracy", "n_train", "n_fit", "n_test"]
    assert scores["layer"].tolist() == [0, 4] and (scores["n_fit"] == 20).all()
    assert "score layers: 100%|██████████| 2/2 [" in capfd.readouterr().err
    assert main([*args, "--max-train", "none"]) == 0
    scores = pd.read_csv(out)
    assert (scores["n_fit"] == scores["n_train"]).all()
