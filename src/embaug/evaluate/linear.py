"""Linear-probe accuracy: logistic regression on the same split as kNN."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    max_iter: int = 1000,
    seed: int = 42,
) -> float:
    """Accuracy of standardised-feature logistic regression fitted on ``train``, scored on ``test``."""
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    classifier.fit(embeddings[train], labels[train])
    return float(classifier.score(embeddings[test], labels[test]))
