"""Figure 3's training subsets: a random subset of one corpus that gives as many training batches
as another corpus (the paper trains on arXiv, bioRxiv and Reddit subsets matched to ICLR)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pair_documents(corpus: pd.DataFrame, chunks: pd.DataFrame, whole_documents: bool = False) -> np.ndarray:
    """Per corpus row: does the document give a training pair (at least two chunks; with
    ``whole_documents``, a pair maker reading only the full text, every document)."""
    if whole_documents:
        return np.ones(len(corpus), dtype=bool)
    counts = chunks["doc_id"].value_counts()
    return corpus["doc_id"].map(counts).fillna(0).to_numpy() >= 2


def batch_matched_subset(
    corpus: pd.DataFrame, chunks: pd.DataFrame, n_training: int, seed: int, whole_documents: bool = False
) -> pd.DataFrame:
    """A random subset of ``corpus`` holding exactly ``n_training`` training documents (all of them
    when it has fewer), in corpus order.

    The documents are drawn in the order of ``numpy.random.RandomState(seed).permutation`` (which
    is the order ``np.random.seed(seed); np.random.choice(n, size, replace=False)`` draws them, as
    the authors did) up to the one that completes ``n_training`` training documents; the
    documents drawn with them that give no pair are kept too, so the subset is a random sample
    of the corpus, not only of its longer documents. With the same batch size the subset then
    trains on exactly as many batches as a corpus with ``n_training`` training documents.
    """
    gives_pair = pair_documents(corpus, chunks, whole_documents)
    order = np.random.RandomState(seed).permutation(len(corpus))
    drawn_pairs = np.cumsum(gives_pair[order])
    if n_training >= drawn_pairs[-1]:
        return corpus.reset_index(drop=True)
    last = int(np.searchsorted(drawn_pairs, n_training))  # first draw reaching n_training
    return corpus.iloc[np.sort(order[: last + 1])].reset_index(drop=True)
