"""Dataset sources: local files of every kind, column mapping, validation and subsampling."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embaug.data.sources import UNLABELED, load_corpus, normalize_corpus, stratified_subsample
from embaug.errors import EmbaugError

ROWS = pd.DataFrame(
    {
        "body": ["  First text. ", "Second text.", "Third text."],
        "topic": ["a", "b", "a"],
        "key": ["k1", "k2", "k3"],
    }
)
SPEC = {"text": "body", "label": "topic", "id": "key"}


def write(df: pd.DataFrame, path: Path) -> Path:
    suffix = "".join(path.suffixes)
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif suffix == ".parquet.gzip":  # pandas' own name for gzip-coded Parquet (ICLR24v1)
        df.to_parquet(path, index=False, compression="gzip")
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif suffix == ".jsonl.gz":
        with gzip.open(path, "wt") as handle:
            handle.write(df.to_json(orient="records", lines=True))
    elif suffix == ".json":
        df.to_json(path, orient="records")
    else:
        raise ValueError(suffix)
    return path


def load(path: Path, name: str = "toy", cache: Path | None = None, **spec) -> pd.DataFrame:
    return load_corpus(name, {"source": str(path), **spec}, cache or path.parent / "cache")


SUFFIXES = [".csv", ".tsv", ".parquet", ".parquet.gzip", ".jsonl", ".jsonl.gz", ".json"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_local_files(tmp_path, suffix):
    path = write(ROWS, tmp_path / f"data{suffix}")
    corpus = load(path, **SPEC)
    assert list(corpus.columns) == ["doc_id", "text", "label"]
    assert corpus["doc_id"].tolist() == ["k1", "k2", "k3"]
    # kept as they are: sentences are split off before any stripping, as the authors do
    assert corpus["text"].tolist() == ["  First text. ", "Second text.", "Third text."]
    assert corpus["label"].tolist() == ["a", "b", "a"]


def test_default_columns_and_row_number_ids(tmp_path):
    path = write(pd.DataFrame({"text": ["x", "y"], "label": [1, 2]}), tmp_path / "d.csv")
    corpus = load(path)
    assert corpus["doc_id"].tolist() == ["0", "1"]
    assert corpus["label"].tolist() == ["1", "2"]  # labels become strings


def test_folder_source_concatenates_files(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write(ROWS.iloc[:2], folder / "a.parquet")
    write(ROWS.iloc[2:], folder / "b.csv")
    (folder / "notes.txt").write_text("ignored")
    corpus = load(folder, **SPEC)
    assert corpus["doc_id"].tolist() == ["k1", "k2", "k3"]


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(EmbaugError, match="dataset 'toy': folder .* holds no data files"):
        load(folder)


@pytest.mark.parametrize(("key", "overrides"), [("text", {"text": "missing"}), ("label", {"label": "nope"})])
def test_missing_column_names_dataset_and_key(tmp_path, key, overrides):
    path = write(ROWS, tmp_path / "d.parquet")
    with pytest.raises(EmbaugError) as info:
        load(path, name="mydata", **{**SPEC, **overrides})
    message = str(info.value)
    assert "dataset 'mydata'" in message
    assert f"datasets.mydata.{key}" in message
    assert f"'{overrides[key]}'" in message
    assert "available columns: body, topic, key" in message


def test_default_text_column_missing(tmp_path):
    path = write(ROWS, tmp_path / "d.csv")
    with pytest.raises(EmbaugError, match=r"column 'text' \(key datasets\.bbc2\.text\) not found"):
        load(path, name="bbc2")


def test_missing_id_column(tmp_path):
    path = write(ROWS, tmp_path / "d.csv")
    with pytest.raises(EmbaugError, match=r"datasets\.toy\.id"):
        load(path, **{**SPEC, "id": "identifier"})


def test_header_only_file_has_no_rows(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("body,topic\n")
    with pytest.raises(EmbaugError, match="dataset 'hollow': the source .* holds no rows") as info:
        load(path, name="hollow", text="body", label="topic")
    assert str(path) in str(info.value)


def test_zero_byte_file_names_dataset_and_path(tmp_path):
    path = tmp_path / "zero.csv"
    path.write_bytes(b"")
    with pytest.raises(EmbaugError) as info:
        load(path, name="zero")
    assert "dataset 'zero'" in str(info.value) and f"cannot read '{path}'" in str(info.value)


def test_all_texts_empty(tmp_path):
    path = write(pd.DataFrame({"text": ["  ", None], "label": ["a", "b"]}), tmp_path / "d.parquet")
    with pytest.raises(EmbaugError, match=r"no non-empty text in column 'text' \(key datasets\.toy\.text\)"):
        load(path)


def test_unreadable_file_names_the_path(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(EmbaugError) as info:
        load(path, name="broken")
    assert f"cannot read '{path}'" in str(info.value)
    assert "dataset 'broken'" in str(info.value)


def test_unknown_extension_names_the_path_and_key(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(EmbaugError) as info:
        load(path, name="sheet")
    message = str(info.value)
    assert f"'{path}'" in message and "unknown file type" in message
    assert "datasets.sheet.source" in message and ".parquet" in message


def test_nonexistent_source(tmp_path):
    with pytest.raises(
        EmbaugError, match=r"is not a file, folder, URL or hub dataset id \(key datasets\.gone\.source\)"
    ):
        load(tmp_path / "missing" / "file.csv", name="gone")


def test_hub_id_offline_fails_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbaugError) as info:
        load_corpus("hub", {"source": "no-such-owner-xyz/no-such-dataset-xyz"}, tmp_path)
    message = str(info.value)
    assert "dataset 'hub'" in message and "no-such-owner-xyz/no-such-dataset-xyz" in message
    assert "datasets.hub.source" in message


def test_null_labels_become_unlabeled_and_empty_texts_are_dropped(tmp_path):
    df = pd.DataFrame({"text": ["one", None, "three", "   ", "five"], "label": ["x", "y", None, "z", np.nan]})
    corpus = load(write(df, tmp_path / "d.parquet"))
    assert corpus["doc_id"].tolist() == ["0", "2", "4"]  # row numbers of the source survive
    assert corpus["label"].tolist() == ["x", UNLABELED, UNLABELED]
    assert UNLABELED == "unlabeled"


def test_surrounding_whitespace_counts_in_the_first_and_last_sentence(tmp_path):
    """The authors split the raw abstract on '.': a leading space makes a 99-character first
    sentence 100 characters long, so it is kept."""
    from embaug.data.chunking import kept_sentences

    first, last = "x" * 99, "y" * 100
    df = pd.DataFrame({"text": [f" {first}.{last}.  "], "label": ["a"]})
    text = load(write(df, tmp_path / "d.parquet"))["text"].iloc[0]
    assert text == f" {first}.{last}.  "
    assert kept_sentences(text, 100, 250) == [first, last]
    assert kept_sentences(text.strip(), 100, 250) == [last]  # stripping first would drop it


def test_duplicate_ids_fail(tmp_path):
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "z"], "key": ["1", "2", "1"]})
    with pytest.raises(EmbaugError) as info:
        load(write(df, tmp_path / "d.csv"), name="dup", id="key")
    message = str(info.value)
    assert "dataset 'dup'" in message and "repeats '1'" in message and "datasets.dup.id" in message


def test_deduplicate_and_split_columns(tmp_path):
    df = pd.DataFrame(
        {
            "text": ["a", "b", "a", "c"],
            "label": ["x", "y", "x", "z"],
            "part": ["train", "test", "train", "train"],
        }
    )
    corpus = load(write(df, tmp_path / "d.parquet"), deduplicate=True, split="part")
    assert list(corpus.columns) == ["doc_id", "text", "label", "split"]
    assert corpus["text"].tolist() == ["a", "b", "c"]
    assert corpus["split"].tolist() == ["train", "test", "train"]


def test_explode_list_columns(tmp_path):
    df = pd.DataFrame({"sentences": [["s1", "s2", "s3"], ["s4"]], "labels": [["l1", "l2", "l1"], ["l3"]]})
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")) + "\n")
    corpus = load(path, text="sentences", label="labels", explode=True)
    assert corpus["text"].tolist() == ["s1", "s2", "s3", "s4"]
    assert corpus["label"].tolist() == ["l1", "l2", "l1", "l3"]
    assert corpus["doc_id"].tolist() == ["0", "1", "2", "3"]


def big_table(n: int = 1000) -> pd.DataFrame:
    labels = ["a"] * int(0.7 * n) + ["b"] * int(0.2 * n) + ["c"] * int(0.1 * n)
    return pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(n)], "text": [f"t{i}" for i in range(n)], "label": labels}
    )


def test_subsample_is_deterministic_and_keeps_label_shares(tmp_path):
    path = write(big_table().drop(columns="doc_id"), tmp_path / "big.parquet")
    first = load(path, subsample={"n": 100, "seed": 1})
    again = load(path, subsample={"n": 100, "seed": 1})
    other = load(path, subsample={"n": 100, "seed": 2})
    assert len(first) == 100
    pd.testing.assert_frame_equal(first, again)
    assert first["doc_id"].tolist() != other["doc_id"].tolist()
    shares = first["label"].value_counts()
    assert abs(shares["a"] - 70) <= 2 and abs(shares["b"] - 20) <= 2 and abs(shares["c"] - 10) <= 2
    # rows keep their source order
    assert first["doc_id"].astype(int).is_monotonic_increasing


def test_subsample_larger_than_table_keeps_everything():
    table = big_table(50)
    assert stratified_subsample(table, 50, 0) is table
    assert stratified_subsample(table, 80, 0) is table


def test_subsample_with_singleton_class_falls_back_to_random():
    table = big_table(100)
    table.loc[0, "label"] = "only-one"
    sample = stratified_subsample(table, 30, 3)
    assert len(sample) == 30 and sample.equals(stratified_subsample(table, 30, 3))


def test_normalize_corpus_directly():
    df = pd.DataFrame({"t": ["x", "y"], "l": ["p", None]})
    out = normalize_corpus(df, "direct", {"source": "memory", "text": "t", "label": "l"})
    assert out.to_dict("list") == {"doc_id": ["0", "1"], "text": ["x", "y"], "label": ["p", "unlabeled"]}


# --- texts that are not text, and corpora with nothing to learn ---------------------------------


def _bad_texts(root: Path, case: str) -> Path:
    """A source whose text column ``body`` holds something other than UTF-8 text."""
    labels = ["a", "b", "a"]
    if case == "bytes":
        return write(
            pd.DataFrame({"body": [b"one", b"\xff\xfe", b"three"], "topic": labels}), root / "d.parquet"
        )
    if case == "numbers":
        return write(pd.DataFrame({"body": [1.5, 2.5, 3.5], "topic": labels}), root / "d.parquet")
    if case == "lists":
        return write(pd.DataFrame({"body": [["x"], ["y"], ["z"]], "topic": labels}), root / "d.parquet")
    if case == "surrogates":  # JSON's \udc80 escape: a str that cannot be written as UTF-8
        path = root / "d.jsonl"
        path.write_text("\n".join(json.dumps({"body": t, "topic": "a"}) for t in ["ok", "bad \udc80", "ok2"]))
        return path
    path = root / "d.csv"  # latin-1 bytes in a CSV file
    path.write_bytes("body,topic\ncaf\xe9 au lait,a\nthé,b\n".encode("latin-1"))
    return path


BAD_TEXTS = {
    "bytes": "dataset 'toy': column 'body' (key datasets.toy.text) holds bytes, not text (3 rows, the first "
    "row 0: b'one'); store the texts in the source as strings, decoded from their encoding",
    "numbers": "dataset 'toy': column 'body' (key datasets.toy.text) holds numbers, not text (3 rows, the "
    "first row 0: 1.5); set datasets.toy.text to the column of the documents' text",
    "lists": "dataset 'toy': column 'body' (key datasets.toy.text) holds lists, not text (3 rows, the first "
    "row 0: ['x']); set datasets.toy.text to the column of the documents' text",
    "surrogates": "cannot read '{path}': it is not valid UTF-8 text ('utf-8' codec can't encode character "
    "'\\udc80' in position 4: surrogates not allowed); save it as UTF-8 (key datasets.toy.source)",
    "latin-1 csv": "cannot read '{path}': it is not valid UTF-8 text ('utf-8' codec can't decode byte 0xe9 "
    "in position 3: invalid continuation byte); save it as UTF-8 (key datasets.toy.source)",
}


@pytest.mark.parametrize("case", BAD_TEXTS)
def test_text_column_that_is_not_utf8_text_is_one_line(tmp_path, case):
    path = _bad_texts(tmp_path, case)
    with pytest.raises(EmbaugError) as info:
        load(path, text="body", label="topic")
    message = str(info.value)
    assert BAD_TEXTS[case].format(path=path) in message and "\n" not in message, message


def test_text_that_cannot_be_written_as_utf8_is_one_line():
    """A str with a lone surrogate (from a reader that escapes undecodable bytes) names its row."""
    texts = pd.Series(["ok", "bad \udc80", "ok2"], dtype=object)
    rows = pd.DataFrame({"text": texts, "label": ["a", "b", "a"]})
    with pytest.raises(EmbaugError) as info:
        normalize_corpus(rows, "toy", {"source": "x"})
    assert str(info.value) == (
        "dataset 'toy': column 'text' (key datasets.toy.text) holds text that is not valid UTF-8 (1 rows, "
        "the first row 1: 'bad \\udc80'); re-encode the source's texts as UTF-8"
    )


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["same text"] * 19 + ["other"], "dataset 'toy': 19 of its 20 texts in column 'text' (key "
         "datasets.toy.text) are the same text ('same text'); check that datasets.toy.text names the column "
         "of the documents' text"),
        (["only"] * 3, "3 of its 3 texts in column 'text' (key datasets.toy.text) are the same text"),
        ([""] * 19 + ["one text"], "dataset 'toy': 19 of the 20 texts in column 'text' (key "
         "datasets.toy.text) are empty after cleaning; check that datasets.toy.text names the column of "
         "the documents' text"),
    ],
)  # fmt: skip
def test_corpus_of_nearly_identical_or_empty_texts_is_refused(tmp_path, texts, message):
    df = pd.DataFrame({"text": texts, "label": ["a", "b"] * (len(texts) // 2) + ["a"] * (len(texts) % 2)})
    with pytest.raises(EmbaugError) as info:
        load(write(df, tmp_path / "d.parquet"))
    assert message in str(info.value)


def test_a_few_repeated_or_empty_texts_pass(tmp_path):
    texts = ["boilerplate"] * 8 + [""] * 8 + [f"text {i}" for i in range(4)]
    corpus = load(write(pd.DataFrame({"text": texts, "label": ["a", "b"] * 10}), tmp_path / "d.parquet"))
    assert len(corpus) == 12
