"""Bag-of-words baselines (TF-IDF, TF-IDF + truncated SVD) as kNN-ready document vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from ..errors import EmbaugError


def tfidf_vectors(texts: Sequence[str], fit_rows: np.ndarray, settings: dict[str, Any]) -> sparse.csr_matrix:
    """L2-normalised TF-IDF rows of every text, vocabulary and idf fitted on ``fit_rows`` only.

    ``settings`` are :class:`~sklearn.feature_extraction.text.TfidfVectorizer` arguments
    (e.g. ``sublinear_tf``, ``min_df``); an invalid one raises :class:`EmbaugError` naming it.
    """
    texts = np.asarray(texts, dtype=object)
    try:
        vectorizer = TfidfVectorizer(**settings).fit(texts[fit_rows])
    except (TypeError, ValueError) as exc:
        raise EmbaugError(f"baselines.tfidf {settings}: {exc}") from exc
    return vectorizer.transform(texts).tocsr()


def svd_vectors(vectors: sparse.spmatrix, fit_rows: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """Truncated SVD of TF-IDF rows, fitted on ``fit_rows`` only (components capped by the vocabulary)."""
    n_components = min(n_components, vectors.shape[1] - 1)
    if n_components < 1:
        raise EmbaugError("baselines.svd_components: the TF-IDF vocabulary is too small for an SVD")
    svd = TruncatedSVD(n_components=n_components, random_state=seed).fit(vectors[fit_rows])
    return svd.transform(vectors).astype(np.float32)
