"""Atomic writers: a killed job never leaves a file or folder that looks finished."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow
import pyarrow.parquet

from .errors import EmbaugError, damaged


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories alike. On failure the temporary is removed and
    whatever was at ``path`` before is left untouched. A full disk or a folder that cannot be
    written (read-only, no permission) is one line naming ``path`` (:func:`cannot_write`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 (libraries report a full disk as OSError, RuntimeError, ...)
        problem = cannot_write(path, exc)
        if problem is None:
            raise
        raise problem from exc
    finally:
        with suppress(OSError):  # on a read-only or full file system, as much as can be removed
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space there"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or raise the quota"),
    errno.EROFS: ("read-only file system", "make it writable"),
    errno.EACCES: ("permission denied", "make it writable"),
    errno.EPERM: ("operation not permitted", "make it writable"),
}
"""Errors of writing an output that the user has to fix: what happened, and what to do."""


def cannot_write(path: Path, exc: BaseException) -> EmbaugError | None:
    """The one-line error for an output that could not be written for lack of room or permission
    (``None`` for any other error, or one about another file, e.g. an input that cannot be read).

    The errno comes from the OSError, or from the message a library passed on (safetensors:
    ``os error 28``; pyarrow: ``[errno 28]``)."""
    code = getattr(exc, "errno", None)
    if code is None:
        found = re.search(r"(?:errno|os error) (\d+)", str(exc), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    filename = getattr(exc, "filename", None)
    if code not in WRITE_ERRORS or (filename and not _related(Path(filename), path.parent)):
        return None
    what, fix = WRITE_ERRORS[code]
    return EmbaugError(
        f"{path}: cannot write it ({what}, in {path.parent.resolve()}); {fix} and rerun (nothing was "
        "written: the earlier outputs are as they were)"
    )


def _related(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (the output, its temporary) or above it (a folder on the
    way to it)."""
    path, folder = path.resolve(), folder.resolve()
    return path.is_relative_to(folder) or folder.is_relative_to(path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file a stage wrote; a missing or unreadable one fails in one line that says how
    to rebuild it (instead of pyarrow's traceback); ``columns``: only these."""
    if not Path(path).is_file():
        raise EmbaugError(f"{path}: no such file")
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise damaged(path, exc, "Parquet file") from exc


def parquet_rows(path: str | Path, columns: list[str]) -> int:
    """Rows of a Parquet file (from its footer), after checking that it has ``columns``; a
    missing, unreadable or incomplete file fails in one line, as in :func:`read_parquet`."""
    if not Path(path).is_file():
        raise EmbaugError(f"{path}: no such file")
    try:
        parquet = pyarrow.parquet.ParquetFile(path)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise damaged(path, exc, "Parquet file") from exc
    names = parquet.schema_arrow.names
    missing = [column for column in columns if column not in names]
    if missing:
        raise EmbaugError(f"{path}: no column {', '.join(missing)} (it has {', '.join(names) or 'none'})")
    return parquet.metadata.num_rows


ROW_GROUP_ROWS = 20_000
"""Rows per Parquet row group of the tables stages write, so that a reader streaming a corpus
(:func:`parquet_windows`) holds one group of it, not the whole column, in memory."""


def parquet_windows(path: str | Path, rows: int, columns: list[str]) -> Iterator[pyarrow.RecordBatch]:
    """``columns`` of a Parquet file, ``rows`` rows at a time, holding about one row group in memory.

    ``pre_buffer=False``: with pyarrow's default read-ahead the buffers of every group read so far
    stay allocated until the iterator ends (measured: 780 MiB for the text of a 733k-document
    corpus, against 30 MiB without it).
    """
    yield from pyarrow.parquet.ParquetFile(path, pre_buffer=False).iter_batches(rows, columns=columns)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame to Parquet atomically (index dropped), in row groups of ``ROW_GROUP_ROWS``."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, row_group_size=ROW_GROUP_ROWS)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a DataFrame to CSV atomically (index dropped)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | Path) -> None:
    """Write an object as indented JSON atomically."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)
