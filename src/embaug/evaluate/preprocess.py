"""Embedding preprocessing before kNN (Table S3): raw, centred or PCA-whitened.

Every transform is fitted on the training rows of the evaluation split only and then applied
to all rows, so nothing about the test documents leaks into the reference set or the queries.

Both fit and apply work on blocks of rows, so a 733k x 768 memory-mapped layer never has to be
in memory: the mean and the covariance are summed block by block in float64 (two passes: the mean
first, then the centred scatter matrix, which keeps the sums well conditioned), and whitening is the
projection onto the covariance's eigenvectors scaled by one over the square root of their
eigenvalues: scikit-learn's ``PCA(whiten=True)``, with its sign convention for the components.
The transformed rows are computed whenever a scorer indexes them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import EmbaugError

PREPROCESSINGS = ("raw", "centred", "whitened")
_BLOCK = 16384  # training rows per block while fitting

RowTransform = Callable[[np.ndarray], np.ndarray]


def check_preprocessing(name: str) -> str:
    """Validate a preprocessing name (``raw``, ``centred`` or ``whitened``)."""
    if name not in PREPROCESSINGS:
        raise EmbaugError(f"unknown preprocessing '{name}' (use {', '.join(PREPROCESSINGS)})")
    return name


def _blocks(embeddings, rows: np.ndarray):
    for start in range(0, len(rows), _BLOCK):
        yield np.asarray(embeddings[rows[start : start + _BLOCK]], dtype=np.float64)


def fit_transform(name: str, embeddings, train: np.ndarray) -> RowTransform | None:
    """The ``name`` transform fitted on the ``train`` rows of ``embeddings``; ``None`` for raw."""
    if check_preprocessing(name) == "raw":
        return None
    mean = sum(block.sum(axis=0) for block in _blocks(embeddings, train)) / len(train)
    if name == "centred":
        return lambda rows: rows - mean
    scatter = sum(centred.T @ centred for centred in (block - mean for block in _blocks(embeddings, train)))
    variances, vectors = np.linalg.eigh(scatter / (len(train) - 1))
    kept = np.argsort(variances)[::-1][: min(len(train), len(variances))]  # PCA's component count
    scale = np.maximum(np.sqrt(np.clip(variances[kept], 0.0, None)), np.finfo(np.float64).eps)
    components = vectors[:, kept]
    # scikit-learn's sign convention (svd_flip on the components): each one's largest entry positive
    largest = components[np.abs(components).argmax(axis=0), np.arange(len(kept))]
    projection = components * np.where(largest < 0, -1.0, 1.0) / scale
    return lambda rows: (rows - mean) @ projection


class TransformedRows:
    """``embeddings`` seen through ``transform`` (float64), computed for the rows that are indexed."""

    def __init__(self, embeddings, transform: RowTransform):
        self.embeddings, self.transform = embeddings, transform
        self.shape = (len(embeddings), transform(np.zeros((1, np.shape(embeddings)[1]))).shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        return self.transform(np.asarray(self.embeddings[index], dtype=np.float64))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.concatenate(
            list(map(self.transform, _blocks(self.embeddings, np.arange(len(self)))))
        ).astype(dtype or np.float64)


def preprocessed(scorer: Callable, name: str) -> Callable:
    """``scorer`` applied after the ``name`` transform, fitted on the ``train`` rows only."""
    if check_preprocessing(name) == "raw":
        return scorer

    def score(embeddings, labels: np.ndarray, train: np.ndarray, test: np.ndarray):
        return scorer(
            TransformedRows(embeddings, fit_transform(name, embeddings, train)), labels, train, test
        )

    return score


def metric_name(preprocessing: str, metric: str) -> str:
    """The score file's ``metric`` value: ``euclidean`` for raw, else e.g. ``whitened_cosine``."""
    return metric if preprocessing == "raw" else f"{preprocessing}_{metric}"
