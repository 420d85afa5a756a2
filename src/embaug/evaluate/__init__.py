"""Scores of document embeddings, layer by layer.

* :mod:`~embaug.evaluate.knn` and :mod:`~embaug.evaluate.linear`: kNN and linear-probe accuracy on
  the labelled split of :mod:`embaug.data.split` (:mod:`~embaug.evaluate.scores` makes the
  per-layer tables, :mod:`~embaug.evaluate.preprocess` the raw / centred / whitened variants);
* :mod:`~embaug.evaluate.tfidf`: the bag-of-words baselines, scored the same way;
* :mod:`~embaug.evaluate.mteb`: MTEB tasks of a model or one of its layers (and during training);
* :mod:`~embaug.evaluate.tsne`: two-dimensional t-SNE maps.
"""
