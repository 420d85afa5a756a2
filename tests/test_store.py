"""The embedding store: round trip, atomic writes, one-line errors for broken stores, bounded memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embaug.cli import main
from embaug.encode import embed_layers, embed_to_store, selected_layers
from embaug.errors import EmbaugError
from embaug.store import EmbeddingStore, EmbeddingWriter, float32_rows


def write_store(path, layers, n_docs=10, dim=4, dtype="float16", batch=3, rng=None):
    """A store of random embeddings, written in batches of ``batch`` rows (out of order)."""
    rng = rng or np.random.default_rng(0)
    values = rng.normal(size=(len(layers), n_docs, dim)).astype(np.float32)
    ids = [f"doc{i}" for i in range(n_docs)]
    order = rng.permutation(n_docs)
    with EmbeddingWriter(path, layers, n_docs, dim, dtype, ids) as writer:
        for start in range(0, n_docs, batch):
            index = order[start : start + batch]
            for position in range(len(layers)):
                writer.write(index, position, values[position, index])
    return values, ids


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(tmp_path, dtype):
    values, ids = write_store(tmp_path / "store", [0, 3, 5], dtype=dtype)
    store = EmbeddingStore(tmp_path / "store")
    assert store.layers == [0, 3, 5] and (store.n_docs, store.dim, store.dtype) == (10, 4, dtype)
    assert store.doc_ids.tolist() == ids
    for position, layer in enumerate(store.layers):
        stored = store.layer(layer)
        assert isinstance(stored, np.memmap) and stored.dtype == np.dtype(dtype)
        assert not stored.flags.writeable
        np.testing.assert_array_equal(stored, values[position].astype(dtype))
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "doc_ids.npy",
        "layer_0.npy",
        "layer_3.npy",
        "layer_5.npy",
        "meta.json",
    ]
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert meta["format"] == "embaug-embeddings" and meta["version"] == 1
    assert not list(tmp_path.glob(".store*"))  # no temporary left


def test_layer_reads_only_its_own_file(tmp_path):
    write_store(tmp_path / "store", [0, 1])
    store = EmbeddingStore(tmp_path / "store")
    (tmp_path / "store" / "layer_0.npy").unlink()  # another layer's file gone: layer 1 still maps
    assert store.layer(1).shape == (10, 4)
    with pytest.raises(EmbaugError, match="layer 7 not stored"):
        store.layer(7)


def test_float32_rows_reads_selected_rows(tmp_path, monkeypatch):
    values, _ = write_store(tmp_path / "store", [0], n_docs=20)
    monkeypatch.setattr("embaug.store.ROWS_PER_READ", 3)
    rows = np.array([1, 4, 5, 11, 19])
    got = float32_rows(EmbeddingStore(tmp_path / "store").layer(0), rows)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, values[0, rows].astype(np.float16).astype(np.float32))


def test_failure_mid_write_leaves_no_store(tmp_path):
    path = tmp_path / "store"
    with pytest.raises(RuntimeError, match="killed"), EmbeddingWriter(path, [0], 10, 4) as writer:
        writer.write(np.arange(5), 0, np.ones((5, 4)))
        raise RuntimeError("killed")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_failure_keeps_an_older_store(tmp_path):
    values, _ = write_store(tmp_path / "store", [0])
    with pytest.raises(RuntimeError), EmbeddingWriter(tmp_path / "store", [0], 10, 4):
        raise RuntimeError("killed")
    np.testing.assert_array_equal(EmbeddingStore(tmp_path / "store").layer(0), values[0].astype(np.float16))


def test_unwritten_rows_leave_no_store(tmp_path):
    unwritten = pytest.raises(EmbaugError, match="layer 2: 4 of 10 rows never written")
    with unwritten, EmbeddingWriter(tmp_path / "store", [2], 10, 4) as writer:
        writer.write(np.arange(6), 0, np.ones((6, 4)))
    assert not (tmp_path / "store").exists()


def break_by_truncating(store):
    path = store / "layer_1.npy"
    path.write_bytes(path.read_bytes()[:-8])


def break_by_resizing_meta(store):
    meta = json.loads((store / "meta.json").read_text())
    meta["dim"] = 5
    (store / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda store: (store / "meta.json").unlink(), "meta.json is missing"),
        (lambda store: (store / "layer_0.npy").unlink(), "layer_0.npy"),
        (break_by_truncating, "truncated"),
        (break_by_resizing_meta, "meta.json says float16 (10, 5)"),
        (lambda store: (store / "meta.json").write_text("{not json"), "unreadable meta.json"),
        (lambda store: (store / "layer_1.npy").write_bytes(b"garbage"), "layer_1.npy"),
    ],
)
def test_broken_store_is_a_one_line_error(tmp_path, damage, problem):
    store = tmp_path / "store"
    write_store(store, [0, 1])
    damage(store)
    with pytest.raises(EmbaugError) as error:
        EmbeddingStore(store)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(store))
    assert problem in message
    assert "delete the folder" in message and f"snakemake {store} --force" in message


def test_missing_store_and_old_npz_file(tmp_path):
    with pytest.raises(EmbaugError, match="no such folder.*rebuild"):
        EmbeddingStore(tmp_path / "absent")
    (tmp_path / "old.npz").write_bytes(b"PK")
    with pytest.raises(EmbaugError, match="a file, not an embedding store folder"):
        EmbeddingStore(tmp_path / "old.npz")


def test_knn_stage_on_a_broken_store_is_one_line(tmp_path, capsys, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    store = tmp_path / "emb"
    write_store(store, [0, 1], n_docs=len(corpus))
    break_by_truncating(store)
    assert (
        main(["knn", "--embeddings", str(store), "--corpus", str(raw), "--out", str(tmp_path / "s.csv")]) == 1
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "truncated" in lines[0] and "--force" in lines[0]


def test_embed_to_store_equals_embed_layers(tiny_model, corpus, tmp_path):
    """The streamed store holds what the in-memory path returns, for chosen and negative layers,
    with windows smaller than the corpus."""
    model, tokenizer = tiny_model
    texts = corpus["text"].tolist()
    expected = embed_layers(model, tokenizer, texts, 4, 64, layers=[0, -1], progress=False)
    layers = selected_layers(model, [0, -1])
    assert layers == [0, 2]
    windows = (texts[start : start + 7] for start in range(0, len(texts), 7))
    with EmbeddingWriter(tmp_path / "s", layers, len(texts), 32, "float32") as writer:
        embed_to_store(model, tokenizer, windows, writer, 4, 64, progress=False)
    store = EmbeddingStore(tmp_path / "s")
    np.testing.assert_allclose(np.stack(list(store)), expected, atol=1e-5, rtol=0)


def test_embed_to_store_refuses_too_few_texts(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    too_few = pytest.raises(EmbaugError, match="2 texts for 3 documents")
    with too_few, EmbeddingWriter(tmp_path / "s", [0], 3, 32) as writer:
        embed_to_store(model, tokenizer, [["a b", "c d"]], writer, progress=False)
    assert not (tmp_path / "s").exists()


def peak_traced_bytes(model, tokenizer, texts, path) -> int:
    """Peak traced heap (Python objects and numpy arrays) of embedding ``texts`` into a store."""
    windows = (texts[start : start + 250] for start in range(0, len(texts), 250))
    ids = np.char.add("d", np.arange(len(texts)).astype(str))  # made before tracing: the corpus's own
    tracemalloc.start()
    with EmbeddingWriter(path, [0, 1, 2], len(texts), 32, "float32", ids) as writer:
        embed_to_store(model, tokenizer, windows, writer, 8, 32, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_embed_memory_does_not_grow_with_the_corpus(tiny_model, corpus, tmp_path):
    """Four times the documents (four windows instead of one): the traced heap peak (Python objects
    and numpy arrays) grows by a small fraction of the ``[layers, docs, dim]`` float32 array embed
    used to allocate (ids and written-row flags only: the rows live in mapped files)."""
    model, tokenizer = tiny_model
    texts = corpus["text"].tolist()
    small, large = (texts * 10)[:250], (texts * 100)[:1000]
    peak_traced_bytes(model, tokenizer, small, tmp_path / "warm")  # first-call caches
    peak_small = peak_traced_bytes(model, tokenizer, small, tmp_path / "small")
    peak_large = peak_traced_bytes(model, tokenizer, large, tmp_path / "large")
    per_doc = 3 * 32 * 4  # bytes per document of the stacked float32 array
    assert peak_large - peak_small < per_doc * (len(large) - len(small)) / 3, (peak_small, peak_large)
    assert EmbeddingStore(tmp_path / "large").n_docs == 1000


def test_embed_stage_reads_the_corpus_in_windows(tiny_model_dir, corpus, tmp_path, monkeypatch):
    """``embaug embed`` with windows of 7 documents writes the same rows as one window."""
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw, row_group_size=5)
    args = ["embed", "--model", str(tiny_model_dir), "--corpus", str(raw), "--device", "cpu"]
    args += ["--max-length", "64", "--dtype", "float32"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr("embaug.cli.EMBED_WINDOW", 7)
    assert main([*args, "--out", str(tmp_path / "windows")]) == 0
    whole, windows = EmbeddingStore(tmp_path / "whole"), EmbeddingStore(tmp_path / "windows")
    assert windows.doc_ids.tolist() == pd.read_parquet(raw)["doc_id"].astype(str).tolist()
    for layer in whole.layers:
        np.testing.assert_allclose(windows.layer(layer), whole.layer(layer), atol=1e-5, rtol=0)


def resident_file_mb() -> float:
    """This process's resident pages of mapped files (Linux ``RssFile``), in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["RssFile"].split()[0]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux /proc")
def test_a_store_written_window_by_window_is_not_held_in_resident_memory(tmp_path):
    """Mapped pages stay resident while mapped, and a job's memory limit counts them: without
    flushing, writing a 200 MB store grows the process by 200 MB (a 200k-document, 7 x 384 store:
    1 GB). ``EmbeddingWriter.flush`` (embed_to_store calls it after each window) keeps it to one
    window."""
    n_docs, dim, layers, window = 100_000, 256, 4, 8192

    def growth(path: Path, flush: bool) -> float:
        before, peak = resident_file_mb(), 0.0
        with EmbeddingWriter(path, list(range(layers)), n_docs, dim, "float16") as writer:
            for start in range(0, n_docs, window):
                rows = np.arange(start, min(n_docs, start + window))
                for position in range(layers):
                    writer.write(rows, position, np.ones((len(rows), dim), dtype=np.float32))
                if flush:
                    writer.flush()
                peak = max(peak, resident_file_mb() - before)
        return peak

    store_mb = n_docs * dim * layers * 2 / 2**20
    assert growth(tmp_path / "held", flush=False) > 0.8 * store_mb  # what the measure sees
    assert growth(tmp_path / "flushed", flush=True) < 3 * window * dim * layers * 2 / 2**20
    assert (EmbeddingStore(tmp_path / "flushed").layer(3) == 1).all()


def test_embed_to_store_flushes_every_window(tiny_model, corpus, tmp_path, monkeypatch):
    model, tokenizer = tiny_model
    texts = corpus["text"].tolist()
    flushes = []
    monkeypatch.setattr(EmbeddingWriter, "flush", lambda self: flushes.append(True))
    windows = (texts[start : start + 10] for start in range(0, len(texts), 10))
    with EmbeddingWriter(tmp_path / "s", [0], len(texts), 32) as writer:
        embed_to_store(model, tokenizer, windows, writer, 4, 32, progress=False)
    assert len(flushes) == 4  # 40 documents, windows of 10
