"""Dataset adapters: turn a config entry into the raw table ``doc_id, text, label[, split]``.

A ``source`` is one of

* a local file (``.parquet``, ``.parquet.gzip`` (pandas' name for gzip-coded Parquet), ``.csv``,
  ``.tsv``, ``.jsonl``, ``.jsonl.gz``, ``.json``),
* an ``http(s)://`` URL of such a file (downloaded once into the cache directory; an optional
  ``sha256`` and, for a file of a Git commit, ``git_blob`` are checked),
* a Hugging Face dataset id such as ``mteb/arxiv-clustering-p2p`` (optionally ``hf://``-prefixed;
  ``revision`` pins the repository's commit),
* ``python-docstrings``: the offline demo corpus built from installed packages' source files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from ..downloads import Entry, cache_path, fetch_url, hub_error, hub_unreachable
from ..errors import EmbaugError
from .split import UNLABELED
from .split import stratified_subsample as subsample_rows

READERS = {
    ".parquet": pd.read_parquet,
    ".parquet.gzip": pd.read_parquet,  # Parquet with gzip-coded pages (e.g. ICLR24v1), not a .gz of it
    ".csv": pd.read_csv,
    ".tsv": lambda path: pd.read_csv(path, sep="\t"),
    ".jsonl": lambda path: pd.read_json(path, lines=True),
    ".jsonl.gz": lambda path: pd.read_json(path, lines=True, compression="gzip"),
    ".json": pd.read_json,
}


def _suffix(path: str) -> str:
    name = path.lower().split("?")[0]
    for suffix in sorted(READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return ""


def read_table(path: str | Path, dataset: str) -> pd.DataFrame:
    """Read one local data file by its extension, with errors that name the dataset."""
    path = str(path)
    reader = READERS.get(_suffix(path))
    if reader is None:
        raise EmbaugError(
            f"dataset '{dataset}': cannot read '{path}': unknown file type "
            f"(use one of {', '.join(READERS)}; key datasets.{dataset}.source)"
        )
    try:
        return reader(path)
    except UnicodeError as exc:
        raise EmbaugError(
            f"dataset '{dataset}': cannot read '{path}': it is not valid UTF-8 text ({exc}); save it as "
            f"UTF-8 (key datasets.{dataset}.source)"
        ) from exc
    except Exception as exc:  # any parser error becomes one clear message
        raise EmbaugError(f"dataset '{dataset}': cannot read '{path}': {exc}") from exc


def download(
    url: str,
    cache_dir: str | Path,
    dataset: str,
    sha256: str | None = None,
    git_blob: str | None = None,
    **options: float,
) -> Path:
    """Download ``url`` into ``cache_dir`` once (resumed, retried, size- and checksum-checked).

    ``options`` go to :func:`embaug.downloads.fetch_url` (timeouts, attempts, backoff).
    """
    name = PurePosixPath(urlsplit(url).path).name or f"{dataset}.parquet"
    entry = Entry("datasets", dataset, f"/path/to/{name}")
    return fetch_url(url, cache_path(url, cache_dir), entry, sha256=sha256, git_blob=git_blob, **options)


def _hub_files(repo_id: str, spec: dict[str, Any], dataset: str) -> list[Path]:
    """The data files of a hub dataset, from the cache when the hub cannot be reached."""
    from huggingface_hub import snapshot_download

    patterns = spec.get("files") or ["*.parquet", "*.jsonl", "*.jsonl.gz", "*.csv", "*.json"]
    offline = hub_unreachable()
    try:
        root = Path(
            snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=spec.get("revision"),
                allow_patterns=patterns,
                cache_dir=Path(spec["cache_dir"]) / "hub" if spec.get("cache_dir") else None,
                local_files_only=offline is not None,
            )
        )
    except Exception as exc:
        example = f"/path/to/{repo_id.split('/')[-1]}  # a file, or a folder of files"
        entry = Entry("datasets", dataset, example)
        raise hub_error(entry, f"hub dataset '{repo_id}'", offline, exc) from exc
    files = sorted(p for p in root.rglob("*") if p.is_file() and _suffix(p.name))
    if not files:
        raise EmbaugError(
            f"dataset '{dataset}': hub dataset '{repo_id}' has no data files matching {patterns} "
            f"(key datasets.{dataset}.files)"
        )
    return files


def read_source(dataset: str, spec: dict[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Read the table behind ``spec['source']`` without any column handling."""
    source = str(spec["source"])
    if source == "python-docstrings":
        from .docstrings import docstring_corpus

        return docstring_corpus(spec.get("packages") or [])
    if source.startswith(("http://", "https://")):
        checksums = {key: spec[key] for key in ("sha256", "git_blob") if key in spec}
        return read_table(download(source, cache_dir, dataset, **checksums), dataset)
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p.name))
            if not files:
                raise EmbaugError(f"dataset '{dataset}': folder '{path}' holds no data files")
            return pd.concat([read_table(f, dataset) for f in files], ignore_index=True)
        return read_table(path, dataset)
    repo_id = source.removeprefix("hf://").removeprefix("datasets/")
    if source.startswith("hf://") or (repo_id.count("/") == 1 and not _suffix(repo_id)):
        files = _hub_files(repo_id, {**spec, "cache_dir": cache_dir}, dataset)
        return pd.concat([read_table(f, dataset) for f in files], ignore_index=True)
    raise EmbaugError(
        f"dataset '{dataset}': source '{source}' is not a file, folder, URL or hub dataset id "
        f"(key datasets.{dataset}.source)"
    )


def _column(df: pd.DataFrame, dataset: str, key: str, column: str) -> pd.Series:
    if column not in df.columns:
        raise EmbaugError(
            f"dataset '{dataset}': column '{column}' (key datasets.{dataset}.{key}) not found; "
            f"available columns: {', '.join(map(str, df.columns))}"
        )
    return df[column]


def _texts(values: pd.Series, dataset: str, column: str) -> pd.Series:
    """The text column as strings, not stripped ('' where missing); a value that is not text (bytes,
    numbers, lists) or not valid UTF-8 stops, naming the dataset, the column and the first such row."""
    present = values[values.notna()]
    not_text = present[[not isinstance(value, str) for value in present]]
    invalid = present[[isinstance(value, str) and not _is_utf8(value) for value in present]]
    key = f"column '{column}' (key datasets.{dataset}.text)"
    if len(not_text):
        row, value = not_text.index[0], not_text.iloc[0]
        if isinstance(value, (bytes, bytearray)):
            what, fix = "bytes", "store the texts in the source as strings, decoded from their encoding"
        else:
            what, fix = _kind(value), f"set datasets.{dataset}.text to the column of the documents' text"
        raise EmbaugError(
            f"dataset '{dataset}': {key} holds {what}, not text ({len(not_text)} rows, the first row "
            f"{row}: {_excerpt(value)}); {fix}"
        )
    if len(invalid):
        row, value = invalid.index[0], invalid.iloc[0]
        raise EmbaugError(
            f"dataset '{dataset}': {key} holds text that is not valid UTF-8 ({len(invalid)} rows, the "
            f"first row {row}: {_excerpt(value)}); re-encode the source's texts as UTF-8"
        )
    return values.where(values.notna(), "").astype(str)


def _kind(value: object) -> str:
    """What a value that is not text is, in a message: numbers, lists, or its type's name."""
    if isinstance(value, (int, float, np.number, np.bool_)):
        return "numbers"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "lists"
    return f"{type(value).__name__} values"


def _is_utf8(text: str) -> bool:
    """Whether a string can be written as UTF-8 (not so with lone surrogates, e.g. from bad JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _excerpt(value: object, width: int = 60) -> str:
    """A value as a short one-line repr for a message."""
    text = repr(value.tolist() if isinstance(value, (np.generic, np.ndarray)) else value)
    return text if len(text) <= width else text[: width - 3] + "..."


NEARLY_ALL = 0.9
"""A corpus whose texts are this share empty, or this share one same text, is refused: it is the
wrong column or a broken export, and every score on it would be nonsense."""


def check_texts(texts: pd.Series, rows: int, dataset: str, column: str) -> None:
    """A corpus worth embedding: some non-empty texts, not (nearly) all empty, not (nearly) all one
    text (``texts``: the non-empty ones, of ``rows`` rows read)."""
    key = f"column '{column}' (key datasets.{dataset}.text)"
    if texts.empty:
        raise EmbaugError(f"dataset '{dataset}': no non-empty text in {key}")
    if len(texts) <= (1 - NEARLY_ALL) * rows:
        raise EmbaugError(
            f"dataset '{dataset}': {rows - len(texts)} of the {rows} texts in {key} are empty after "
            f"cleaning; check that datasets.{dataset}.text names the column of the documents' text"
        )
    counts = texts.value_counts()
    if counts.iloc[0] > 1 and counts.iloc[0] >= NEARLY_ALL * len(texts):  # repeated, not a lone text
        raise EmbaugError(
            f"dataset '{dataset}': {counts.iloc[0]} of its {len(texts)} texts in {key} are the same "
            f"text ({_excerpt(counts.index[0])}); check that datasets.{dataset}.text names the column "
            "of the documents' text"
        )


def normalize_corpus(df: pd.DataFrame, dataset: str, spec: dict[str, Any]) -> pd.DataFrame:
    """Map a raw table to ``doc_id, text, label[, split]`` and validate it.

    ``spec`` keys: ``text`` / ``label`` (column names), optional ``id`` and ``split`` columns,
    ``explode`` (list columns holding several documents per row, as in MTEB's clustering sets),
    ``deduplicate`` (drop repeated texts), ``subsample`` (``{n, seed}``: a label-stratified subset).
    """
    text_col, label_col = spec.get("text", "text"), spec.get("label", "label")
    if df.empty:
        raise EmbaugError(f"dataset '{dataset}': the source '{spec['source']}' holds no rows")
    if spec.get("explode"):
        df = df.explode([text_col, label_col], ignore_index=True)
    out = pd.DataFrame({"text": _column(df, dataset, "text", text_col)})
    out["label"] = _column(df, dataset, "label", label_col)
    if spec.get("id"):
        out["doc_id"] = _column(df, dataset, "id", spec["id"]).astype(str)
    else:
        out["doc_id"] = [f"{i}" for i in range(len(out))]
    if spec.get("split"):
        out["split"] = _column(df, dataset, "split", spec["split"]).astype(str)
    out["label"] = out["label"].where(out["label"].notna(), UNLABELED).astype(str)
    # Texts are kept as they are, surrounding whitespace included: documents are split into
    # sentences before any stripping (the first and last piece's length counts it), as the authors'
    # crops; a text of whitespace only is no document.
    out["text"] = _texts(out["text"], dataset, text_col)
    out = out[out["text"].str.strip() != ""]
    if spec.get("deduplicate"):
        out = out.drop_duplicates("text")
    check_texts(out["text"], len(df), dataset, text_col)
    duplicated = out["doc_id"].duplicated()
    if duplicated.any():
        raise EmbaugError(
            f"dataset '{dataset}': id column '{spec['id']}' repeats '{out['doc_id'][duplicated].iloc[0]}'"
            f" (key datasets.{dataset}.id)"
        )
    if spec.get("subsample"):
        out = stratified_subsample(out, int(spec["subsample"]["n"]), int(spec["subsample"].get("seed", 42)))
    columns = ["doc_id", "text", "label"] + (["split"] if "split" in out else [])
    return out[columns].reset_index(drop=True)


def stratified_subsample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A deterministic subset of ``n`` rows whose label shares match the full table's (a plain
    random one where a label is too rare to stratify), in table order."""
    rows = subsample_rows(np.arange(len(df)), df["label"].to_numpy(), n, seed)
    return df if len(rows) == len(df) else df.iloc[rows]


def load_corpus(dataset: str, spec: dict[str, Any], cache_dir: str | Path) -> pd.DataFrame:
    """Read and normalise one configured dataset: ``doc_id, text, label[, split]``."""
    return normalize_corpus(read_source(dataset, spec, cache_dir), dataset, spec)
