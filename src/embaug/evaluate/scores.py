"""Per-layer score tables: one row per layer and metric variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.split import labelled_split

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]
# several named scores from one call: (embeddings, labels, train, test) -> {metric: accuracy}
MultiScorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


def score_layers(
    layers: Sequence,
    layer_ids: Sequence[int],
    labels: np.ndarray,
    scorers: Mapping[str, Scorer] | MultiScorer,
    test_fraction: float = 0.1,
    seed: int = 42,
) -> pd.DataFrame:
    """Score every layer (each ``[n_docs, dim]``: an array, a memory map or a sparse matrix) on one split.

    ``scorers`` names one scorer per metric, or is one scorer returning ``{metric: accuracy}`` (so
    metrics can share work). Returns ``layer, metric, accuracy, n_train, n_test``.
    """
    labels = np.asarray(labels)
    train, test = labelled_split(labels, test_fraction, seed)
    score_all = _each(scorers) if isinstance(scorers, Mapping) else scorers
    rows = []
    pairs = zip(layer_ids, layers)  # lazily: a store maps one layer at a time
    for layer, embeddings in tqdm(pairs, total=len(layer_ids), desc="score layers", unit="layer"):
        for metric, accuracy in score_all(embeddings, labels, train, test).items():
            rows.append((int(layer), metric, accuracy, len(train), len(test)))
    return pd.DataFrame(rows, columns=["layer", "metric", "accuracy", "n_train", "n_test"])


def _each(scorers: Mapping[str, Scorer]) -> MultiScorer:
    def score(embeddings, labels, train, test) -> dict[str, float]:
        return {metric: scorer(embeddings, labels, train, test) for metric, scorer in scorers.items()}

    return score
