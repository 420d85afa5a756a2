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
import yaml
from transformers import AutoModel

from embaug import train
from embaug.checkpoint import CHECKPOINT_FILE, capture_rng, restore_rng
from embaug.cli import main
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
def run(tiny_model_dir, corpus, chunks):
    """``run(out, checkpoint_dir=None, checkpoint_every=0, **settings)``: the tiny run (SETTINGS)."""

    def run(out: Path, checkpoint_dir: Path | None = None, checkpoint_every: int = 0, **settings) -> None:
        finetune(
            str(tiny_model_dir), corpus, chunks, TrainSettings(**{**SETTINGS, **settings}), out, "run",
            {"other": corpus[:20]}, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        )  # fmt: skip

    return run


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "model"
    run(out)
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
    monkeypatch, tmp_path, run, uninterrupted, every, failures, resumed_after
):
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    for batch, done in zip(failures, [0, *resumed_after]):
        with monkeypatch.context() as patch:
            interrupt_at(patch, batch - done)  # the batch-th of the run, counted from where it starts
            with pytest.raises(Interrupted):
                run(out, checkpoints, every)
        assert (checkpoints / CHECKPOINT_FILE).exists() and not out.exists()
    run(out, checkpoints, every)
    assert_same_run(out, uninterrupted)
    assert json.loads((out / "run.json").read_text())["resumed_after_steps"] == resumed_after
    assert not checkpoints.exists()  # removed with the finished run


def test_a_checkpoint_of_other_settings_or_inputs_is_not_resumed(
    monkeypatch, caplog, tmp_path, run, uninterrupted
):
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    with monkeypatch.context() as patch:
        interrupt_at(patch, 7)
        with pytest.raises(Interrupted):
            run(out, checkpoints, 3, learning_rate=5.0e-4)
    with caplog.at_level(logging.WARNING):
        run(out, checkpoints, 0)  # saves no checkpoints (0), but reads the folder and cleans it up
    message = "ignored, it was written by a run with other settings or inputs"
    assert f"{checkpoints / CHECKPOINT_FILE}: {message}" in caplog.text
    assert_same_run(out, uninterrupted)
    assert json.loads((out / "run.json").read_text())["resumed_after_steps"] == []
    assert not checkpoints.exists()


def test_an_unreadable_checkpoint_is_not_resumed(caplog, tmp_path, run, uninterrupted):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        run(tmp_path / "model", checkpoints, 5)
    assert f"{checkpoints / CHECKPOINT_FILE}: ignored, it cannot be read" in caplog.text
    assert_same_run(tmp_path / "model", uninterrupted)
    assert not checkpoints.exists()


def test_the_fingerprint_covers_settings_weights_and_data(tiny_model, corpus):
    from embaug.checkpoint import run_fingerprint

    model, _ = tiny_model
    key = run_fingerprint({"lr": 1}, model, {"corpus": corpus})
    assert run_fingerprint({"lr": 1}, model, {"corpus": corpus.copy()}) == key
    assert run_fingerprint({"lr": 2}, model, {"corpus": corpus}) != key
    assert run_fingerprint({"lr": 1}, model, {"corpus": corpus[::-1]}) != key  # another order
    edited = corpus.assign(text=corpus["text"].str.replace("the", "a", n=1))
    assert run_fingerprint({"lr": 1}, model, {"corpus": edited}) != key
    other_model = type(model)(model.config)  # other weights, same shapes
    assert run_fingerprint({"lr": 1}, other_model, {"corpus": corpus}) != key


def test_random_states_survive_a_checkpoint_file(tmp_path):
    generator = torch.Generator().manual_seed(7)

    def draws() -> tuple[float, ...]:
        return (
            random.random(),
            np.random.rand(),
            torch.rand(1).item(),
            torch.rand(1, generator=generator).item(),
        )

    draws()
    torch.save(capture_rng(torch.device("cpu"), {"masks": generator}), tmp_path / "rng.pt")
    first = draws()
    draws()
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), torch.device("cpu"), {"masks": generator})
    assert draws() == first


def test_a_killed_embaug_finetune_resumes_when_rerun(
    caplog, tmp_path, tiny_model_dir, corpus, chunks, uninterrupted
):
    """`embaug finetune` in a process killed (SIGKILL) after its first checkpoint, then run again."""
    corpus.to_parquet(tmp_path / "corpus.parquet", index=False)
    corpus[:20].to_parquet(tmp_path / "other.parquet", index=False)
    chunks.to_parquet(tmp_path / "chunks.parquet", index=False)
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    arguments = [
        "finetune", "--model", str(tiny_model_dir), "--run", "run",
        "--corpus", str(tmp_path / "corpus.parquet"), "--chunks", str(tmp_path / "chunks.parquet"),
        "--eval-corpus", f"other={tmp_path / 'other.parquet'}", "--settings", json.dumps(SETTINGS),
        "--threads", "1", "--checkpoint-dir", str(checkpoints), "--checkpoint-every", "2", "--out", str(out),
    ]  # fmt: skip
    job = subprocess.Popen([sys.executable, "-m", "embaug.cli", *arguments], stderr=subprocess.DEVNULL)
    while not (checkpoints / CHECKPOINT_FILE).exists() and job.poll() is None:
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL and not out.exists()
    done = torch.load(checkpoints / CHECKPOINT_FILE, weights_only=True)["record"]["log"][-1][0]
    assert 2 <= done < 15

    with caplog.at_level(logging.INFO):
        assert main(arguments) == 0  # the rerun (in this process: it spares a second start-up)
    assert f"run 'run': resuming after batch {done} of 15" in caplog.text
    assert_same_run(out, uninterrupted)
    assert not checkpoints.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_to_snakemake_alone_stops_its_jobs_and_the_rerun_continues(tmp_path, signum):
    """`kill PID` of snakemake (not of its jobs): the running fine-tuning stops within seconds with
    one line, keeping its checkpoint; no lock is left, and the same command resumes the run."""
    from test_shell_safety import tiny_config, write_data
    from test_workflow import REPO_ROOT, output, snakemake

    config = tiny_config(write_data(tmp_path / "data"))
    config["training"] = {
        "epochs": 40,
        "batch_size": 8,
        "max_length": 32,
        "eval_every": 0,
        "checkpoint_every": 5,
    }
    target = "results/test/models/tiny__docs__crops"
    checkpoint = tmp_path / "results" / "test" / "checkpoints" / "tiny__docs__crops" / CHECKPOINT_FILE
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--cores", "2", target,
               "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    run = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, run.communicate()[0][-3000:]
    jobs = [int(pid) for pid in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()]
    os.kill(run.pid, signum)
    stopped = time.monotonic()
    text = run.communicate(timeout=120)[0]
    assert run.returncode != 0 and time.monotonic() - stopped < 60
    assert not any(Path(f"/proc/{pid}").exists() for pid in jobs)  # the fine-tuning job ended with it
    log = (tmp_path / "logs" / "test" / "finetune" / "tiny__docs__crops.log").read_text().strip().splitlines()
    assert log[-1] == (
        "embaug finetune: error: stopped by SIGTERM (the run was interrupted); run the same snakemake "
        "command again to continue"
    ), text[-3000:]
    assert checkpoint.exists() and not (tmp_path / target).exists()
    assert not (tmp_path / ".snakemake" / "locks").exists() or not any(
        (tmp_path / ".snakemake" / "locks").iterdir()
    )

    rerun = snakemake(tmp_path, config, target)  # no --unlock
    assert rerun.returncode == 0, output(rerun)[-3000:]
    log = (tmp_path / "logs" / "test" / "finetune" / "tiny__docs__crops.log").read_text()
    assert "run 'tiny__docs__crops': resuming after batch" in log and (tmp_path / target).is_dir()
    assert not checkpoint.exists()
