"""Resumable fine-tuning: a run interrupted after a checkpoint ends exactly as an uninterrupted one."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from embaug import train
from embaug.checkpoint import CHECKPOINT_FILE, capture_rng, restore_rng
from embaug.data.chunking import chunk_corpus
from embaug.train import TrainSettings, finetune

# 40 documents in batches of 8: 5 batches an epoch. Masking, dropout (the tiny model's default)
# and crops draw from every generator training uses; scoring every 4 batches makes a curve.
SETTINGS = dict(
    batch_size=8, learning_rate=1.0e-3, max_length=48, device="cpu", epochs=3, mask_fraction=0.2,
    eval_every=4, eval_docs=30, eval_k=3,
)  # fmt: skip
TIMINGS = ["seconds", "eval_seconds"]


class Interrupted(Exception):
    """Stands for a kill in the middle of a batch."""


@pytest.fixture(scope="module")
def chunks(corpus) -> pd.DataFrame:
    return chunk_corpus(corpus, n=2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model_dir, corpus, chunks) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "model"
    finetune(str(tiny_model_dir), corpus, chunks, TrainSettings(**SETTINGS), out, "run", {"other": corpus[:20]})
    return out


def interrupt_at(monkeypatch, batch: int) -> None:
    """Make the run fail while computing the loss of batch number ``batch``."""
    loss, calls = train.info_nce_loss, iter(range(1, 10**6))

    def failing(*args, **kwargs):
        if next(calls) == batch:
            raise Interrupted
        return loss(*args, **kwargs)

    monkeypatch.setattr(train, "info_nce_loss", failing)


def assert_same_run(out: Path, expected: Path) -> None:
    """Same weights (bit for bit) and the same log but for the timings."""
    trained, reference = (AutoModel.from_pretrained(path).state_dict() for path in (out, expected))
    assert trained.keys() == reference.keys()
    assert all(torch.equal(trained[name], reference[name]) for name in reference)
    log, reference_log = (pd.read_csv(path / "train_log.csv") for path in (out, expected))
    pd.testing.assert_frame_equal(log.drop(columns=TIMINGS), reference_log.drop(columns=TIMINGS))
    assert log["knn_accuracy"].notna().sum() == 4  # batches 4, 8, 12 and the last (15)


@pytest.mark.parametrize(
    ("every", "failures", "resumed_after"),
    [
        (5, [8], [5]),  # the checkpoint ends an epoch: the next epoch's pairs are drawn on resume
        (3, [9], [6]),  # mid-epoch: the epoch's pairs are drawn again, its first batch skipped
        (2, [5, 9], [4, 8]),  # interrupted twice
    ],
)
def test_an_interrupted_run_resumes_to_the_same_model(
    monkeypatch, tmp_path, tiny_model_dir, corpus, chunks, uninterrupted, every, failures, resumed_after
):
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"

    def run() -> None:
        finetune(
            str(tiny_model_dir), corpus, chunks, TrainSettings(**SETTINGS), out, "run",
            {"other": corpus[:20]}, checkpoint_dir=checkpoints, checkpoint_every=every,
        )  # fmt: skip

    for batch, done in zip(failures, [0, *resumed_after]):
        with monkeypatch.context() as patch:
            interrupt_at(patch, batch - done)  # the batch-th of the run, counted from where it starts
            with pytest.raises(Interrupted):
                run()
        assert (checkpoints / CHECKPOINT_FILE).exists() and not out.exists()
    run()
    assert_same_run(out, uninterrupted)
    assert json.loads((out / "run.json").read_text())["resumed_after_steps"] == resumed_after
    assert not checkpoints.exists()  # removed with the finished run
