"""Per-layer score tables: one row per layer and metric variant."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .split import labelled_split

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def score_layers(
    layers: np.ndarray,
    layer_ids: Sequence[int],
    labels: np.ndarray,
    scorers: dict[str, Scorer],
    test_fraction: float = 0.1,
    seed: int = 42,
) -> pd.DataFrame:
    """Score every layer ``[n_layers, n_docs, dim]`` with every named scorer on one split.

    Returns ``layer, metric, accuracy, n_train, n_test``.
    """
    labels = np.asarray(labels)
    train, test = labelled_split(labels, test_fraction, seed)
    rows = []
    for layer, embeddings in tqdm(list(zip(layer_ids, layers)), desc="score layers", unit="layer"):
        for metric, scorer in scorers.items():
            accuracy = scorer(embeddings, labels, train, test)
            rows.append((int(layer), metric, accuracy, len(train), len(test)))
    return pd.DataFrame(rows, columns=["layer", "metric", "accuracy", "n_train", "n_test"])
