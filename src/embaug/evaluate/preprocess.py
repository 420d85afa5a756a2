"""Embedding preprocessing before kNN (Table S3): raw, centred or PCA-whitened.

Every transform is fitted on the training rows of the evaluation split only and then applied
to all rows, so nothing about the test documents leaks into the reference set or the queries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from ..errors import EmbaugError
from .scores import Scorer

PREPROCESSINGS: dict[str, Callable[[], TransformerMixin] | None] = {
    "raw": None,
    "centred": lambda: StandardScaler(with_std=False),
    "whitened": lambda: PCA(whiten=True, svd_solver="full"),
}


def check_preprocessing(name: str) -> str:
    """Validate a preprocessing name (``raw``, ``centred`` or ``whitened``)."""
    if name not in PREPROCESSINGS:
        raise EmbaugError(f"unknown preprocessing '{name}' (use {', '.join(PREPROCESSINGS)})")
    return name


def preprocessed(scorer: Scorer, name: str) -> Scorer:
    """``scorer`` applied after the ``name`` transform, fitted on the ``train`` rows only."""
    make = PREPROCESSINGS[check_preprocessing(name)]
    if make is None:
        return scorer

    def score(embeddings: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
        transform = make().fit(embeddings[train])
        return scorer(transform.transform(embeddings).astype(np.float32), labels, train, test)

    return score


def metric_name(preprocessing: str, metric: str) -> str:
    """The score file's ``metric`` value: ``euclidean`` for raw, else e.g. ``whitened_cosine``."""
    return metric if preprocessing == "raw" else f"{preprocessing}_{metric}"
