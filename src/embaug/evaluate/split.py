"""The labelled-document split every per-document metric shares."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ..data.sources import UNLABELED
from ..errors import EmbaugError


def labelled_split(
    labels: np.ndarray, test_fraction: float = 0.1, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a random train/test split of the labelled documents (``unlabeled`` left out)."""
    labelled = np.flatnonzero(np.asarray(labels) != UNLABELED)
    if len(labelled) < 2:
        raise EmbaugError("fewer than two labelled documents: nothing to evaluate")
    train, test = train_test_split(labelled, test_size=test_fraction, random_state=seed)
    return np.sort(train), np.sort(test)
