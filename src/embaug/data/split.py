"""Which documents are labelled, and the labelled-document split every per-document metric shares.

Data handling below both the corpus loaders (:mod:`embaug.data.sources` subsamples with it) and
the evaluation stages (kNN, linear probe, t-SNE and the held-out set split with it).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import EmbaugError

UNLABELED = "unlabeled"
"""The label a document without one gets in the corpus table; such documents are left out of the
split."""


def labelled_split(
    labels: np.ndarray, test_fraction: float = 0.1, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a random train/test split of the labelled documents (``unlabeled`` left out)."""
    labelled = np.flatnonzero(np.asarray(labels) != UNLABELED)
    if len(labelled) < 2:
        raise EmbaugError("fewer than two labelled documents: nothing to evaluate")
    train, test = train_test_split(labelled, test_size=test_fraction, random_state=seed)
    return np.sort(train), np.sort(test)


def stratified_subsample(rows: np.ndarray, labels: np.ndarray, size: int | None, seed: int) -> np.ndarray:
    """``rows`` (sorted), or when there are more than ``size`` of them a seeded subsample of ``size``
    rows stratified by ``labels[rows]`` (a plain random one where a label is too rare to stratify)."""
    rows = np.asarray(rows)
    if size is None or len(rows) <= size:
        return rows
    try:
        kept, _ = train_test_split(rows, train_size=size, stratify=labels[rows], random_state=seed)
    except ValueError:  # a label with a single document cannot be stratified
        kept, _ = train_test_split(rows, train_size=size, random_state=seed)
    return np.sort(kept)
