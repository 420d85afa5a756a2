"""One GPU per job on a machine with several: a device slot claimed by a file lock.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once, but does not tell a job
which device to use, so without help every job would compute on the first GPU. A job that
asks for ``auto`` or ``cuda`` and sees several GPUs therefore takes the first device that no
other embaug process holds: an exclusive, non-blocking ``flock`` on one lock file per device,
kept until the process ends. The operating system drops a lock when its process exits or is
killed, so a crashed or killed job never keeps a device from the next one.

A scheduler's choice is kept: a job that sees a single GPU (SLURM's ``--gpus=1`` sets
CUDA_VISIBLE_DEVICES to it) uses that one without any lock; when CUDA_VISIBLE_DEVICES exposes
several, the job chooses among those only, and the lock files are named after their ids, so
jobs of different allocations on one node agree on which physical GPU a lock stands for.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import IO

import torch

from .errors import EmbaugError

LOG = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "EMBAUG_GPU_LOCKS"
"""Environment variable naming the lock folder (default: ``embaug-gpu-locks`` in the temp dir)."""

_held: list[IO[str]] = []  # open lock files of the claimed slots: closing one would free its device


def check_device(device: str) -> None:
    """``cuda`` or ``cuda:N`` must be a device torch can use: one line naming the ``device`` key when
    torch has no CUDA (a CPU-only build, or no GPU or driver visible) or no device ``N``."""
    if not device.startswith("cuda"):
        return
    fix = "set device: auto (CUDA when present, else the CPU) or cpu"
    if not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else "no GPU or driver visible to it"
        raise EmbaugError(f"device: '{device}', but torch {torch.__version__} has no CUDA ({why}); {fix}")
    count = torch.cuda.device_count()
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise EmbaugError(
            f"device: '{device}', but torch sees {count} CUDA device{'s' if count > 1 else ''} "
            f"(cuda:0 to cuda:{count - 1}); {fix}, or a device number below {count}"
        )


def lock_dir() -> Path:
    """The folder of the per-device lock files, shared by every job on this machine."""
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / "embaug-gpu-locks")


def device_ids(count: int) -> list[str]:
    """A name per visible device for its lock file: its id in CUDA_VISIBLE_DEVICES, else its index."""
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    ids = visible[:count] if len(visible) >= count and all(visible[:count]) else map(str, range(count))
    return [re.sub(r"[^A-Za-z0-9_.-]", "_", device_id) for device_id in ids]  # MIG ids hold '/'


def claim_slot(names: list[str], folder: Path) -> int | None:
    """Index of the first of ``names`` whose lock this process takes, or ``None`` if all are held.

    The lock lasts as long as this process; its file holds the process id, for people asking
    which job uses a device.
    """
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # like /tmp: every user's jobs share the machine's GPUs
            folder.chmod(0o1777)
    for index, name in enumerate(names):
        handle = open(folder / f"cuda-{name}.lock", "a+")  # noqa: SIM115 (kept open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held.append(handle)
        return index
    return None


@functools.cache
def own_gpu() -> torch.device:
    """The GPU this process computes on, chosen once (see the module's docstring).

    Several visible GPUs: the first free slot, made torch's current device, so code that says
    ``cuda`` lands there too; all slots held: the job shares one, with a warning. One GPU:
    ``cuda`` as it is.
    """
    count = torch.cuda.device_count()
    if count < 2:
        return torch.device("cuda")
    folder = lock_dir()
    names = device_ids(count)
    try:
        index = claim_slot(names, folder)
    except OSError as exc:
        LOG.warning("GPU lock folder %s cannot be used (%s): computing on the current GPU", folder, exc)
        return torch.device("cuda")
    if index is None:
        index = os.getpid() % count
        LOG.warning(
            "all %d GPUs are held by other embaug jobs (locks in %s): sharing cuda:%d; "
            "run snakemake with --resources gpu=%d to start no more GPU jobs than GPUs",
            count, folder, index, count,
        )  # fmt: skip
    else:
        LOG.info("computing on cuda:%d (GPU %s), held through %s", index, names[index], _held[-1].name)
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
