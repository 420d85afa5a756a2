"""A dataset's held-out split for Table S4: train on one part, evaluate kNN on the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .split import labelled_split


def held_out_parts(
    corpus: pd.DataFrame, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corpus without its kNN test documents (the training part) and those documents.

    The test part is exactly the test side of :func:`labelled_split` with the same fraction and
    seed, i.e. the kNN queries of the evaluation; everything else (the kNN reference documents and
    the ``unlabeled`` ones) is the training part. A model fine-tuned on the training part and
    scored by the usual kNN evaluation on the whole corpus therefore never saw its queries.
    """
    _, test = labelled_split(corpus["label"].to_numpy(dtype=str), test_fraction, seed)
    is_test = np.zeros(len(corpus), dtype=bool)
    is_test[test] = True
    return corpus[~is_test].reset_index(drop=True), corpus[is_test].reset_index(drop=True)
