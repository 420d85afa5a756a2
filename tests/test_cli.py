"""The `embaug <stage>` command line: outputs of the cheap stages and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embaug.cli import main
from embaug.data.split import labelled_split
from embaug.evaluate.knn import knn_accuracy
from embaug.store import EmbeddingStore, EmbeddingWriter


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_download_missing_column_is_one_line_error(tmp_path, capsys):
    source = tmp_path / "src.csv"
    pd.DataFrame({"body": ["x"], "label": ["a"]}).to_csv(source, index=False)
    out = tmp_path / "raw" / "bad.parquet"
    status = main(
        ["download", "--dataset", "bad", "--spec", json.dumps({"source": str(source)}), "--out", str(out)]
    )
    assert status == 1
    lines = error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("embaug download: error: dataset 'bad': column 'text'")
    assert "datasets.bad.text" in lines[0] and "available columns: body, label" in lines[0]
    assert not out.exists()


def test_download_missing_label_column(tmp_path, capsys):
    source = tmp_path / "src.parquet"
    pd.DataFrame({"text": ["x"], "tag": ["a"]}).to_parquet(source)
    spec = {"source": str(source), "label": "category"}
    out = tmp_path / "raw.parquet"
    assert main(["download", "--dataset", "d1", "--spec", json.dumps(spec), "--out", str(out)]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and "datasets.d1.label" in lines[0] and "'category'" in lines[0]


def test_download_of_bytes_texts_is_one_line_and_keeps_the_earlier_table(tmp_path, capsys):
    source = tmp_path / "src.parquet"
    pd.DataFrame({"text": [b"caf\xe9", b"tea"], "label": ["a", "b"]}).to_parquet(source)
    out = tmp_path / "raw.parquet"
    out.write_bytes(b"the earlier table")
    assert (
        main(
            ["download", "--dataset", "d1", "--spec", json.dumps({"source": str(source)}), "--out", str(out)]
        )
        == 1
    )
    assert error_lines(capsys) == [
        "embaug download: error: dataset 'd1': column 'text' (key datasets.d1.text) holds bytes, not text "
        "(2 rows, the first row 0: b'caf\\xe9'); store the texts in the source as strings, decoded from "
        "their encoding"
    ]
    assert out.read_bytes() == b"the earlier table"


def test_download_writes_the_raw_table(tmp_path, corpus):
    source = tmp_path / "src.parquet"
    corpus.rename(columns={"text": "body"}).to_parquet(source)
    out = tmp_path / "raw" / "synthetic.parquet"
    spec = {"source": str(source), "text": "body", "id": "doc_id"}
    assert main(["download", "--dataset", "synthetic", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    raw = pd.read_parquet(out)
    assert list(raw.columns) == ["doc_id", "text", "label"]
    pd.testing.assert_series_equal(raw["doc_id"], corpus["doc_id"])
    assert raw["text"].tolist() == [t.strip() for t in corpus["text"]]


def test_chunk_stage(tmp_path, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    out = tmp_path / "chunks" / "n3.parquet"
    assert main(["chunk", "--corpus", str(raw), "--sentences", "3", "--out", str(out)]) == 0
    chunks = pd.read_parquet(out)
    assert list(chunks.columns) == ["doc_id", "chunk_id", "text"]
    assert (chunks["text"].str.count(r"\. ") == 3).all()


def test_chunk_stage_error_names_dataset(tmp_path, capsys):
    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"doc_id": ["1"], "text": ["too short. really."], "label": ["a"]}).to_parquet(raw)
    out = tmp_path / "chunks.parquet"
    assert main(["chunk", "--corpus", str(raw), "--dataset", "tiny", "--out", str(out)]) == 1
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("embaug chunk: error: dataset 'tiny': no usable chunks")
    assert not out.exists()


def test_embed_unknown_pooling(tmp_path, capsys, tiny_model_dir, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    args = ["embed", "--model", str(tiny_model_dir), "--corpus", str(raw), "--pooling", "max"]
    assert main([*args, "--device", "cpu", "--out", str(tmp_path / "emb")]) == 1
    assert "unknown pooling 'max'" in capsys.readouterr().err


def test_embed_and_knn_stages(tmp_path, tiny_model_dir, corpus, capfd, bars_shown):
    """Every layer embedded and scored, with the progress of both on stderr (a job's log)."""
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    store_path = tmp_path / "emb"
    args = [
        "embed",
        "--model",
        str(tiny_model_dir),
        "--corpus",
        str(raw),
        "--batch-size",
        "16",
        "--max-length",
        "64",
    ]
    args += ["--device", "cpu", "--threads", "1"]
    assert main([*args, "--dtype", "float32", "--out", str(store_path)]) == 0
    store = EmbeddingStore(store_path)
    assert store.layers == [0, 1, 2]
    assert (store.n_docs, store.dim, store.dtype) == (len(corpus), 32, "float32")
    assert store.doc_ids.tolist() == corpus["doc_id"].tolist()
    embeddings = np.stack(list(store))

    last = tmp_path / "last"
    assert main([*args, "--layers", "-1", "--out", str(last)]) == 0  # float16 by default
    last_store = EmbeddingStore(last)
    assert last_store.layers == [2] and last_store.layer(2).dtype == np.float16
    np.testing.assert_allclose(last_store.layer(2), embeddings[2], rtol=1e-3, atol=1e-3)

    scores_path = tmp_path / "scores.csv"
    knn_args = ["knn", "--embeddings", str(store_path), "--corpus", str(raw), "--k", "3"]
    knn_args += ["--test-fraction", "0.25", "--out", str(scores_path)]
    assert main(knn_args) == 0
    progress = capfd.readouterr().err
    assert "embed: 100%" in progress and "score layers: 100%|██████████| 3/3 [" in progress
    scores = pd.read_csv(scores_path)
    assert list(scores.columns) == ["layer", "metric", "k", "accuracy", "n_train", "n_test"]
    assert len(scores) == 6 and (scores["k"] == 3).all()
    assert (scores["n_train"] == 30).all() and (scores["n_test"] == 10).all()
    labels = corpus["label"].to_numpy(dtype=str)
    train, test = labelled_split(labels, 0.25, 42)
    for row in scores.itertuples():
        expected = knn_accuracy(embeddings[row.layer], labels, train, test, k=3, metric=row.metric)
        assert row.accuracy == pytest.approx(expected)


def test_knn_refuses_embeddings_of_other_documents(tmp_path, capsys, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    store_path = tmp_path / "emb"
    ids = corpus["doc_id"].to_numpy(dtype=str)[::-1]
    with EmbeddingWriter(store_path, [0], len(ids), 4, "float16", ids) as writer:
        writer.write(np.arange(len(ids)), 0, np.zeros((len(ids), 4)))
    assert (
        main(["knn", "--embeddings", str(store_path), "--corpus", str(raw), "--out", str(tmp_path / "s.csv")])
        == 1
    )
    lines = error_lines(capsys)
    assert len(lines) == 1 and "documents differ" in lines[0] and "re-run the embed stage" in lines[0]
    assert not (tmp_path / "s.csv").exists()


def test_table_stage(tmp_path, capsys):
    def scores(path, last_euclidean):
        rows = [
            (0, "euclidean", 0.1),
            (0, "cosine", 0.2),
            (1, "euclidean", last_euclidean),
            (1, "cosine", 0.9),
        ]
        pd.DataFrame(rows, columns=["layer", "metric", "accuracy"]).to_csv(path, index=False)
        return str(path)

    cells = [
        ("d1", "base", scores(tmp_path / "a.csv", 0.5)),
        ("d1", "crops", scores(tmp_path / "b.csv", 0.75)),
        ("d2", "base", scores(tmp_path / "c.csv", 0.25)),
        ("d2", "crops", scores(tmp_path / "d.csv", 0.125)),
    ]
    args = ["table"] + [x for cell in cells for x in ("--cell", *cell)]
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    assert main([*args, "--title", "My title", "--out-csv", str(csv), "--out-md", str(md)]) == 0
    table = pd.read_csv(csv)
    assert table.to_dict("list") == {
        "dataset": ["d1", "d2", "average"],
        "base": [50.0, 25.0, 37.5],
        "crops": [75.0, 12.5, 43.75],
    }
    text = md.read_text()
    assert text.startswith("# My title\n\n")
    assert "| d1 " in text and "43.8" in text
    capsys.readouterr()
    assert main([*args, "--metric", "manhattan", "--out-csv", str(csv), "--out-md", str(md)]) == 1
    assert "no rows for metric 'manhattan'" in capsys.readouterr().err
