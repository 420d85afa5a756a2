"""k-nearest-neighbour accuracy of embeddings (the paper's Table 2 metric)."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def knn_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 10,
    metric: str = "euclidean",
) -> float:
    """Accuracy of a brute-force ``k``-NN classifier fitted on ``train`` rows, scored on ``test``."""
    classifier = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute")
    classifier.fit(embeddings[train], labels[train])
    return float(classifier.score(embeddings[test], labels[test]))
