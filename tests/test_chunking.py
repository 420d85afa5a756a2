"""Sentence filtering and n-sentence crops (docs/method.md, "Chunking")."""

from __future__ import annotations

import pandas as pd
import pytest

from embaug.data.chunking import chunk_batches, chunk_corpus, chunks_of, kept_sentences
from embaug.errors import EmbaugError


def sentence(length: int, letter: str = "a") -> str:
    """A sentence of exactly ``length`` characters, words separated by spaces, no '.'."""
    words = (letter * 9 + " ") * (length // 10 + 1)
    text = words[:length]
    if text.endswith(" "):
        text = text[:-1] + letter
    assert len(text) == length and "." not in text
    return text


S = [sentence(100 + 10 * i, letter) for i, letter in enumerate("abcdef")]


def test_length_bounds_are_inclusive():
    s99, s100, s250, s251 = sentence(99, "w"), sentence(100, "x"), sentence(250, "y"), sentence(251, "z")
    text = f"{s99}.{s100}.{s250}.{s251}."  # no space after '.': pieces are the sentences
    assert kept_sentences(text) == [s100, s250]


def test_custom_bounds():
    text = ". ".join(sentence(n, "q") for n in (10, 20, 30))
    assert kept_sentences(text, min_chars=15, max_chars=25) == [sentence(20, "q")]


def test_length_is_measured_before_stripping():
    """As the authors' data_stuff.py: len() of the raw piece, surrounding whitespace included."""
    s99, s249, s250 = sentence(99, "b"), sentence(249, "c"), sentence(250, "d")
    # a 99-character sentence after ". " is a 100-character piece: kept, and stripped
    assert kept_sentences(f"x. {s99}.") == [s99]
    assert kept_sentences(f"{s99}.") == []
    # a 250-character sentence after ". " is a 251-character piece: dropped; 249 + 1 is kept
    assert kept_sentences(f"x. {s250}. {s249}.") == [s249]
    # whitespace never survives in a kept sentence
    assert kept_sentences(f"\n\t {sentence(120, 'e')}  \n.") == [sentence(120, "e")]


def test_empty_and_dotless_text():
    assert kept_sentences("") == []
    assert kept_sentences("....") == []
    assert kept_sentences(sentence(120)) == [sentence(120)]  # no '.' at all: one piece


@pytest.mark.parametrize("n", [1, 2, 3])
def test_window_counts_overlap_and_termination(n):
    chunks = chunks_of(S, n)
    assert len(chunks) == len(S) - n + 1
    for i, chunk in enumerate(chunks):
        assert chunk == "".join(f"{s}. " for s in S[i : i + n])
        assert chunk.endswith(". ")
        assert chunk.count(". ") == n
    if n > 1:  # consecutive windows share n - 1 sentences
        for left, right in zip(chunks, chunks[1:]):
            assert left.split(". ")[1:n] == right.split(". ")[: n - 1]


def test_two_sentence_chunks_exact_text():
    a, b, c = S[:3]
    assert chunks_of([a, b, c], 2) == [f"{a}. {b}. ", f"{b}. {c}. "]


def test_too_few_kept_sentences_give_no_chunk():
    assert chunks_of(S[:2], 3) == []
    assert chunks_of(S[:1], 2) == []
    assert chunks_of([], 1) == []
    assert chunks_of(S[:3], 3) == ["".join(f"{s}. " for s in S[:3])]


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="must be >= 1"):
        chunks_of(S, 0)


def _doc(*lengths: int, letter: str = "a") -> str:
    return " ".join(f"{sentence(n, letter)}." for n in lengths)


def test_chunk_corpus_rows_and_columns():
    corpus = pd.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3"],
            # d1: 4 kept sentences -> 3 chunks; d2: 1 kept (one too short) -> none; d3: 2 kept -> 1 chunk
            # (98 characters after ". " is a 99-character piece: too short)
            "text": [_doc(120, 130, 140, 150), _doc(120, 50), _doc(200, 98, 210, letter="b")],
            "label": ["x", "y", "z"],
        }
    )
    chunks = chunk_corpus(corpus, n=2, dataset="toy")
    assert list(chunks.columns) == ["doc_id", "chunk_id", "text"]
    assert chunks["doc_id"].tolist() == ["d1", "d1", "d1", "d3"]
    assert chunks["chunk_id"].tolist() == [0, 1, 2, 0]
    assert chunks["text"].iloc[0] == f"{sentence(120)}. {sentence(130)}. "
    assert chunks["text"].iloc[3] == f"{sentence(200, 'b')}. {sentence(210, 'b')}. "


def test_chunk_corpus_on_synthetic_corpus(corpus):
    chunks = chunk_corpus(corpus, n=2)
    counts = chunks.groupby("doc_id").size()
    # every synthetic document has 4-8 kept sentences, hence 3-7 chunks
    assert set(counts.index) == set(corpus["doc_id"])
    assert counts.between(3, 7).all()
    for doc_id, text in zip(corpus["doc_id"], corpus["text"]):
        assert counts[doc_id] == len(kept_sentences(text)) - 1


@pytest.mark.parametrize(
    "texts",
    [
        [_doc(120, 130), _doc(150, 160, letter="b")],  # one chunk each
        [_doc(50, 60), _doc(300)],  # no kept sentence at all
    ],
)
def test_chunk_corpus_without_pairs_raises(texts):
    corpus = pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    with pytest.raises(EmbaugError, match="no usable chunks") as info:
        chunk_corpus(corpus, n=2, dataset="shorts")
    assert "dataset 'shorts'" in str(info.value)
    assert "chunking.sentences" in str(info.value)


def test_chunk_corpus_n3_needs_four_sentences_for_a_pair():
    corpus = pd.DataFrame({"doc_id": ["a"], "text": [_doc(120, 130, 140)]})
    with pytest.raises(EmbaugError, match="no usable chunks"):
        chunk_corpus(corpus, n=3)
    corpus = pd.DataFrame({"doc_id": ["a"], "text": [_doc(120, 130, 140, 150)]})
    assert len(chunk_corpus(corpus, n=3)) == 2


def test_chunk_stage_reads_and_writes_in_windows(corpus, tmp_path, monkeypatch):
    """The chunk stage holds one window of documents at a time and writes the same table as
    chunk_corpus on the whole corpus, windows without chunks included."""
    import embaug.cli

    corpus = pd.concat(
        [
            corpus.iloc[:3],
            pd.DataFrame({"doc_id": ["short1", "short2"], "text": [_doc(50), _doc(60)]}),
            corpus.iloc[3:],
        ]
    ).reset_index(drop=True)
    corpus.to_parquet(tmp_path / "raw.parquet")
    monkeypatch.setattr(embaug.cli, "CHUNK_WINDOW", 2)
    out = tmp_path / "chunks.parquet"
    assert embaug.cli.main(["chunk", "--corpus", str(tmp_path / "raw.parquet"), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), chunk_corpus(corpus, n=2))


def test_chunk_batches_raise_after_the_last_window_without_pairs():
    windows = [pd.DataFrame({"doc_id": [str(i)], "text": [_doc(120, 130)]}) for i in range(3)]
    with pytest.raises(EmbaugError, match="no usable chunks"):
        list(chunk_batches(windows, n=2, dataset="shorts"))


def test_stage_tables_are_written_in_row_groups_and_read_back_in_windows(corpus, tmp_path, monkeypatch):
    """A corpus a stage writes has bounded row groups, so a streaming reader holds one of them."""
    import pyarrow.parquet as pq

    import embaug.io
    from embaug.io import parquet_windows, write_parquet

    monkeypatch.setattr(embaug.io, "ROW_GROUP_ROWS", 7)
    write_parquet(corpus, tmp_path / "raw.parquet")
    meta = pq.ParquetFile(tmp_path / "raw.parquet").metadata
    assert meta.num_row_groups == -(-len(corpus) // 7)
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 7
    batches = parquet_windows(tmp_path / "raw.parquet", 5, ["doc_id", "text"])
    windows = [batch.to_pandas() for batch in batches]
    assert all(len(window) <= 5 for window in windows)
    pd.testing.assert_frame_equal(pd.concat(windows, ignore_index=True), corpus[["doc_id", "text"]])
