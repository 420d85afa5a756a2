"""The embedding store: every layer's pooled document embeddings on disk, one ``.npy`` per layer.

A store is a folder (``results/<study>/embeddings/{model}/{dataset}/``)::

    meta.json       format name and version, layers, dtype, n_docs, dim, file names
    doc_ids.npy     the documents' ids in row order (a unicode array, no pickle)
    layer_<k>.npy   layer k's embeddings [n_docs, dim], float16 or float32

Each layer file is a plain NumPy ``.npy`` that ``np.load(..., mmap_mode="r")`` maps without
reading it, so a reader touches only the layers (and rows) it uses, and the writer fills rows
batch by batch through :func:`numpy.lib.format.open_memmap` without ever holding a corpus-sized
array. :class:`EmbeddingWriter` builds the folder under a temporary name and renames it into
place only once every row of every layer is written; :class:`EmbeddingStore` checks the folder
(meta, file sizes, shapes) before handing out read-only memory maps.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from .errors import EmbaugError
from .io import atomic_path

FORMAT = "embaug-embeddings"
VERSION = 1
DTYPES = ("float16", "float32")
META = "meta.json"
DOC_IDS = "doc_ids.npy"
ROWS_PER_READ = 65536
"""Rows converted at a time by :func:`float32_rows`."""


def layer_file(layer: int) -> str:
    """The file name of layer ``layer`` in a store."""
    return f"layer_{layer}.npy"


def float32_rows(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``embeddings[rows]`` as float32, read ``ROWS_PER_READ`` rows at a time from a (float16)
    memory map, so only the selected rows are ever held, once, in float32."""
    out = np.empty((len(rows), embeddings.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), ROWS_PER_READ):
        out[start : start + ROWS_PER_READ] = embeddings[rows[start : start + ROWS_PER_READ]]
    return out


def _broken(path: Path, problem: str) -> EmbaugError:
    return EmbaugError(
        f"{path}: {problem}; the embedding store is incomplete or corrupt: delete the folder "
        f"and rebuild it (snakemake {path} --force)"
    )


class EmbeddingWriter:
    """Write a store batch by batch: ``with EmbeddingWriter(...) as writer: writer.write(...)``.

    ``layers`` are the (non-negative) layer indices stored, in order; ``write(index, position,
    pooled)`` puts ``pooled [len(index), dim]`` into rows ``index`` of the layer at ``position``
    of ``layers``. The folder appears at ``path`` only when the block ends without an error
    and every row of every layer was written; otherwise nothing is left behind (and a store
    already at ``path`` is untouched). Memory: one batch, whatever the corpus size.
    """

    def __init__(
        self,
        path: str | Path,
        layers: Sequence[int],
        n_docs: int,
        dim: int,
        dtype: str = "float16",
        doc_ids: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise EmbaugError(f"embedding dtype '{dtype}': use one of {', '.join(DTYPES)}")
        if len(set(layers)) != len(layers) or any(layer < 0 for layer in layers):
            raise EmbaugError(f"{path}: layers must be distinct non-negative indices, got {list(layers)}")
        self.path = Path(path)
        self.layers = [int(layer) for layer in layers]
        self.n_docs, self.dim, self.dtype = int(n_docs), int(dim), dtype
        self.doc_ids = np.arange(n_docs).astype(str) if doc_ids is None else np.asarray(doc_ids, dtype=str)
        if len(self.doc_ids) != self.n_docs:
            raise EmbaugError(f"{path}: {len(self.doc_ids)} document ids for {n_docs} documents")
        self._stack = contextlib.ExitStack()
        self._arrays: list[np.memmap] = []
        self._written = np.zeros((len(self.layers), self.n_docs), dtype=bool)

    def __enter__(self) -> EmbeddingWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._open(tmp)
        except BaseException as error:  # the temporary folder goes (a full disk: one line naming the store)
            self._close()
            if not self._stack.__exit__(type(error), error, error.__traceback__):
                raise
        return self

    def _open(self, tmp: Path) -> None:
        """The temporary folder with the ids and one memory-mapped file per layer, its disk space
        reserved now: a full disk fails here, naming the store, not with a SIGBUS mid-write."""
        tmp.mkdir()
        self._tmp = tmp
        np.save(tmp / DOC_IDS, self.doc_ids, allow_pickle=False)
        for layer in self.layers:
            file = tmp / layer_file(layer)
            array = np.lib.format.open_memmap(
                file, mode="w+", dtype=self.dtype, shape=(self.n_docs, self.dim)
            )
            self._arrays.append(array)
            with open(file, "r+b") as handle:
                os.posix_fallocate(handle.fileno(), 0, file.stat().st_size)

    def write(self, index: np.ndarray, layer_position: int, pooled: np.ndarray) -> None:
        """Store ``pooled [len(index), dim]`` as rows ``index`` of the ``layer_position``-th layer."""
        self._arrays[layer_position][index] = pooled
        self._written[layer_position, index] = True

    def flush(self) -> None:
        """Write the rows so far to disk and unmap them, to map the layer files afresh: the pages
        of a memory map stay resident while it is mapped, so without this the process would grow
        by the whole store (200k documents x 7 layers x 384: 1 GB) instead of one window."""
        for array in self._arrays:
            array.flush()
        self._arrays = []  # unmapped as the last reference goes
        self._arrays = [np.load(self._tmp / layer_file(layer), mmap_mode="r+") for layer in self.layers]

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        self._close()
        if kind is not None:  # the temporary folder goes, the error goes on
            return self._stack.__exit__(kind, error, trace)
        with self._stack:  # an error here, too, removes the temporary folder
            self._finish()
        return None

    def _close(self) -> None:
        for array in self._arrays:
            array.flush()
        self._arrays = []

    def _finish(self) -> None:
        """Check that every row was written, then write ``meta.json`` (the store's last file)."""
        unwritten = (~self._written).sum(axis=1)
        for layer, rows in zip(self.layers, unwritten):
            if rows:
                raise EmbaugError(f"{self.path}: layer {layer}: {rows} of {self.n_docs} rows never written")
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "layers": self.layers,
            "dtype": self.dtype,
            "n_docs": self.n_docs,
            "dim": self.dim,
            "doc_ids": DOC_IDS,
            "files": {str(layer): layer_file(layer) for layer in self.layers},
        }
        (self._tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class EmbeddingStore:
    """A store written by :class:`EmbeddingWriter`, opened read-only and checked.

    ``layers`` lists the stored layer indices; :meth:`layer` maps one layer's file (nothing
    else is read). A missing or incomplete folder, a meta file of another format or version,
    or a layer file whose size or shape disagrees with the meta raises :class:`EmbaugError`
    naming the folder and how to rebuild it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            problem = "no such folder" if not self.path.exists() else f"{META} is missing"
            if self.path.is_file():
                problem = "a file, not an embedding store folder (an older format?)"
            raise _broken(self.path, problem)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise _broken(self.path, f"{META} is not {FORMAT} version {VERSION}")
            self.layers: list[int] = [int(layer) for layer in meta["layers"]]
            self.dtype: str = str(meta["dtype"])
            self.n_docs: int = int(meta["n_docs"])
            self.dim: int = int(meta["dim"])
            self._files = {int(layer): self.path / name for layer, name in meta["files"].items()}
            self._doc_ids = self.path / meta["doc_ids"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _broken(self.path, f"unreadable {META} ({exc})") from exc
        if self.dtype not in DTYPES or sorted(self._files) != sorted(self.layers):
            files = sorted(self._files)
            raise _broken(self.path, f"{META} lists dtype {self.dtype}, layers {self.layers}, files {files}")
        for layer in self.layers:
            self._check(layer)

    def _check(self, layer: int) -> None:
        """The layer file exists, its header says [n_docs, dim] of the stored dtype, its size fits."""
        path = self._files[layer]
        try:
            with open(path, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                read_header = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, fortran, dtype = read_header(handle)
                data_start = handle.tell()
        except (OSError, ValueError) as exc:
            raise _broken(self.path, f"{path.name}: {exc}") from exc
        expected = (self.n_docs, self.dim)
        if tuple(shape) != expected or dtype != np.dtype(self.dtype) or fortran:
            found = f"{dtype} {tuple(shape)}"
            raise _broken(self.path, f"{path.name} holds {found}, {META} says {self.dtype} {expected}")
        size = data_start + self.n_docs * self.dim * np.dtype(self.dtype).itemsize
        found = path.stat().st_size
        if found != size:
            raise _broken(self.path, f"{path.name} has {found} bytes, expected {size} (truncated?)")

    def layer(self, layer: int) -> np.memmap:
        """Layer ``layer``'s embeddings ``[n_docs, dim]``, a read-only memory map of its file alone."""
        if layer not in self._files:
            raise EmbaugError(f"{self.path}: layer {layer} not stored (stored: {self.layers})")
        return np.load(self._files[layer], mmap_mode="r", allow_pickle=False)

    @property
    def doc_ids(self) -> np.ndarray:
        """The documents' ids, in row order."""
        try:
            doc_ids = np.load(self._doc_ids, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise _broken(self.path, f"{self._doc_ids.name}: {exc}") from exc
        if doc_ids.shape != (self.n_docs,):
            raise _broken(self.path, f"{self._doc_ids.name} holds {len(doc_ids)} ids for {self.n_docs} rows")
        return doc_ids

    def __iter__(self):
        """Each stored layer's memory map, in the order of :attr:`layers`."""
        return (self.layer(layer) for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)
