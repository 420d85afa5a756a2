"""Two-dimensional t-SNE maps of document embeddings (the paper's Figure 2), with openTSNE."""

from __future__ import annotations

import numpy as np

from ..errors import EmbaugError

SMALL = 5000  # below this many documents threads cost more than they save (one thread is used)


def tsne_map(
    embeddings: np.ndarray,
    perplexity: float = 30.0,
    learning_rate: float | str = "auto",
    n_iter: int = 500,
    seed: int = 42,
    n_jobs: int = 1,
) -> np.ndarray:
    """t-SNE coordinates ``[n_docs, 2]`` (float32) of ``embeddings [n_docs, dim]``.

    openTSNE with PCA initialisation, Euclidean affinities, early exaggeration 12 for 250
    iterations, then ``n_iter`` iterations; ``learning_rate="auto"`` is openTSNE's n / 12.
    The perplexity is lowered to ``(n - 1) / 3`` for tiny inputs (openTSNE needs 3 x perplexity
    neighbours). The same inputs and seed give the same map; ``n_jobs`` threads are used
    from ``SMALL`` documents on.
    """
    from openTSNE import TSNE

    embeddings = np.asarray(embeddings, dtype=np.float32)
    n_docs = len(embeddings)
    if n_docs < 4:
        raise EmbaugError(f"t-SNE needs at least 4 documents, got {n_docs}")
    if not np.isfinite(embeddings).all():
        raise EmbaugError("t-SNE: embeddings contain NaN or infinite values")
    tsne = TSNE(
        perplexity=min(float(perplexity), (n_docs - 1) / 3),
        learning_rate=learning_rate,
        n_iter=n_iter,
        initialization="pca",
        metric="euclidean",
        n_jobs=n_jobs if n_docs >= SMALL else 1,
        random_state=seed,
        verbose=False,
    )
    return np.asarray(tsne.fit(embeddings), dtype=np.float32)


def last_layer(layers: np.ndarray, layer_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """The embeddings of the deepest stored layer and its index."""
    position = int(np.argmax(layer_ids))
    return layers[position], int(layer_ids[position])
