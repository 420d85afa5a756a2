"""k-nearest-neighbour accuracy of embeddings (the paper's Table 2 metric), exact at any corpus size.

Dense embeddings (an array, a float16 memory map, or any object whose ``[index]`` gives rows) are
searched by brute force in chunks, so memory is bounded by the chunk sizes, never by test x train:

1. **Candidates** (float32, torch, on the GPU when one is given): for each chunk of queries, one
   matrix product ``G = X Y^T`` per chunk of references serves both metrics. Euclidean ranks by
   ``|y|^2 - 2 x.y`` (``|x|^2`` is the same along a row), cosine by ``-x.y / |y|`` (``|x|`` likewise),
   so no normalised copy and no second product is needed. The ``k + margin`` best of every row are
   kept with ``torch.topk``.
2. **Exact order** (float64, numpy): the candidates' distances are recomputed from the rows (squared
   differences; cosine from the float64 dot product and norms) and ordered by (distance, training
   index): of references at exactly the same distance, the one with the smaller index comes first.
3. **Proof of completeness**: float32 rounding moves a candidate score by at most ``bound`` (the
   standard dot-product error bound, doubled). A row whose ``(k + margin)``-th float32 score lies more
   than ``bound`` beyond its exact ``k``-th score has all its ``k`` nearest neighbours among the
   candidates; any other row (many exact ties, or near-ties wider than the margin) is searched again
   exactly in float64 against every reference.

The vote is scikit-learn's: the most frequent class among the ``k`` neighbours, ties going to the
class first in sorted label order (its ``classes_``). So the accuracy equals
``KNeighborsClassifier(algorithm="brute")``'s on the same split, except where scikit-learn's choice
among references tied at exactly the ``k``-th distance is an artefact of its implementation rather
than a rule and the tied references' labels change the vote. Its Euclidean search keeps a max-heap
of ``k`` that rejects a candidate equal to its largest, so the first tied references it meets stay
(the smaller indices, as here) until a nearer reference evicts one of them: which one depends on the
heap's layout. Its cosine search takes the ``k`` smallest of each row with ``numpy.argpartition``,
whose order among equal values is unspecified, in float32 arithmetic. Such ties need identical
vectors (duplicate documents) or exactly equal distances, which usually share the label.

Sparse matrices (the TF-IDF baselines) go to scikit-learn directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse
import torch
from sklearn.neighbors import KNeighborsClassifier

from ..errors import EmbaugError

METRICS = ("euclidean", "cosine")
_UNIT_ROUNDOFF = 2.0**-24  # float32
_GROUP = 8  # columns per group in the candidate pre-selection (``_smallest``)


@dataclass(frozen=True)
class Chunks:
    """Rows per block: queries per pass over the references, references per matrix product, and
    queries re-ranked at once (their candidates' rows gathered in float64)."""

    queries: int = 8192
    references: int = 2048
    refine: int = 512

    @classmethod
    def for_device(cls, device: torch.device) -> Chunks:
        """Larger blocks on a GPU, where the reference set is kept in device memory."""
        return cls(queries=8192, references=32768, refine=8192) if device.type == "cuda" else cls()

    def for_queries(self, n_queries: int) -> Chunks:
        """With fewer queries than a block, more references per product (the same product size):
        fewer, larger operations."""
        queries = max(1, min(self.queries, n_queries))
        return replace(self, queries=queries, references=self.queries * self.references // queries)


def knn_accuracy(
    embeddings,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 10,
    metric: str = "euclidean",
) -> float:
    """Accuracy of a brute-force ``k``-NN classifier fitted on ``train`` rows, scored on ``test``."""
    return knn_accuracies(embeddings, labels, train, test, k, (metric,))[metric]


def knn_accuracies(
    embeddings,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 10,
    metrics: Sequence[str] = ("euclidean",),
    device: torch.device | str = "cpu",
    chunks: Chunks | None = None,
) -> dict[str, float]:
    """``knn_accuracy`` for several metrics, sharing one pass (and one matrix product) over the data."""
    unknown = [metric for metric in metrics if metric not in METRICS]
    if unknown:
        raise EmbaugError(f"unknown kNN metric {unknown[0]!r} (use {', '.join(METRICS)})")
    labels = np.asarray(labels)
    if scipy.sparse.issparse(embeddings):
        return {metric: _sklearn_accuracy(embeddings, labels, train, test, k, metric) for metric in metrics}
    classes, train_codes = np.unique(labels[train], return_inverse=True)
    test_labels = labels[test]
    correct = dict.fromkeys(metrics, 0)
    device = torch.device(device)
    chunks = chunks or Chunks.for_device(device).for_queries(len(test))
    search = _Search(embeddings, np.asarray(train), k, tuple(metrics), device, chunks)
    for rows, neighbours in search.neighbours(np.asarray(test)):
        for metric, index in neighbours.items():
            correct[metric] += int(
                (classes[_vote(train_codes[index], len(classes))] == test_labels[rows]).sum()
            )
    return {metric: correct[metric] / len(test) for metric in metrics}


def _sklearn_accuracy(embeddings, labels, train, test, k: int, metric: str) -> float:
    classifier = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute")
    classifier.fit(embeddings[train], labels[train])
    return float(classifier.score(embeddings[test], labels[test]))


def _vote(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Most frequent code per row; ties to the smallest code (scikit-learn's mode, sorted classes)."""
    offsets = np.arange(len(codes))[:, None] * n_classes
    counts = np.bincount((codes + offsets).ravel(), minlength=len(codes) * n_classes)
    return counts.reshape(len(codes), n_classes).argmax(axis=1)


def _rows(embeddings, index: np.ndarray, dtype) -> np.ndarray:
    return np.asarray(embeddings[index], dtype=dtype)


class _Search:
    """Exact k-NN of query rows among ``train`` rows of ``embeddings``, for each metric.

    On a GPU (``cache``, default: on CUDA) the float32 reference rows are copied to the device once
    per search (2 GB at 660k x 768); when they are exact (float16 or float32 input) the float64
    re-ranking reads them there too.
    """

    def __init__(
        self,
        embeddings,
        train: np.ndarray,
        k: int,
        metrics: tuple[str, ...],
        device: torch.device,
        chunks: Chunks,
        cache: bool | None = None,
    ):
        if not 1 <= k <= len(train):
            raise EmbaugError(f"k = {k} neighbours, but the training split has {len(train)} documents")
        self.embeddings, self.train, self.k, self.metrics = embeddings, train, k, metrics
        self.device, self.chunks = device, chunks
        self.candidates = min(len(train), k + 10)  # the margin: near-ties it absorbs without a rescan
        self.dim = int(np.shape(embeddings)[1])
        blocks = [
            train[start : start + chunks.references] for start in range(0, len(train), chunks.references)
        ]
        squared = np.concatenate([_squared_norms(_rows(embeddings, block, np.float64)) for block in blocks])
        self.norms = np.sqrt(squared)
        inverse = np.divide(1.0, self.norms, out=np.zeros_like(self.norms), where=self.norms > 0)
        self.squared_t = torch.from_numpy(squared.astype(np.float32)).to(device)
        self.negative_inverse_t = torch.from_numpy(-inverse.astype(np.float32)).to(device)
        self.inverse_64 = torch.from_numpy(inverse).to(device)
        self.cached = None
        if device.type == "cuda" if cache is None else cache:
            self.cached = torch.empty((len(train), self.dim), dtype=torch.float32, device=device)
            for block, rows in zip(blocks, range(0, len(train), chunks.references)):
                self.cached[rows : rows + len(block)] = torch.from_numpy(_rows(embeddings, block, np.float32))
        exact_input = np.dtype(getattr(embeddings, "dtype", np.float64)) in (np.float16, np.float32)
        self.exact_cache = self.cached is not None and exact_input

    def _references(self) -> Iterator[tuple[int, torch.Tensor]]:
        step = self.chunks.references
        for start in range(0, len(self.train), step):
            if self.cached is not None:
                yield start, self.cached[start : start + step]
            else:
                block = _rows(self.embeddings, self.train[start : start + step], np.float32)
                yield start, torch.from_numpy(block).to(self.device)

    def neighbours(self, test: np.ndarray) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """Per chunk of ``test``: its rows and, per metric, ``k`` neighbours (positions in ``train``)."""
        for start in range(0, len(test), self.chunks.queries):
            rows = slice(start, start + self.chunks.queries)
            yield rows, self._chunk_neighbours(test[rows])

    def _chunk_neighbours(self, queries: np.ndarray) -> dict[str, np.ndarray]:
        candidates = self._candidates(queries)
        step = self.chunks.refine
        return {
            metric: np.concatenate(
                [
                    self._exact(
                        metric,
                        queries[start : start + step],
                        scores[start : start + step],
                        index[start : start + step],
                    )
                    for start in range(0, len(queries), step)
                ]
            )
            for metric, (scores, index) in candidates.items()
        }

    def _candidates(self, queries: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per metric, float32 scores and training positions of each query's best candidates
        (in full float32: TensorFloat-32 products would break the rounding bound)."""
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return self._float32_candidates(queries)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32

    def _float32_candidates(self, queries: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        x = torch.from_numpy(_rows(self.embeddings, queries, np.float32)).to(self.device)
        best: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for start, block in self._references():
            product = x @ block.T
            span = slice(start, start + len(block))
            for metric in self.metrics:
                if metric == "euclidean":
                    scores = torch.add(self.squared_t[span], product, alpha=-2.0)
                else:
                    scores = product * self.negative_inverse_t[span]
                values, columns = _smallest(scores, self.candidates)
                index = columns + start
                if metric in best:
                    values = torch.cat([best[metric][0], values], dim=1)
                    index = torch.cat([best[metric][1], index], dim=1)
                    values, columns = _smallest(values, self.candidates)
                    index = index.gather(1, columns)
                best[metric] = (values, index)
        return {metric: (v.cpu().numpy(), i.cpu().numpy()) for metric, (v, i) in best.items()}

    def _exact_rows(self, positions: np.ndarray) -> torch.Tensor:
        """float64 training rows at ``positions`` (any shape), from the device cache when exact."""
        if self.exact_cache:
            flat = torch.from_numpy(positions.ravel()).to(self.device)
            return self.cached[flat].double().reshape(*positions.shape, self.dim)
        rows = _rows(self.embeddings, self.train[positions.ravel()], np.float64)
        return torch.from_numpy(rows).to(self.device).reshape(*positions.shape, self.dim)

    def _exact_scores(self, metric: str, x: torch.Tensor, index: np.ndarray) -> np.ndarray:
        """float64 scores (the candidate pass's units) of rows ``x`` against training positions."""
        y = self._exact_rows(index)
        if metric == "euclidean":
            scores = ((x[:, None, :] - y) ** 2).sum(dim=2) - (x * x).sum(dim=1, keepdim=True)
        else:
            inverse = self.inverse_64[torch.from_numpy(index).to(self.device)]
            scores = -(y @ x[:, :, None])[:, :, 0] * inverse
        return scores.cpu().numpy()

    def _exact(self, metric: str, queries: np.ndarray, scores: np.ndarray, index: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(_rows(self.embeddings, queries, np.float64)).to(self.device)
        exact = self._exact_scores(metric, x, index)
        order = np.lexsort((index, exact), axis=1)
        index = np.take_along_axis(index, order, axis=1)
        if self.candidates == len(self.train):
            return index[:, : self.k]
        kth = np.take_along_axis(exact, order[:, self.k - 1 : self.k], axis=1)[:, 0]
        unsure = scores.max(axis=1) - self._bound(metric, x.cpu().numpy()) <= kth
        for row in np.flatnonzero(unsure):
            index[row] = self._full_scan(metric, x[row : row + 1])[: self.candidates]
        return index[:, : self.k]

    def _bound(self, metric: str, x: np.ndarray) -> np.ndarray:
        """Twice the float32 rounding bound of a candidate score (dot products of ``dim`` terms)."""
        gamma = 2.0 * (self.dim + 4) * _UNIT_ROUNDOFF
        norm_x = np.sqrt(_squared_norms(x))
        if metric == "euclidean":
            largest = self.norms.max()
            return gamma * (largest**2 + 2.0 * norm_x * largest)
        return gamma * norm_x

    def _full_scan(self, metric: str, x: torch.Tensor) -> np.ndarray:
        """Training positions of one query row ordered by exact (score, index), over every reference."""
        step, n = self.chunks.references, len(self.train)
        scores = np.concatenate(
            [
                self._exact_scores(metric, x, np.arange(start, min(start + step, n))[None, :])[0]
                for start in range(0, n, step)
            ]
        )
        return np.lexsort((np.arange(n), scores))


def _squared_norms(rows: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", rows, rows)


def _smallest(scores: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` smallest scores per row (any order) and their columns, as ``torch.topk`` would give.

    On a CPU ``topk`` over a whole chunk costs about as much as the matrix product, so it runs on a
    short list instead: the minima of groups of ``_GROUP`` columns (a cheap reduction), the ``count``
    groups with the smallest minima, then ``topk`` over those groups' columns. Exact: those ``count``
    minima are ``count`` scores no larger than any score of the other groups, so every score left out
    is at least the largest one kept.
    """
    n_rows, width = scores.shape
    groups = width // _GROUP
    if groups < 4 * count:
        top = torch.topk(scores, min(count, width), dim=1, largest=False, sorted=False)
        return top.values, top.indices
    minima = scores[:, : groups * _GROUP].view(n_rows, groups, _GROUP).amin(dim=2)
    chosen = torch.topk(minima, count, dim=1, largest=False, sorted=False).indices
    offsets = torch.arange(_GROUP, device=scores.device)
    columns = (chosen[:, :, None] * _GROUP + offsets).reshape(n_rows, -1)
    if width > groups * _GROUP:  # the last, partial group: always a candidate
        tail = torch.arange(groups * _GROUP, width, device=scores.device).expand(n_rows, -1)
        columns = torch.cat([columns, tail], dim=1)
    top = torch.topk(scores.gather(1, columns), count, dim=1, largest=False, sorted=False)
    return top.values, columns.gather(1, top.indices)
