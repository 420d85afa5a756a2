"""Two-dimensional t-SNE maps of document embeddings (the paper's Figure 2), with openTSNE.

The authors' map (``run_tsne_simple`` in berenslab/text-embed-augm,
``text_embeddings_src/dim_red.py``): uniform affinities over the k = 10 exact nearest
neighbours (openTSNE ``affinity.Uniform``), spectral initialisation, openTSNE's defaults
otherwise (learning rate n / 12, early exaggeration for 250 iterations, then 500). Those are
:class:`TsneSettings`' defaults; perplexity-based affinities remain an option.

At paper scale two things are capped and recorded (:meth:`TsneSettings.describe`): more than
``max_docs`` documents are mapped as a stratified subsample of that size, and neighbours are
exact up to ``EXACT_NEIGHBORS_MAX`` documents and approximate (Annoy) above (``neighbors:
auto``); openTSNE uses its FFT-accelerated gradients from 10,000 documents on.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import EmbaugError

SMALL = 5000  # below this many documents threads cost more than they save (one thread is used)
EXACT_NEIGHBORS_MAX = 200_000
"""``neighbors: auto`` finds exact neighbours up to this many documents, approximate ones above: the
default ``max_docs``, so every default map has the authors' exact neighbours (bioRxiv, 53,787, and
StackExchange, 75,000, in the paper's Figure 2 included). openTSNE's exact search of 10,000 x 768
took 4.1 s on one core, growing with the square of the documents: about 2 and 4 minutes for those
two, 27 for a 200,000-document map."""
AFFINITIES = ("uniform", "perplexity")
NEIGHBORS = ("auto", "exact", "approx")


@dataclass(frozen=True)
class TsneSettings:
    """t-SNE settings (defaults: the authors').

    ``affinity``: ``uniform`` over ``k`` neighbours, or ``perplexity`` (Gaussian, ``perplexity``);
    ``initialization``: openTSNE's ``spectral``, ``pca`` or ``random``; ``neighbors``: ``exact``,
    ``approx`` (Annoy) or ``auto``; ``max_docs``: map a stratified subsample of at most this many
    documents (``None``: all).
    """

    affinity: str = "uniform"
    k: int = 10
    perplexity: float = 30.0
    initialization: str = "spectral"
    neighbors: str = "auto"
    learning_rate: float | str = "auto"
    n_iter: int = 500
    max_docs: int | None = 200_000
    seed: int = 42

    def __post_init__(self) -> None:
        if self.affinity not in AFFINITIES:
            raise EmbaugError(f"t-SNE affinity '{self.affinity}': use one of {', '.join(AFFINITIES)}")
        if self.neighbors not in NEIGHBORS:
            raise EmbaugError(f"t-SNE neighbors '{self.neighbors}': use one of {', '.join(NEIGHBORS)}")

    def neighbor_method(self, n_docs: int) -> str:
        """openTSNE's neighbour search for ``n_docs`` documents: ``exact`` or ``annoy``."""
        exact = self.neighbors == "exact" or (self.neighbors == "auto" and n_docs <= EXACT_NEIGHBORS_MAX)
        return "exact" if exact else "annoy"

    def describe(self, n_mapped: int, n_docs: int) -> str:
        """What a map of ``n_mapped`` of ``n_docs`` documents used, in one line."""
        what = f"k={self.k} uniform" if self.affinity == "uniform" else f"perplexity {self.perplexity:g}"
        sample = f"{n_docs} documents"
        if n_mapped < n_docs:
            sample = f"{n_mapped} of {n_docs} documents (stratified)"
        return f"{sample}, {what}, {self.neighbor_method(n_mapped)} neighbours, {self.initialization} init"


def tsne_map(embeddings: np.ndarray, settings: TsneSettings = TsneSettings(), n_jobs: int = 1) -> np.ndarray:
    """t-SNE coordinates ``[n_docs, 2]`` (float32) of ``embeddings [n_docs, dim]``.

    Euclidean neighbours; ``k`` (uniform) or ``3 x perplexity`` (perplexity) of them, lowered to
    ``n - 1`` for tiny inputs. The same inputs and settings give the same map; ``n_jobs`` threads
    are used from ``SMALL`` documents on. openTSNE's progress (the neighbour search, then the KL
    divergence every 50 iterations) goes to stderr, as the other stages' bars: a job's log gets
    each line when it is printed (stdout into a file is flushed in blocks).
    """
    from openTSNE import TSNE, affinity

    embeddings = np.asarray(embeddings, dtype=np.float32)
    n_docs = len(embeddings)
    if n_docs < 4:
        raise EmbaugError(f"t-SNE needs at least 4 documents, got {n_docs}")
    if not np.isfinite(embeddings).all():
        raise EmbaugError("t-SNE: embeddings contain NaN or infinite values")
    n_jobs = n_jobs if n_docs >= SMALL else 1
    common = {
        "method": settings.neighbor_method(n_docs),
        "n_jobs": n_jobs,
        "random_state": settings.seed,
        "verbose": True,
    }
    with contextlib.redirect_stdout(sys.stderr):  # openTSNE prints its progress
        if settings.affinity == "uniform":
            affinities = affinity.Uniform(embeddings, k_neighbors=min(settings.k, n_docs - 1), **common)
        else:
            perplexity = min(float(settings.perplexity), (n_docs - 1) / 3)
            affinities = affinity.PerplexityBasedNN(embeddings, perplexity=perplexity, **common)
        tsne = TSNE(
            learning_rate=settings.learning_rate,
            n_iter=settings.n_iter,
            initialization=settings.initialization,
            n_jobs=n_jobs,
            random_state=settings.seed,
            verbose=True,
        )
        return np.asarray(tsne.fit(embeddings, affinities=affinities), dtype=np.float32)


def last_layer(layer_ids: list[int] | np.ndarray) -> int:
    """The deepest stored layer's index."""
    return int(np.max(layer_ids))
