"""Scoring during fine-tuning: held-out kNN every N batches, without changing the training."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from embaug.data.chunking import chunk_corpus
from embaug.train import TrainSettings, finetune


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, corpus):
    """The same tiny run without and with evaluation every 2 batches (plus a second eval corpus)."""
    chunks = chunk_corpus(corpus, n=2)
    base = dict(batch_size=8, learning_rate=1.0e-3, max_length=48, device="cpu", eval_docs=30, eval_k=3)
    out = tmp_path_factory.mktemp("curves")
    plain = finetune(str(tiny_model_dir), corpus, chunks, TrainSettings(**base), out / "plain", "plain")
    other = corpus.sample(20, random_state=1)
    scored = finetune(
        str(tiny_model_dir),
        corpus,
        chunks,
        TrainSettings(**base, eval_every=2),
        out / "scored",
        "scored",
        {"other": other},
    )
    return plain, scored, out


def test_evaluation_does_not_change_training(runs):
    plain, scored, _ = runs
    assert plain["loss"].tolist() == scored["loss"].tolist()
    assert "knn_accuracy" not in plain


def test_scores_every_n_batches_and_the_last(runs):
    _, scored, out = runs
    last = int(scored["step"].max())
    evaluated = scored.loc[scored["knn_accuracy"].notna(), "step"].tolist()
    assert evaluated == sorted(set(range(2, last + 1, 2)) | {last})
    assert scored["knn_accuracy"].dropna().between(0, 1).all()
    assert scored["knn_accuracy_other"].notna().tolist() == scored["knn_accuracy"].notna().tolist()
    assert (scored["eval_seconds"].dropna() > 0).all()
    saved = pd.read_csv(out / "scored" / "train_log.csv")
    assert list(saved.columns) == [
        "step",
        "loss",
        "lr",
        "seconds",
        "knn_accuracy",
        "knn_accuracy_other",
        "eval_seconds",
    ]
    run = json.loads((out / "scored" / "run.json").read_text())
    assert set(run["initial_scores"]) == {"knn_accuracy", "knn_accuracy_other"}
    assert run["settings"]["eval_every"] == 2


def test_crops_beat_chance_on_the_synthetic_topics(runs):
    _, scored, _ = runs
    assert scored["knn_accuracy"].dropna().iloc[-1] > 1 / 4  # 4 topics
