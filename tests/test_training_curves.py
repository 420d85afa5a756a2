"""Scoring during fine-tuning: held-out kNN every N batches, without changing the training."""

from __future__ import annotations

import json

import numpy as np
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


@pytest.fixture(scope="module")
def sts_file(tmp_path_factory):
    """A tiny local STS task (60 sentence pairs) for MTEB scoring during training."""
    rng = np.random.default_rng(1)
    words = ["match", "team", "market", "bank", "cell", "album", "song", "energy", "goal", "price"]
    pairs = []
    for _ in range(60):
        a = list(rng.choice(words, size=8))
        keep = int(rng.integers(0, 8))
        pairs.append((" ".join(a), " ".join(a[:keep] + list(rng.choice(words, size=8 - keep))), keep, "test"))
    path = tmp_path_factory.mktemp("sts") / "sts.parquet"
    pd.DataFrame(pairs, columns=["sentence1", "sentence2", "score", "split"]).to_parquet(path)
    return path


def test_mteb_scoring_does_not_change_the_trained_weights(runs, tiny_model_dir, corpus, sts_file):
    """mteb reseeds python, numpy and torch for every task; dropout after it must not notice."""
    pytest.importorskip("mteb")
    plain, _, out = runs
    chunks = chunk_corpus(corpus, n=2)
    settings = TrainSettings(batch_size=8, learning_rate=1.0e-3, max_length=48, device="cpu", eval_docs=30,
                             eval_k=3, eval_every=2)  # fmt: skip
    scored = finetune(
        str(tiny_model_dir),
        corpus,
        chunks,
        settings,
        out / "mteb",
        "mteb",
        eval_mteb={"STS16": str(sts_file)},
    )
    assert scored["mteb_STS16"].notna().sum() >= 2
    assert scored["loss"].tolist() == plain["loss"].tolist()
    weights = (out / "plain" / "model.safetensors").read_bytes()
    assert (out / "mteb" / "model.safetensors").read_bytes() == weights
    assert (out / "scored" / "model.safetensors").read_bytes() == weights  # held-out kNN too
