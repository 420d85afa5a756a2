"""Device choice: `auto` is CUDA when torch sees a GPU (only those CUDA_VISIBLE_DEVICES exposes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from embaug.models import resolve_device


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_picks_cuda_only_when_present(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == torch.device("cuda" if cuda else "cpu")
    assert resolve_device() == resolve_device("auto")


def test_explicit_devices_are_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cpu") == torch.device("cpu")  # cpu even with a GPU present
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


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


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_gpu
def test_hidden_gpus_mean_cpu():
    assert visible_devices("") == ("cpu", 0)


@needs_gpu
def test_a_job_sees_only_the_gpu_it_was_given():
    """What SLURM's gres (or a user's CUDA_VISIBLE_DEVICES) does: one device, and `auto` uses it."""
    last = str(torch.cuda.device_count() - 1)
    assert visible_devices(last) == ("cuda", 1)
