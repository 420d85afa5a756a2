"""Resumable fine-tuning: a run's whole training state in one file, written atomically.

A checkpoint holds what the next batch depends on: weights, optimiser, learning-rate
schedule, loss scaler, every random generator, the step and the log so far. It is keyed by a
fingerprint of the run (settings, base weights, training and evaluation data), so a run whose
config or inputs changed starts afresh instead of continuing another run's training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .io import atomic_path

LOG = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
"""Part of every fingerprint: raised when the file's contents change, so old files are not read."""


def run_fingerprint(
    description: Mapping[str, Any], model: torch.nn.Module, tables: Mapping[str, pd.DataFrame]
) -> str:
    """A hash of what makes a run: ``description`` (JSON-able settings), the model's starting
    weights and the rows of ``tables`` (order included)."""
    described = {"checkpoint_format": CHECKPOINT_FORMAT, **description}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    for name, table in sorted(tables.items()):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def capture_rng(device: torch.device, generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """The states of python's, numpy's and torch's global generators (CPU, and ``device``'s
    CUDA generator that dropout draws from on a GPU) and of the named ``generators``."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()  # plain data for weights_only
    states = {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
        "generators": {name: generator.get_state() for name, generator in generators.items()},
    }
    if device.type == "cuda":  # only the training device: a resumed job may be given another GPU
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(
    states: Mapping[str, Any], device: torch.device, generators: Mapping[str, torch.Generator]
) -> None:
    """Put back the generator states :func:`capture_rng` took."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = {**states["numpy"], "state": dict(states["numpy"]["state"])}
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


class Checkpoints:
    """The checkpoint of one run in ``folder`` (``None``: no checkpoints), every ``every`` steps.

    Only a checkpoint with the same ``fingerprint`` is resumed; another one is ignored (with a
    log line) and replaced by this run's first checkpoint.
    """

    def __init__(self, folder: str | Path | None, every: int, fingerprint: str) -> None:
        self.path = Path(folder) / CHECKPOINT_FILE if folder else None
        self.every, self.fingerprint = every, fingerprint

    def due(self, step: int, total_steps: int) -> bool:
        """Whether to save after ``step`` (never after the last: the finished run is saved instead)."""
        return self.path is not None and self.every > 0 and step % self.every == 0 and step < total_steps

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (with this run's fingerprint) atomically: a kill mid-write keeps the last one."""
        assert self.path is not None
        with atomic_path(self.path) as tmp:
            torch.save({**state, "fingerprint": self.fingerprint}, tmp)

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or ``None`` when there is none (or only another run's)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            LOG.warning("%s: ignored, it cannot be read (%s); starting afresh", self.path, exc)
            return None
        if state.get("fingerprint") != self.fingerprint:
            LOG.warning(
                "%s: ignored, it was written by a run with other settings or inputs; starting afresh",
                self.path,
            )
            return None
        return state

    def remove(self) -> None:
        """Delete the checkpoint, left-overs of interrupted writes, and the run's folder if empty."""
        if self.path is None:
            return
        for stale in [self.path, *self.path.parent.glob(f".{CHECKPOINT_FILE}.tmp-*")]:
            stale.unlink(missing_ok=True)
        if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()
