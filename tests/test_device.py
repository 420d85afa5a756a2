"""Device choice: `auto` is CUDA when torch sees a GPU (only those CUDA_VISIBLE_DEVICES exposes);
with several GPUs, each job takes one no other job holds (a file lock per device)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch

from embaug import devices
from embaug.devices import claim_slot, device_ids
from embaug.errors import EmbaugError
from embaug.models import resolve_device


@pytest.fixture(autouse=True)
def fresh_gpu_choice(monkeypatch, tmp_path):
    """Each test chooses its GPU afresh, with its own lock folder, and gives back what it held."""
    monkeypatch.setenv(devices.LOCK_DIR_VARIABLE, str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    devices.own_gpu.cache_clear()
    yield
    devices.own_gpu.cache_clear()
    while devices._held:
        devices._held.pop().close()


@pytest.fixture
def fake_gpus(monkeypatch) -> list[int]:
    """Four fake GPUs; returns the indices ``torch.cuda.set_device`` was called with."""
    selected: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    return selected


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_picks_cuda_only_when_present(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))  # one GPU: no choice to make
    assert resolve_device("auto") == torch.device("cuda" if cuda else "cpu")
    assert resolve_device() == resolve_device("auto")


def test_explicit_devices_are_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cpu") == torch.device("cpu")  # cpu even with a GPU present
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("device", "cuda", "count", "message"),
    [
        ("cuda", False, 0, "device: 'cuda', but torch {version} has no CUDA ({why}); set device: auto (CUDA "
         "when present, else the CPU) or cpu"),
        ("cuda:0", False, 0, "device: 'cuda:0', but torch {version} has no CUDA"),
        ("cuda:2", True, 2, "device: 'cuda:2', but torch sees 2 CUDA devices (cuda:0 to cuda:1); set device: "
         "auto (CUDA when present, else the CPU) or cpu, or a device number below 2"),
    ],
)  # fmt: skip
def test_a_cuda_device_torch_cannot_use_is_one_line(monkeypatch, device, cuda, count, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    why = "a CPU-only build" if torch.version.cuda is None else "no GPU or driver visible to it"
    with pytest.raises(EmbaugError) as info:
        resolve_device(device)
    assert str(info.value).startswith(message.format(version=torch.__version__, why=why))


def test_embed_stage_on_a_missing_cuda_is_one_line(monkeypatch, capsys, tmp_path, corpus, tiny_model_dir):
    from embaug.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    out = tmp_path / "emb"
    args = [
        "embed",
        "--model",
        str(tiny_model_dir),
        "--corpus",
        str(raw),
        "--device",
        "cuda",
        "--out",
        str(out),
    ]
    assert main(args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embaug embed: error: device: 'cuda', but torch ")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_workflow_with_cuda_but_no_cuda_stops_before_any_job(tmp_path):
    """A local run: the check runs once the DAG is known, before the first job (and frees the lock)."""
    from test_shell_safety import tiny_config, write_data
    from test_workflow import output, snakemake

    config = {**tiny_config(write_data(tmp_path / "data")), "device": "cuda"}
    earlier = tmp_path / "results" / "scores" / "earlier.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("kept\n")
    result = snakemake(tmp_path, config)
    text = output(result)
    assert result.returncode != 0
    assert f"config: device: 'cuda', but torch {torch.__version__} has no CUDA" in text, text[-3000:]
    assert not (tmp_path / "data" / "test").exists() and not (tmp_path / "logs").exists()  # no job ran
    assert earlier.read_text() == "kept\n" and not (tmp_path / ".snakemake" / "locks").exists()
    assert "Traceback" not in text


def visible_devices(mask: str) -> tuple[str, int]:
    """``resolve_device('auto')`` and the GPU count in a fresh process with CUDA_VISIBLE_DEVICES=mask."""
    code = (
        "import torch; from embaug.models import resolve_device; "
        "print(resolve_device('auto'), torch.cuda.device_count())"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": mask}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    device, count = result.stdout.split()
    return device, int(count)


needs_gpu = pytest.mark.gpu  # deselected by default; `pytest -m gpu` on a machine with CUDA


@needs_gpu
def test_hidden_gpus_mean_cpu():
    assert visible_devices("") == ("cpu", 0)


@needs_gpu
def test_a_job_sees_only_the_gpu_it_was_given():
    """What SLURM's gres (or a user's CUDA_VISIBLE_DEVICES) does: one device, and `auto` uses it."""
    last = str(torch.cuda.device_count() - 1)
    assert visible_devices(last) == ("cuda", 1)


def lock_files() -> list[str]:
    folder = devices.lock_dir()
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_a_job_takes_a_gpu_no_other_job_holds(fake_gpus):
    assert claim_slot(device_ids(4), devices.lock_dir()) == 0  # another holder of cuda:0 (a new lock)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)  # chosen once per process
    assert fake_gpus == [1]  # made the current device, so plain "cuda" elsewhere lands there too
    assert lock_files() == ["cuda-0.lock", "cuda-1.lock"]
    assert (devices.lock_dir() / "cuda-1.lock").read_text() == f"{os.getpid()}\n"


def test_explicit_devices_and_cpu_take_no_gpu_slot(fake_gpus, monkeypatch):
    assert resolve_device("cuda:3") == torch.device("cuda", 3)
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert fake_gpus == [] and lock_files() == []


def test_a_single_visible_gpu_is_used_as_the_scheduler_gave_it(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what SLURM's --gpus=1 does
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    assert fake_gpus == [] and lock_files() == []


def test_locks_are_named_after_the_visible_device_ids(fake_gpus, monkeypatch):
    """Jobs of two allocations on one node (say GPUs 5,6 and 6,7) agree on which lock is GPU 6."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6,MIG-GPU-ab/1/0,7")
    assert device_ids(4) == ["5", "6", "MIG-GPU-ab_1_0", "7"]
    assert claim_slot(["6"], devices.lock_dir()) == 0
    assert resolve_device("auto") == torch.device("cuda", 0)  # GPU 5
    assert claim_slot(["5", "6"], devices.lock_dir()) is None  # both held now
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert device_ids(3) == ["0", "1", "2"]  # fewer ids than devices: fall back to indices


def hold_a_gpu(connection) -> None:
    """A job: takes a GPU, reports it and what it logged, then holds it until told to stop."""
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    devices.LOG.addHandler(handler)
    devices.LOG.setLevel(logging.INFO)
    connection.send((str(devices.own_gpu()), logged))
    connection.recv()


class Job:
    """:func:`hold_a_gpu` in a forked process (it inherits the test's four fake GPUs)."""

    def __init__(self) -> None:
        self.connection, child_end = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=hold_a_gpu, args=(child_end,))
        self.process.start()

    def gpu(self) -> tuple[str, list[str]]:
        return self.connection.recv()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no clean-up runs; the operating system drops the lock
        self.process.join()


def test_concurrent_jobs_get_their_own_gpus_and_a_killed_job_frees_its_own(fake_gpus):
    jobs = [Job() for _ in range(4)]  # started together: they race for the locks
    try:
        gpus = [job.gpu()[0] for job in jobs]
        assert sorted(gpus) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
        jobs.pop(gpus.index("cuda:2")).kill()
        jobs.append(Job())
        lock = devices.lock_dir() / "cuda-2.lock"
        assert jobs[-1].gpu() == ("cuda:2", [f"computing on cuda:2 (GPU 2), held through {lock}"])
        jobs.append(Job())  # a fifth job while all four are held: shares one, and says so
        gpu, logged = jobs[-1].gpu()
        assert gpu in gpus and logged[0].startswith("all 4 GPUs are held by other embaug jobs")
    finally:
        for job in jobs:
            job.kill()
