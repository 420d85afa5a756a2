"""What each workflow job asks the scheduler for (memory, minutes, threads), from its input sizes.

The workflow's resource callables (:mod:`embaug.plan.sizing`) read the sizes cheaply
(a Parquet file's footer: row count and uncompressed text bytes, never its rows; a model's
``config.json``; an MTEB task's descriptive statistics shipped with mteb) and call the pure
functions here, so a 733k-document job asks for what it needs and a 2k-document job fits on a
small node. Every figure is an estimate with a margin, not a measurement of the machine.

The basis (each a named constant below):

* **Memory**: a Python process with torch, transformers and pandas loaded (:data:`BASELINE_MB`),
  plus the model's float32 weights (twice while loading), plus what the stage holds per
  document. Embeddings are stored float32 by default (:data:`STORE_BYTES`), one memory-mapped ``.npy``
  per layer; readers convert at most one layer to float32 at a time, so kNN, the linear probe
  and t-SNE hold one float32 layer, never the corpus' ``[layers, docs, dim]``. kNN works
  through a bounded distance block (:data:`KNN_BLOCK_MB`). Texts held in pandas cost their
  bytes plus a Python object each (:data:`PYTHON_STR_BYTES`); tokenized texts held as Python
  lists cost :data:`TOKEN_BYTES` per token.
* **Time**: floating-point operations over an assumed sustained rate: a transformer forward
  pass is ``2 x parameters`` FLOPs per token plus attention (``4 x layers x dim x length``),
  training ``3 x`` that; a kNN layer is one ``queries x references x dim`` matrix product.
  Rates: :data:`GPU_FLOPS` (a data-centre GPU under bf16 autocast, well below its peak) and
  :data:`CPU_FLOPS_PER_THREAD` (this project's 2-core CPU benchmarks measured 25-40 GFLOP/s
  per core for the encoder; half of that is assumed). English text is :data:`CHARS_PER_TOKEN`
  characters per token. Estimates are doubled (:data:`TIME_MARGIN`) and get
  :data:`STARTUP_MINUTES` for imports, loading and writing; readers of the store add reading
  it once (:data:`STORE_READ_BYTES_PER_S`).
* **Retries**: memory and time grow with the attempt (``attempt`` 2 asks for twice as much),
  so a job killed for either is resubmitted bigger (``retries`` in the SLURM profile).

Requests are rounded up (memory to :data:`MEM_STEP_MB`, time to whole minutes) and capped
(:data:`MAX_MEM_MB`, :data:`MAX_MINUTES`, :data:`MAX_THREADS`).
"""

from __future__ import annotations

import errno
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import first_line, unreadable

if TYPE_CHECKING:
    import pyarrow.parquet

BASELINE_MB = 1536
"""A Python process with torch, transformers, pandas and scikit-learn imported (about 0.6-0.9 GiB
resident in the benchmarks), with room for allocator slack."""
STORE_BYTES = 4
"""Bytes per stored embedding value: float32, the default (`embedding.dtype: float16` halves it, so
this bounds the read time from above)."""
FLOAT32_BYTES = 4
PYTHON_STR_BYTES = 80
"""Per text held in pandas besides its characters (str object, index, pointers)."""
TOKEN_BYTES = 40
"""Per token of a text tokenized up front (ids and attention mask as Python lists)."""
WINDOW_TOKEN_BYTES = 5
"""Per token of the pretraining windows, kept flat (:class:`embaug.mlm.TokenWindows`): its id
(``uint16`` for vocabularies up to 65,536 such as BERT's and MPNet's, ``int32`` beyond: counted at 4)
and its special-token flag (1)."""
OFFSET_TOKEN_BYTES = 8
"""Per token of the pretraining windows with whole-word masking: its (start, end) character offsets."""
CHARS_PER_TOKEN = 4.0
"""Characters per WordPiece / BPE token of English text."""
KNN_BLOCK_MB = 1024
"""Host memory of kNN's query x reference distance block and its top-k buffers."""
TSNE_NEIGHBOUR_BYTES = 48
"""Per document and neighbour of t-SNE's affinities (index + value, symmetrised, and the kNN
search that builds them)."""
GPU_FLOPS = 4e13
"""Sustained FLOP/s assumed on one GPU (an A100 reaches 312 TFLOP/s bf16 at peak)."""
CPU_FLOPS_PER_THREAD = 1.2e10
"""Sustained FLOP/s assumed per CPU thread in matrix products."""
SAGA_FLOPS = 1e9
"""Sustained FLOP/s of scikit-learn's single-threaded saga solver (per-sample updates)."""
LINEAR_EPOCHS = 100
"""saga epochs assumed per layer (it stops earlier once it reaches its tolerance)."""
TSNE_SECONDS_PER_POINT_ITERATION = 3e-5
"""openTSNE's FFT gradient, CPU seconds per document and iteration (about 45 minutes for 1M
documents and 750 iterations on 8 threads), kNN search included."""
STORE_READ_BYTES_PER_S = 2e8
"""Reading a stored layer (a shared network file system's sustained rate, conservatively)."""
TIME_MARGIN = 2.0
STARTUP_MINUTES = 5
MEM_STEP_MB = 256
MAX_MEM_MB = 256_000
MAX_MINUTES = 7 * 24 * 60
MAX_THREADS = 32
CPU_THREAD_CAP = 16
"""Most threads a CPU job asks for (beyond that, matrix products and openTSNE gain little)."""
GPU_HOST_THREADS = 8
"""CPU threads of a GPU job (tokenizing, batching, copying results back)."""
CPU_TARGET_MINUTES = 60
"""CPU jobs get enough threads (up to their cap) to finish in about this long."""


@dataclass(frozen=True)
class Request:
    """What one job asks for: ``mem_mb`` (MB), ``runtime`` (minutes) and ``threads``."""

    mem_mb: int
    runtime: int
    threads: int


@dataclass(frozen=True)
class CorpusSize:
    """A text table's row count and the bytes of its text column (uncompressed)."""

    documents: int
    text_bytes: int

    def tokens(self, max_length: int) -> int:
        """Tokens after truncation at ``max_length``: at most ``max_length`` per text."""
        return min(math.ceil(self.text_bytes / CHARS_PER_TOKEN), self.documents * max_length)

    def mean_tokens(self, max_length: int) -> float:
        """Tokens per text after truncation (:meth:`tokens` over the texts)."""
        return self.tokens(max_length) / max(1, self.documents)

    def text_memory_bytes(self) -> int:
        """Bytes of the texts held as Python strings."""
        return self.text_bytes + self.documents * PYTHON_STR_BYTES


@dataclass(frozen=True)
class ModelShape:
    """A transformer encoder's depth (blocks), width and parameter count."""

    layers: int
    dim: int
    parameters: int

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        """The shape of a Hugging Face BERT-style ``config.json`` (parameters estimated)."""
        layers, dim = int(config["num_hidden_layers"]), int(config["hidden_size"])
        inner = int(config.get("intermediate_size", 4 * dim))
        vocab = int(config.get("vocab_size", 30522)) + int(config.get("max_position_embeddings", 512))
        parameters = layers * (4 * dim * dim + 2 * dim * inner) + vocab * dim
        return cls(layers, dim, parameters)

    def forward_flops_per_token(self, length: float) -> float:
        """FLOPs of one token's forward pass in a text of ``length`` tokens."""
        return 2.0 * self.parameters + 4.0 * self.layers * self.dim * length

    def weights_mb(self) -> float:
        return self.parameters * FLOAT32_BYTES / 1e6


BERT_BASE = ModelShape(layers=12, dim=768, parameters=110_000_000)
"""Assumed for a hub model whose config cannot be read."""


# --- reading sizes (cheap: footers and small JSON files) --------------------------------------


def _missing(path: Path) -> FileNotFoundError:
    # Snakemake turns a FileNotFoundError naming an input file into "<TBD>" in a dry run and
    # evaluates the resource again once the file exists (before the job is submitted).
    return FileNotFoundError(errno.ENOENT, "input not created yet", str(path))


def _parquet_file(path: str | Path) -> pyarrow.parquet.ParquetFile:
    """A Parquet table opened at its footer: a missing one is "not created yet" (:func:`_missing`), an
    unreadable one (truncated, not Parquet) one line naming it and how to rebuild it."""
    import pyarrow
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise _missing(path)
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise unreadable(path, exc, "Parquet file") from exc


def corpus_size(path: str | Path, text_column: str = "text") -> CorpusSize:
    """Rows and text bytes of a Parquet table from its footer (no row is read)."""
    meta = _parquet_file(path).metadata
    names = meta.schema.names
    text_bytes = 0
    if text_column in names:
        column = names.index(text_column)
        text_bytes = sum(
            meta.row_group(g).column(column).total_uncompressed_size for g in range(meta.num_row_groups)
        )
    return CorpusSize(meta.num_rows, text_bytes)


def table_text_size(path: str | Path) -> CorpusSize:
    """Texts and text bytes of every string column of a Parquet table (an MTEB task file), from its
    footer: ``rows x string columns`` texts (an upper bound: a label or split column counts too)."""
    meta = _parquet_file(path).metadata
    strings = [i for i in range(meta.num_columns) if meta.schema.column(i).logical_type.type == "STRING"]
    text_bytes = sum(
        meta.row_group(g).column(i).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for i in strings
    )
    return CorpusSize(meta.num_rows * max(1, len(strings)), text_bytes)


def label_count(path: str | Path, label_column: str = "label") -> int:
    """Distinct labels of a Parquet table (reads that one column only)."""
    import pyarrow
    import pyarrow.compute as pc

    table = _parquet_file(path)
    try:
        labels = table.read(columns=[label_column])[label_column]
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise unreadable(path, exc, "Parquet file") from exc
    return int(pc.count_distinct(labels).as_py())


def model_shape(source: str | Path) -> ModelShape | None:
    """The shape in a local model folder's ``config.json``; ``None`` where there is none or it
    names no BERT-style depth and width; an unreadable one is one line naming the folder."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return None
    try:
        fields = json.loads(config.read_text())
        return ModelShape.from_config(fields)
    except KeyError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        problem = f"cannot read {config} ({type(exc).__name__}: {first_line(exc)})"
        raise unreadable(source, problem, "model folder") from exc


def mteb_task_size(task: str, splits: tuple[str, ...] = ("test",)) -> CorpusSize | None:
    """Texts and characters of an MTEB task's ``splits``, from the statistics shipped with mteb.

    Read from ``mteb/descriptive_stats/<type>/<task>.json`` without importing mteb (which takes
    seconds); ``None`` when mteb or the file is missing.
    """
    spec = importlib.util.find_spec("mteb")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "descriptive_stats"
    found = sorted(root.glob(f"*/{task}.json"))
    if not found:
        return None
    stats = json.loads(found[0].read_text())
    texts = chars = 0
    for split in splits:
        entry = stats.get(split) or {}
        parts = [v for k, v in entry.items() if k.endswith("_statistics") and isinstance(v, dict)]
        split_chars = entry.get("number_of_characters") or sum(p.get("total_text_length", 0) for p in parts)
        split_texts = sum(p.get("unique_texts", 0) for p in parts) or 2 * entry.get("num_samples", 0)
        texts, chars = texts + split_texts, chars + split_chars
    return CorpusSize(texts, chars) if texts else None


# --- the requests ------------------------------------------------------------------------------


def _minutes(seconds: float) -> float:
    return STARTUP_MINUTES + TIME_MARGIN * seconds / 60.0


def _request(mem_bytes: float, minutes: float, threads: int, attempt: int = 1) -> Request:
    """Rounded, attempt-scaled and capped request."""
    attempt = max(1, attempt)
    mem_mb = MEM_STEP_MB * math.ceil(attempt * mem_bytes / 1e6 / MEM_STEP_MB)
    return Request(
        mem_mb=int(min(MAX_MEM_MB, mem_mb)),
        runtime=int(min(MAX_MINUTES, math.ceil(attempt * minutes))),
        threads=int(max(1, min(MAX_THREADS, threads))),
    )


def cpu_threads(flops: float, cap: int = CPU_THREAD_CAP) -> int:
    """Threads so that ``flops`` take about :data:`CPU_TARGET_MINUTES` (1 .. ``cap``)."""
    return max(1, min(cap, math.ceil(flops / (CPU_FLOPS_PER_THREAD * CPU_TARGET_MINUTES * 60))))


def _compute_seconds(flops: float, gpu: bool, threads: int) -> float:
    return flops / (GPU_FLOPS if gpu else CPU_FLOPS_PER_THREAD * threads)


def _read_seconds(documents: int, dim: int, layers: int) -> float:
    """Reading ``layers`` stored layers once."""
    return documents * dim * layers * STORE_BYTES / STORE_READ_BYTES_PER_S


def _mb(value_mb: float) -> float:
    return value_mb * 1e6


def encode_flops(corpus: CorpusSize, model: ModelShape, max_length: int) -> float:
    """FLOPs of one forward pass over every text of ``corpus`` (truncated at ``max_length``)."""
    return corpus.tokens(max_length) * model.forward_flops_per_token(corpus.mean_tokens(max_length))


def encode_request(
    corpus: CorpusSize,
    model: ModelShape,
    *,
    max_length: int,
    gpu: bool,
    held_values_per_text: int = 0,
    attempt: int = 1,
) -> Request:
    """Encoding every text once (embed, MTEB): one forward pass per text, all layers at once.

    Memory: baseline + weights (twice while loading) + the texts + their token ids +
    ``held_values_per_text`` float32 values per text kept in memory (MTEB keeps its task's
    embeddings; the embed stage writes each batch to its store and keeps none).
    """
    tokens = corpus.tokens(max_length)
    flops = encode_flops(corpus, model, max_length)
    threads = GPU_HOST_THREADS if gpu else cpu_threads(flops)
    memory = (
        _mb(BASELINE_MB + 2 * model.weights_mb())
        + corpus.text_memory_bytes()
        + tokens * TOKEN_BYTES
        + corpus.documents * held_values_per_text * FLOAT32_BYTES
    )
    return _request(memory, _minutes(_compute_seconds(flops, gpu, threads)), threads, attempt)


def embed_request(
    corpus: CorpusSize, model: ModelShape, *, max_length: int, gpu: bool, attempt: int = 1
) -> Request:
    """The embed stage: every layer of every document, written batch by batch to the store."""
    return encode_request(corpus, model, max_length=max_length, gpu=gpu, attempt=attempt)


def knn_request(
    documents: int, layers: int, dim: int, *, test_fraction: float, gpu: bool, attempt: int = 1
) -> Request:
    """Exact kNN per stored layer: queries x references distances in bounded blocks.

    Memory: baseline + one layer as float32 + the distance block (every metric shares the one
    matrix product). Time: ``2 x queries x references x dim`` FLOPs per layer.
    """
    queries = math.ceil(test_fraction * documents)
    flops = 2.0 * queries * (documents - queries) * dim * layers
    threads = 4 if gpu else cpu_threads(flops)
    memory = _mb(BASELINE_MB + KNN_BLOCK_MB) + documents * dim * FLOAT32_BYTES
    seconds = _compute_seconds(flops, gpu, threads) + _read_seconds(documents, dim, layers)
    return _request(memory, _minutes(seconds), threads, attempt)


def linear_request(
    documents: int,
    layers: int,
    dim: int,
    classes: int,
    *,
    test_fraction: float,
    max_train: int | None,
    attempt: int = 1,
) -> Request:
    """Logistic regression (saga) per stored layer on at most ``max_train`` training documents.

    Memory: baseline + the fitted and test rows of one layer as float32, twice (standardised
    copy) + saga's per-sample gradient memory (``fitted x classes`` float64, twice).
    Time: :data:`LINEAR_EPOCHS` epochs of ``2 x fitted x dim x classes`` FLOPs per layer.
    """
    queries = math.ceil(test_fraction * documents)
    fitted = documents - queries if max_train is None else min(max_train, documents - queries)
    memory = (
        _mb(BASELINE_MB) + 2 * (fitted + queries) * dim * FLOAT32_BYTES + 2 * fitted * max(2, classes) * 8
    )
    flops = LINEAR_EPOCHS * 2.0 * fitted * dim * max(2, classes) * layers
    seconds = flops / SAGA_FLOPS + _read_seconds(documents, dim, layers)
    return _request(memory, _minutes(seconds), 1, attempt)


def tsne_request(
    documents: int, dim: int, *, perplexity: float, iterations: int, attempt: int = 1
) -> Request:
    """openTSNE (FFT gradients) of one layer.

    Memory: baseline + the layer as float32, twice (PCA initialisation) + ``3 x perplexity``
    neighbours per document. Time: :data:`TSNE_SECONDS_PER_POINT_ITERATION` per document and
    iteration (early exaggeration's 250 included), spread over the threads.
    """
    work = TSNE_SECONDS_PER_POINT_ITERATION * documents * (iterations + 250)
    threads = max(1, min(CPU_THREAD_CAP, math.ceil(work / (CPU_TARGET_MINUTES * 60))))
    memory = (
        _mb(BASELINE_MB)
        + 2 * documents * dim * FLOAT32_BYTES
        + documents * 3 * perplexity * TSNE_NEIGHBOUR_BYTES
    )
    return _request(memory, _minutes(work / threads), threads, attempt)


def mteb_request(
    task: CorpusSize,
    model: ModelShape,
    *,
    max_length: int,
    layers: int,
    gpu: bool,
    attempt: int = 1,
) -> Request:
    """One model on one MTEB task, ``layers`` layers from the same forward passes.

    Every text is encoded once. mteb holds the pooled outputs of the layer it scores (float32);
    with several layers they are written to disk as they are encoded and each layer is read
    back into one more copy (:class:`embaug.evaluate.mteb.LayerCache`), so memory does not grow
    with the number of layers.
    """
    held = model.dim * (2 if layers > 1 else 1)
    return encode_request(
        task, model, max_length=max_length, gpu=gpu, held_values_per_text=held, attempt=attempt
    )


def pretrain_request(
    corpora: list[CorpusSize],
    model: ModelShape,
    *,
    max_length: int,
    windows_per_step: int,
    steps: int,
    gpu: bool,
    whole_word_mask: bool = False,
    attempt: int = 1,
) -> Request:
    """Masked-language-model pretraining: ``steps`` optimizer steps of ``windows_per_step`` windows.

    Memory: baseline + weights, gradients and AdamW's two moments (4 x float32 weights) + the
    windows of every token of the corpora (the texts are read in batches, never held whole).
    Time: ``3 x`` the forward FLOPs (forward + backward) of every window, each counted at the
    corpora's mean truncated length (the output layer over the vocabulary is left out).
    """
    documents = sum(corpus.documents for corpus in corpora)
    length = sum(corpus.tokens(max_length) for corpus in corpora) / max(1, documents)
    flops = 3.0 * 2 * windows_per_step * steps * length * model.forward_flops_per_token(length)
    threads = GPU_HOST_THREADS if gpu else cpu_threads(flops)
    tokens = sum(math.ceil(corpus.text_bytes / CHARS_PER_TOKEN) for corpus in corpora)
    windows = tokens * (WINDOW_TOKEN_BYTES + (OFFSET_TOKEN_BYTES if whole_word_mask else 0))
    return _request(
        _mb(BASELINE_MB + 4 * model.weights_mb()) + 2 * windows,
        _minutes(_compute_seconds(flops, gpu, threads)),
        threads,
        attempt,
    )


def finetune_request(
    chunks: CorpusSize,
    model: ModelShape,
    *,
    max_length: int,
    batch_size: int,
    epochs: int,
    max_steps: int,
    gpu: bool,
    attempt: int = 1,
    split_eval: CorpusSize | None = None,
    eval_every: int = 0,
) -> Request:
    """Contrastive fine-tuning: a pair of two views per chunk, ``epochs`` passes, at most ``max_steps``.

    Memory: baseline + weights, gradients and Adam's two moments (4 x float32 weights) + the
    chunks' texts. Time: ``3 x`` the forward FLOPs (forward + backward) of both views of every
    pair, plus a quarter for the evaluations during training, plus, with ``split_eval`` (Figure
    3's evaluation corpus), one forward pass over it before training and every ``eval_every``
    batches.
    """
    steps = epochs * math.ceil(chunks.documents / max(1, batch_size))
    steps = min(steps, max_steps) if max_steps else steps
    length = chunks.mean_tokens(max_length)
    flops = 1.25 * 3.0 * 2 * batch_size * steps * length * model.forward_flops_per_token(length)
    if split_eval is not None and eval_every > 0:
        flops += (2 + steps // eval_every) * encode_flops(split_eval, model, max_length)
    threads = GPU_HOST_THREADS if gpu else cpu_threads(flops)
    memory = _mb(BASELINE_MB + 4 * model.weights_mb()) + 2 * chunks.text_memory_bytes()
    return _request(memory, _minutes(_compute_seconds(flops, gpu, threads)), threads, attempt)
