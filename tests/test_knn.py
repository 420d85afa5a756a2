"""kNN accuracy, the shared labelled split, and per-layer score tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from embaug.data.split import labelled_split
from embaug.errors import EmbaugError
from embaug.evaluate.knn import Chunks, _Search, _vote, knn_accuracies, knn_accuracy
from embaug.evaluate.linear import linear_accuracy
from embaug.evaluate.scores import score_layers


def clusters(n_per_class: int = 20, spread: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + spread * rng.standard_normal((n_per_class, 2)) for c in centres])
    labels = np.repeat(np.array(["a", "b", "c"]), n_per_class)
    return points, labels


def test_separated_clusters_are_perfect():
    points, labels = clusters()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(labels))
    train, test = np.sort(order[:45]), np.sort(order[45:])
    for metric in ("euclidean", "cosine"):
        accuracy = knn_accuracy(points + 1.0, labels, train, test, k=10, metric=metric)
        assert accuracy == 1.0


def test_hand_computed_case():
    # 1-D: class A at 0, 1, 2 and class B at 10, 11, 12; k = 3.
    # 5.4 -> neighbours 2, 1, 10 -> A; 6.6 -> 10, 11, 2 -> B; 0.5 -> 0, 1, 2 -> A.
    x = np.array([0, 1, 2, 10, 11, 12, 5.4, 6.6, 0.5])[:, None]
    labels = np.array(["A", "A", "A", "B", "B", "B", "A", "A", "B"])
    train, test = np.arange(6), np.arange(6, 9)
    # only the first test point is right
    assert knn_accuracy(x, labels, train, test, k=3) == pytest.approx(1 / 3)
    # with k = 1, 5.4 -> 2 (A, right), 6.6 -> 10 (B, wrong), 0.5 -> 0 or 1 (A, wrong)
    assert knn_accuracy(x, labels, train, test, k=1) == pytest.approx(1 / 3)
    # with k = 6 the vote is 3:3 for every point; scikit-learn breaks ties towards the first class
    assert knn_accuracy(x, labels, train, test, k=6) == pytest.approx(2 / 3)


def test_cosine_and_euclidean_differ_where_they_must():
    # A lies far out along x, B close to the origin along y. The test point (1, 0.1) points along x
    # (cosine: A) but is close to B's points in Euclidean distance (euclidean: B).
    x = np.array([[10.0, 0.0], [12.0, 0.5], [0.0, 1.0], [0.2, 1.5], [1.0, 0.1]])
    labels = np.array(["A", "A", "B", "B", "A"])
    train, test = np.arange(4), np.array([4])
    assert knn_accuracy(x, labels, train, test, k=1, metric="euclidean") == 0.0
    assert knn_accuracy(x, labels, train, test, k=1, metric="cosine") == 1.0
    assert knn_accuracy(x, labels, train, test, k=2, metric="cosine") == 1.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_scikit_learn(metric, k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    labels = np.array(list("abcd"))[rng.integers(0, 4, 200)]
    x[labels == "a"] += 0.8  # some signal so the accuracy is not trivial
    train, test = labelled_split(labels, 0.25, 42)
    expected = (
        KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute")
        .fit(x[train], labels[train])
        .score(x[test], labels[test])
    )
    assert knn_accuracy(x, labels, train, test, k=k, metric=metric) == pytest.approx(expected, abs=1e-12)


def test_euclidean_uses_raw_not_normalised_vectors():
    # the same directions at different norms: after normalisation the classes would coincide
    x = np.array([[1.0, 1.0], [1.1, 0.9], [10.0, 10.0], [11.0, 9.0], [1.05, 0.95], [10.5, 9.5]])
    labels = np.array(["near", "near", "far", "far", "near", "far"])
    train, test = np.arange(4), np.array([4, 5])
    assert knn_accuracy(x, labels, train, test, k=1, metric="euclidean") == 1.0


def labels_with_unlabeled(n_labelled: int = 100, n_unlabeled: int = 37) -> np.ndarray:
    rng = np.random.default_rng(0)
    labels = np.array(["x", "y", "z"])[rng.integers(0, 3, n_labelled + n_unlabeled)].astype(object)
    labels[rng.choice(len(labels), n_unlabeled, replace=False)] = "unlabeled"
    return labels.astype(str)


def test_labelled_split_excludes_unlabeled_and_is_90_10():
    labels = labels_with_unlabeled()
    train, test = labelled_split(labels)
    labelled = np.flatnonzero(labels != "unlabeled")
    assert len(train) == 90 and len(test) == 10
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(labelled)
    assert (labels[train] != "unlabeled").all() and (labels[test] != "unlabeled").all()
    assert (np.diff(train) > 0).all() and (np.diff(test) > 0).all()  # sorted indices


def test_labelled_split_is_deterministic_for_seed_42():
    labels = labels_with_unlabeled()
    first, again = labelled_split(labels, 0.1, 42), labelled_split(labels, 0.1, 42)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    other = labelled_split(labels, 0.1, 43)
    assert not np.array_equal(first[1], other[1])
    # the split is scikit-learn's train_test_split of the labelled indices with random_state=seed
    from sklearn.model_selection import train_test_split

    _, expected_test = train_test_split(np.flatnonzero(labels != "unlabeled"), test_size=0.1, random_state=42)
    assert np.array_equal(first[1], np.sort(expected_test))


def test_labelled_split_other_fraction_rounds_test_up():
    train, test = labelled_split(np.array(["a"] * 25), 0.1, 42)
    assert len(test) == 3 and len(train) == 22  # ceil(2.5)


def test_labelled_split_needs_two_labelled_documents():
    with pytest.raises(EmbaugError, match="fewer than two labelled documents"):
        labelled_split(np.array(["unlabeled", "unlabeled", "a"]))


def test_score_layers_one_row_per_layer_and_metric():
    points, labels = clusters(n_per_class=30, spread=0.5)
    points = points + 5.0  # away from the origin, so the clusters also differ in direction
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(points.shape) * 100  # layer 0 carries no class signal
    layers = np.stack([noise, 0.5 * points + 0.5 * noise, points])
    scorers = {
        "euclidean": lambda e, y, tr, te: knn_accuracy(e, y, tr, te, k=5, metric="euclidean"),
        "cosine": lambda e, y, tr, te: knn_accuracy(e, y, tr, te, k=5, metric="cosine"),
    }
    scores = score_layers(layers, [0, 1, 2], labels, scorers, 0.2, 42)
    assert list(scores.columns) == ["layer", "metric", "accuracy", "n_train", "n_test"]
    assert len(scores) == 6
    assert list(zip(scores["layer"], scores["metric"])) == [
        (layer, metric) for layer in (0, 1, 2) for metric in ("euclidean", "cosine")
    ]
    assert (scores["n_train"] == 72).all() and (scores["n_test"] == 18).all()
    train, test = labelled_split(labels, 0.2, 42)
    for row in scores.itertuples():
        expected = knn_accuracy(layers[row.layer], labels, train, test, k=5, metric=row.metric)
        assert row.accuracy == expected
    last = scores[scores["layer"] == 2]
    assert (last["accuracy"] == 1.0).all()
    assert scores.loc[scores["layer"] == 0, "accuracy"].max() < 0.8


def test_score_layers_keeps_given_layer_ids_and_skips_unlabeled():
    points, labels = clusters(n_per_class=10)
    labels = labels.astype(object)
    labels[:5] = "unlabeled"
    scores = score_layers(
        np.stack([points, points]), [3, 12], labels.astype(str), {"lin": linear_accuracy}, 0.1, 42
    )
    assert scores["layer"].tolist() == [3, 12]
    assert scores["metric"].tolist() == ["lin", "lin"]
    assert (scores["n_train"] + scores["n_test"] == 25).all()
    assert (scores["accuracy"] == 1.0).all()
    assert isinstance(scores, pd.DataFrame)


# --- exact chunked search: scikit-learn's ties and numbers -------------------------------------------


def sklearn_neighbours(x, train, test, k, metric="euclidean"):
    """scikit-learn's brute-force neighbours (training positions), sorted per row."""
    fitted = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(x[train], train)
    return np.sort(fitted.kneighbors(x[test], return_distance=False), axis=1)


def our_neighbours(x, train, test, k, metrics, chunks, cache=False):
    search = _Search(x, train, k, metrics, torch.device("cpu"), chunks, cache)
    found = {metric: [] for metric in metrics}
    for _, neighbours in search.neighbours(test):
        for metric, index in neighbours.items():
            found[metric].append(np.sort(index, axis=1))
    return {metric: np.concatenate(parts) for metric, parts in found.items()}


def stable_order(distances: np.ndarray, k: int) -> np.ndarray:
    """Per row the ``k`` columns of smallest distance, ties to the smaller column: the rule."""
    return np.sort([np.lexsort((np.arange(len(row)), row))[:k] for row in distances], axis=1)


@pytest.mark.parametrize("chunks", [Chunks(3, 5), Chunks(64, 7), Chunks()])
def test_tied_distances_keep_the_smaller_training_index(chunks):
    # references on an integer grid, queries at grid points: dozens of references at the same
    # distance straddle the k-th place, more than the candidate margin, across reference chunks.
    # For cosine, sign vectors (all of one norm): cosines k / 4 are exact ties in floating point too.
    rng = np.random.default_rng(0)
    grid = rng.integers(-2, 3, size=(400, 3)).astype(np.float32)
    signs = rng.choice([-1.0, 1.0], size=(400, 4)).astype(np.float32)
    train, test = np.arange(0, 400, 2)[:190], np.arange(1, 400, 2)[:40]
    squared = ((grid[test][:, None, :] - grid[train][None]) ** 2).sum(axis=2)
    for k in (1, 4, 10):
        euclidean = our_neighbours(grid, train, test, k, ("euclidean",), chunks)["euclidean"]
        np.testing.assert_array_equal(euclidean, stable_order(squared, k))
        cosine = our_neighbours(signs, train, test, k, ("cosine",), chunks)["cosine"]
        np.testing.assert_array_equal(cosine, stable_order(-signs[test] @ signs[train].T, k))


def test_tied_kth_neighbour_and_vote_as_in_scikit_learn():
    # query 0.0, k = 4: 0.0 (a) and 0.5 (b) are nearest, then six references tie at distance 2.
    # scikit-learn keeps the first two tied ones it meets (indices 2: c, 3: c), so the vote is c;
    # taking any other two of the tied ones (b or a) would change the prediction.
    x = np.array([0.0, 0.5, 2.0, -2.0, 2.0, -2.0, 2.0, -2.0, 0.0])[:, None]
    labels = np.array(["a", "b", "c", "c", "b", "b", "a", "a", "c"])
    train, test = np.arange(8), np.array([8])
    for metric in ("euclidean",):
        sklearn = KNeighborsClassifier(n_neighbors=4, algorithm="brute", metric=metric).fit(
            x[train], labels[train]
        )
        assert sklearn.predict(x[test]).tolist() == ["c"]
        assert knn_accuracy(x, labels, train, test, k=4, metric=metric) == 1.0
    assert our_neighbours(x, train, test, 4, ("euclidean",), Chunks(1, 3))["euclidean"].tolist() == [
        [0, 1, 2, 3]
    ]


def test_tied_votes_go_to_the_first_class_in_sorted_order():
    # one neighbour of each class at the same distance; the vote 1:1 goes to the smaller label,
    # whichever neighbour is nearer, as in scikit-learn's mode over its sorted classes_
    x = np.array([[0.0], [1.0], [3.0], [10.0], [11.0], [13.0], [0.1], [12.1], [2.0]])
    labels = np.array(["b", "a", "b", "b", "a", "a", "x", "x", "x"])
    train, test = np.arange(6), np.arange(6, 9)
    labels[6:] = ["a", "a", "b"]  # 0.1 -> 0 (b), 1 (a): a; 12.1 -> 11, 13 (a, a); 2.0 -> 1, 3: a
    for metric in ("euclidean",):
        expected = KNeighborsClassifier(n_neighbors=2, algorithm="brute", metric=metric).fit(
            x[train], labels[train]
        )
        assert knn_accuracy(x, labels, train, test, k=2, metric=metric) == expected.score(
            x[test], labels[test]
        )
    assert knn_accuracy(x, labels, train, test, k=2) == pytest.approx(2 / 3)
    assert _vote(np.array([[2, 0, 2, 0], [1, 1, 3, 3], [4, 4, 4, 0]]), 5).tolist() == [0, 1, 4]


@pytest.mark.parametrize("k", [1, 3, 10, 25])
def test_float16_memory_map_matches_scikit_learn_for_both_metrics(tmp_path, k):
    rng = np.random.default_rng(k)
    n, dim = 700, 48
    labels = np.array(list("abcdefgh"))[rng.integers(0, 8, n)]
    centres = rng.normal(size=(8, dim)) * 0.6
    data = (rng.normal(size=(n, dim)) + centres[np.searchsorted(np.unique(labels), labels)] + 2.0).astype(
        np.float16
    )
    np.save(tmp_path / "layer.npy", data)
    stored = np.load(tmp_path / "layer.npy", mmap_mode="r")
    train, test = labelled_split(labels, 0.2, 42)
    accuracies = knn_accuracies(
        stored, labels, train, test, k, ("euclidean", "cosine"), chunks=Chunks(50, 64)
    )
    x = data.astype(np.float32)
    for metric, accuracy in accuracies.items():
        classifier = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(
            x[train], labels[train]
        )
        assert accuracy == classifier.score(x[test], labels[test])
        expected = sklearn_neighbours(x, train, test, k, metric)
        for cache in (False, True):  # True: the GPU's path, reference rows held in one tensor
            ours = our_neighbours(stored, train, test, k, (metric,), Chunks(50, 64, 30), cache)
            np.testing.assert_array_equal(ours[metric], expected)
    assert 0.3 < accuracies["euclidean"] < 1.0  # not a trivial case


def test_zero_vectors_and_bad_arguments():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [2.0, 0.1]])
    labels = np.array(["a", "b", "c", "a", "b"])
    train, test = np.arange(3), np.array([3, 4])
    # cosine to a zero vector is 1 (scikit-learn's convention): the zero query ties everywhere -> index 0
    assert knn_accuracy(x, labels, train, test, k=1, metric="cosine") == 1.0
    with pytest.raises(EmbaugError, match="unknown kNN metric 'manhattan'"):
        knn_accuracy(x, labels, train, test, k=1, metric="manhattan")
    with pytest.raises(EmbaugError, match="k = 4 neighbours, but the training split has 3 documents"):
        knn_accuracy(x, labels, train, test, k=4)


def test_score_layers_takes_one_scorer_for_several_metrics():
    points, labels = clusters(n_per_class=20)
    calls = []

    def both(embeddings, labels, train, test):
        calls.append(len(embeddings))
        return {"euclidean": 0.5, "cosine": 0.25}

    scores = score_layers(np.stack([points, points]), [0, 1], labels, both, 0.25, 42)
    assert calls == [60, 60]
    assert scores["metric"].tolist() == ["euclidean", "cosine"] * 2
    assert scores["accuracy"].tolist() == [0.5, 0.25] * 2


def test_blocks_for_few_queries_hold_more_references_and_tf32_setting_is_restored():
    assert Chunks(8192, 2048).for_queries(1000) == Chunks(1000, 16777, 512)
    assert Chunks(8192, 2048).for_queries(50_000) == Chunks(8192, 2048, 512)
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        x = np.random.default_rng(0).normal(size=(30, 4))
        knn_accuracy(x, np.array(["a", "b"] * 15), np.arange(20), np.arange(20, 30), k=3)
        assert torch.backends.cuda.matmul.allow_tf32  # restored after the search
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
