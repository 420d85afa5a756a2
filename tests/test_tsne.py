"""t-SNE maps: deterministic, and they keep the neighbourhoods that kNN accuracy measures."""

from __future__ import annotations

import numpy as np
import pytest

from embaug.errors import EmbaugError
from embaug.evaluate.knn import knn_accuracy
from embaug.evaluate.split import labelled_split
from embaug.evaluate.tsne import last_layer, tsne_map


@pytest.fixture(scope="module")
def blobs():
    """4 Gaussian clusters of 50 points in 20 dimensions, overlapping a little."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(4, 20))
    labels = np.repeat(np.array(["a", "b", "c", "d"]), 50)
    points = centres[np.repeat(np.arange(4), 50)] + rng.normal(size=(200, 20))
    return points.astype(np.float32), labels


@pytest.fixture(scope="module")
def mapped(blobs):
    return tsne_map(blobs[0], seed=42)


def test_map_shape_and_type(mapped):
    assert mapped.shape == (200, 2) and mapped.dtype == np.float32 and np.isfinite(mapped).all()


def test_map_keeps_knn_structure(blobs, mapped):
    points, labels = blobs
    train, test = labelled_split(labels, 0.2, 42)
    in_dims = knn_accuracy(points, labels, train, test, k=10)
    in_2d = knn_accuracy(mapped, labels, train, test, k=10)
    assert in_2d >= 0.9 > 0.25  # chance is 0.25
    assert in_2d >= in_dims - 0.1


def test_same_seed_same_map(blobs, mapped):
    assert np.array_equal(tsne_map(blobs[0], seed=42), mapped)


def test_tiny_input_lowers_perplexity():
    points = np.random.default_rng(1).normal(size=(12, 5))
    assert tsne_map(points, perplexity=30, n_iter=50).shape == (12, 2)


@pytest.mark.parametrize("bad", [np.zeros((3, 4)), np.full((10, 4), np.nan)])
def test_bad_input_raises(bad):
    with pytest.raises(EmbaugError):
        tsne_map(bad)


def test_last_layer_is_the_deepest_stored():
    layers = np.arange(3 * 2 * 1).reshape(3, 2, 1)
    embeddings, layer = last_layer(layers, np.array([0, 6, 3]))
    assert layer == 6 and np.array_equal(embeddings, layers[1])
