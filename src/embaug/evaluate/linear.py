"""Linear-probe accuracy: logistic regression on the same split as kNN.

The authors' probe (``lin_acc`` in berenslab/text-embed-augm, ``text_embeddings_src/metrics.py``):
standardised features, then multinomial logistic regression with no penalty, solver saga,
tol 1e-2, at most 1000 epochs. :class:`LinearSettings` holds those settings as defaults.

At paper scale (arXiv: 660k training documents x 768 dimensions x 180 classes) saga's cost and a
float32 copy of the training rows grow with the training split, so ``max_train`` caps it: a
stratified subsample of at most that many training documents is fitted (the test documents are
all scored), and the score file records how many were used (``n_fit``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..data.split import stratified_subsample
from ..store import float32_rows


@dataclass(frozen=True)
class LinearSettings:
    """Logistic-regression probe settings (defaults: the authors').

    ``C``: inverse L2 strength, ``None`` for no penalty; ``max_train``: fit on a stratified
    subsample of at most this many training documents (``None``: all).
    """

    C: float | None = None
    solver: str = "saga"
    tol: float = 1e-2
    max_iter: int = 1000
    max_train: int | None = 100_000
    seed: int = 42


def probe(settings: LinearSettings = LinearSettings()) -> Pipeline:
    """The unfitted probe: standardisation, then logistic regression with ``settings``."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=np.inf if settings.C is None else settings.C,
            solver=settings.solver,
            tol=settings.tol,
            max_iter=settings.max_iter,
            random_state=settings.seed,
        ),
    )


def linear_accuracy(
    embeddings: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    settings: LinearSettings = LinearSettings(),
) -> float:
    """Accuracy on ``test`` of standardised-feature logistic regression fitted on ``train``
    (a stratified subsample of at most ``settings.max_train`` of them).

    ``embeddings`` may be a read-only memory map; only the fitted and test rows are read.
    A fit that stops at ``max_iter`` before reaching ``tol`` is kept (as the authors' is).
    """
    fit = stratified_subsample(train, labels, settings.max_train, settings.seed)
    classifier = probe(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(float32_rows(embeddings, fit), labels[fit])
    return float(classifier.score(float32_rows(embeddings, test), labels[test]))
