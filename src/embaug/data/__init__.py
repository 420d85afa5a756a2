"""Corpora and what is made of them before any model sees them.

:mod:`~embaug.data.sources` reads a configured dataset into the table ``doc_id, text, label[,
split]`` (:mod:`~embaug.data.docstrings` builds the offline demo corpus);
:mod:`~embaug.data.chunking` cuts documents into sentence chunks; :mod:`~embaug.data.split` is the
labelled train/test split every evaluation shares, :mod:`~embaug.data.heldout` the held-out
training part (Table S4) and :mod:`~embaug.data.batch_matched` Figure 3's batch-matched subsets.
"""
