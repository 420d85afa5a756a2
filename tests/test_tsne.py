"""t-SNE maps: deterministic, and they keep the neighbourhoods that kNN accuracy measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embaug.data.split import labelled_split
from embaug.errors import EmbaugError
from embaug.evaluate.knn import knn_accuracy
from embaug.evaluate.tsne import EXACT_NEIGHBORS_MAX, TsneSettings, last_layer, tsne_map


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
    return tsne_map(blobs[0], TsneSettings(seed=42))


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
    assert np.array_equal(tsne_map(blobs[0], TsneSettings(seed=42)), mapped)


def test_perplexity_affinities_remain_an_option(blobs):
    points, labels = blobs
    mapped = tsne_map(points, TsneSettings(affinity="perplexity", initialization="pca"))
    train, test = labelled_split(labels, 0.2, 42)
    assert knn_accuracy(mapped, labels, train, test, k=10) >= 0.9


@pytest.mark.parametrize("affinity", ["uniform", "perplexity"])
def test_tiny_input_lowers_neighbours(affinity):
    points = np.random.default_rng(1).normal(size=(12, 5))
    settings = TsneSettings(affinity=affinity, k=30, perplexity=30, n_iter=50, initialization="pca")
    assert tsne_map(points, settings).shape == (12, 2)


def test_default_map_is_the_authors(monkeypatch, blobs):
    """berenslab/text-embed-augm run_tsne_simple: affinity.Uniform(k_neighbors=10, method="exact"),
    TSNE(initialization="spectral") with openTSNE's defaults otherwise."""
    import openTSNE

    settings = TsneSettings()
    assert (settings.affinity, settings.k, settings.initialization) == ("uniform", 10, "spectral")
    assert (settings.learning_rate, settings.n_iter, settings.neighbors) == ("auto", 500, "auto")
    seen = {}
    original_uniform, original_tsne = openTSNE.affinity.Uniform, openTSNE.TSNE

    def uniform(data, **kwargs):
        seen["affinity"] = kwargs
        return original_uniform(data, **kwargs)

    def tsne(**kwargs):
        seen["tsne"] = kwargs
        return original_tsne(**kwargs)

    monkeypatch.setattr(openTSNE.affinity, "Uniform", uniform)
    monkeypatch.setattr(openTSNE, "TSNE", tsne)
    tsne_map(blobs[0])
    assert seen["affinity"]["k_neighbors"] == 10 and seen["affinity"]["method"] == "exact"
    assert seen["tsne"]["initialization"] == "spectral" and seen["tsne"]["learning_rate"] == "auto"
    assert seen["tsne"]["n_iter"] == 500 and "perplexity" not in seen["tsne"]


def test_neighbour_search_and_record():
    auto = TsneSettings()
    assert auto.neighbor_method(EXACT_NEIGHBORS_MAX) == "exact"
    assert auto.neighbor_method(EXACT_NEIGHBORS_MAX + 1) == "annoy"
    assert TsneSettings(neighbors="exact").neighbor_method(10**6) == "exact"
    assert TsneSettings(neighbors="approx").neighbor_method(100) == "annoy"
    assert auto.describe(200_000, 732_723) == (
        "200000 of 732723 documents (stratified), k=10 uniform, exact neighbours, spectral init"
    )
    # the authors' exact neighbours on the paper's Figure 2 datasets (bioRxiv, StackExchange)
    assert auto.neighbor_method(53_787) == auto.neighbor_method(75_000) == "exact"
    perplexity = TsneSettings(affinity="perplexity", initialization="pca")
    assert perplexity.describe(500, 500) == "500 documents, perplexity 30, exact neighbours, pca init"
    with pytest.raises(EmbaugError, match="affinity 'gauss'"):
        TsneSettings(affinity="gauss")


@pytest.mark.parametrize("bad", [np.zeros((3, 4)), np.full((10, 4), np.nan)])
def test_bad_input_raises(bad):
    with pytest.raises(EmbaugError):
        tsne_map(bad)


def test_last_layer_is_the_deepest_stored():
    assert last_layer([0, 6, 3]) == 6


def test_tsne_stage_maps_a_recorded_subsample(tmp_path, corpus, capfd):
    """The map of a stratified subsample, recorded in its ``tsne`` column; openTSNE's progress on
    stderr (a job's log)."""
    from embaug.cli import main
    from embaug.store import EmbeddingWriter

    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    rng = np.random.default_rng(0)
    with EmbeddingWriter(tmp_path / "s", [0, 2], len(corpus), 6, "float16", corpus["doc_id"]) as writer:
        for position in range(2):
            writer.write(np.arange(len(corpus)), position, rng.normal(size=(len(corpus), 6)))
    out, png = tmp_path / "map.parquet", tmp_path / "map.png"
    args = ["tsne", "--embeddings", str(tmp_path / "s"), "--corpus", str(raw), "--max-docs", "24"]
    assert main([*args, "--n-iter", "50", "--out", str(out), "--png", str(png)]) == 0
    coords = pd.read_parquet(out)
    assert len(coords) == 24 and set(coords["doc_id"]) <= set(corpus["doc_id"])
    assert coords["tsne"].unique().tolist() == [
        f"24 of {len(corpus)} documents (stratified), k=10 uniform, exact neighbours, spectral init"
    ]
    by_id = corpus.set_index("doc_id")["label"]
    assert (coords["label"].to_numpy() == by_id[coords["doc_id"]].to_numpy()).all()
    assert png.exists()
    progress = capfd.readouterr().err
    assert "Finding 10 nearest neighbors using exact search" in progress
    assert (
        progress.count(", KL divergence") == 5 + 1
    )  # every 50 of 250 early-exaggeration iterations, then 50
