"""MTEB evaluation of any model or any single layer, through ``mteb.evaluate`` (mteb >= 2).

A model is wrapped as an mteb encoder that runs the project's own batched encoder
(:func:`embaug.encode.embed_layers`: length-sorted batches, no gradient, bf16/fp16 autocast on
GPU), mean-pools one layer (the last by default) and L2-normalises, which is what the
sentence-transformers export (Transformer -> mean Pooling -> Normalize) computes.

Every evaluated model gets its own mteb model name (``embaug/<model>`` or
``embaug/<model>__layer<k>``) and a revision that hashes its weights and every setting that
changes its embeddings, so results in one :class:`mteb.ResultCache` can never be mixed up.
:func:`evaluate_layers` scores several layers on one task from one encoding of its texts.

Task data comes from the hub by default; :func:`load_local_task` puts local files (Parquet,
CSV, JSON lines) into the real mteb task object instead, so its own splits and metric apply.

Usage::

    result = evaluate_task("minilm", "/path/to/minilm", "STS15", cache_dir="results/mteb",
                           local_path="../shared/data/mteb/sts15.parquet")
    main_score(result)
    results, cache = evaluate_layers("minilm", "/path/to/minilm", "STS15", [0, 3, 6])
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..errors import EmbaugError

LOG = logging.getLogger(__name__)

BLOCKS = ("clustering", "reranking", "retrieval", "sts", "classification")
# Files whose bytes define a local model; hashed into its mteb revision.
_WEIGHT_FILES = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "vocab.txt", "*.model")


def mteb_model_name(model: str, layer: int | None = None) -> str:
    """The mteb model name of a project model (``org/name``, as mteb requires), per layer."""
    return f"embaug/{model}" if layer is None else f"embaug/{model}__layer{layer}"


def model_fingerprint(source: str | Path, revision: str | None = None) -> str:
    """sha256 of a local model's weight, config and vocabulary files; for a hub id, of the id and
    the commit it resolved to (``revision``), so a model updated on the hub gets new results."""
    path = Path(source)
    digest = hashlib.sha256()
    if not path.is_dir():
        digest.update(f"hub:{source}@{revision or 'unresolved'}".encode())
        return digest.hexdigest()
    files = sorted({f for pattern in _WEIGHT_FILES for f in path.glob(pattern)})
    if not files:
        raise EmbaugError(f"{source}: no model files (config.json, *.safetensors, ...) found")
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_revision(fingerprint: str, settings: Mapping[str, Any]) -> str:
    """A short revision that changes with the weights and with every embedding setting."""
    payload = json.dumps({"weights": fingerprint, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_model_meta(name: str, revision: str, *, embed_dim: int, n_parameters: int, max_tokens: int):
    """An mteb ``ModelMeta`` for a project model (no loader: the encoder is built here)."""
    from mteb.models.model_meta import ModelMeta

    return ModelMeta(
        loader=None,
        name=name,
        revision=revision,
        release_date=None,
        languages=None,
        n_parameters=n_parameters,
        memory_usage_mb=None,
        max_tokens=max_tokens,
        embed_dim=embed_dim,
        license=None,
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch"],
        similarity_fn_name="cosine",
        use_instructions=False,
        training_datasets=None,
    )


class LayerCache:
    """Every scored layer's pooled output of each text seen so far, from one forward pass per text.

    mteb evaluates one layer (one model name) at a time. The first evaluation's texts are
    encoded for all ``layers`` at once, straight into an embedding store under ``spill_dir``
    (:func:`~embaug.encode.embed_to_store`: one window of texts and one batch in memory); later
    layers' evaluations find their texts there, so a task's texts pass through the model once
    whatever the number of layers. Memory: the texts asked for, of one layer (mteb holds that
    much anyway); disk: texts x layers x dim float32 (ArxivClusteringP2P, 13 layers of 768: 29 GB).
    ``progress``: an ``embed`` bar while the texts pass through the model.
    """

    def __init__(
        self,
        model,
        tokenizer,
        layers: Sequence[int],
        spill_dir: str | Path,
        max_length: int = 512,
        pooling: str = "mean",
        progress: bool = False,
    ):
        from ..encode import selected_layers

        self.model, self.tokenizer = model, tokenizer
        self.layers = selected_layers(model, layers)
        self.spill_dir, self.max_length, self.pooling = Path(spill_dir), max_length, pooling
        self.progress = progress
        self.stores: list[Any] = []  # EmbeddingStore per encoding call, every layer of its texts
        self.where: dict[str, tuple[int, int]] = {}  # text -> (store, row)
        self.n_encoded = 0

    def embeddings(self, texts: Sequence[str], layer: int, batch_size: int) -> np.ndarray:
        """``[len(texts), dim]`` pooled outputs of ``layer`` (one of ``layers``), input order kept."""
        from ..encode import embed_to_store, selected_layers
        from ..store import EmbeddingStore, EmbeddingWriter

        missing = [text for text in dict.fromkeys(texts) if text not in self.where]
        dim = self.model.config.hidden_size
        if missing:
            folder = self.spill_dir / f"texts-{len(self.stores)}"
            windows = (
                missing[start : start + SPILL_WINDOW] for start in range(0, len(missing), SPILL_WINDOW)
            )
            with EmbeddingWriter(folder, self.layers, len(missing), dim, "float32") as writer:
                embed_to_store(
                    self.model, self.tokenizer, windows, writer, batch_size, self.max_length, self.pooling,
                    progress=self.progress,
                )  # fmt: skip
            self.where.update((text, (len(self.stores), row)) for row, text in enumerate(missing))
            self.stores.append(EmbeddingStore(folder))
            self.n_encoded += len(missing)
        (layer,) = selected_layers(self.model, [layer])
        found = np.array([self.where[text] for text in texts], dtype=np.int64).reshape(-1, 2)
        out = np.empty((len(texts), dim), dtype=np.float32)
        for number in np.unique(found[:, 0]):
            rows = found[:, 0] == number
            out[rows] = self.stores[number].layer(layer)[found[rows, 1]]
        return out


SPILL_WINDOW = 8192
"""Texts tokenized and length-sorted together when :class:`LayerCache` encodes a task."""


def _encoder_class():
    from mteb.models.abs_encoder import AbsEncoder

    class LayerEncoder(AbsEncoder):
        """One layer's pooled output (L2-normalised with ``normalize``), encoded with ``embed_layers``,
        or taken from ``cache``: a :class:`LayerCache` shared by the encoders of several layers (set
        by :func:`evaluate_layers`); ``progress``: an ``embed`` bar while encoding (set by
        :func:`evaluate_task`; off while a model trains)."""

        def __init__(
            self,
            model,
            tokenizer,
            meta,
            layer=None,
            batch_size=64,
            max_length=512,
            pooling="mean",
            normalize=True,
        ):
            self.model, self.tokenizer, self.mteb_model_meta = model, tokenizer, meta
            self.normalize = normalize
            self.layer, self.batch_size, self.max_length, self.pooling = (
                layer,
                batch_size,
                max_length,
                pooling,
            )
            self.cache: LayerCache | None = None
            self.progress = False
            self.n_texts, self.seconds = 0, 0.0

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
            from ..encode import embed_layers

            texts = [text for batch in inputs for text in batch["text"]]
            start = time.perf_counter()
            layer = -1 if self.layer is None else self.layer
            batch_size = int(kwargs.get("batch_size") or self.batch_size)
            if self.cache is not None:
                embeddings = self.cache.embeddings(texts, layer, batch_size)
            else:
                embeddings = embed_layers(
                    self.model, self.tokenizer, texts, batch_size, self.max_length, self.pooling,
                    [layer], progress=self.progress,
                )[0]  # fmt: skip
            self.seconds += time.perf_counter() - start
            self.n_texts += len(texts)
            if not self.normalize:
                return embeddings
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            return embeddings / np.maximum(norms, 1e-12)

    return LayerEncoder


def make_encoder(
    model_name: str,
    source: str,
    *,
    layer: int | None = None,
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    device: str = "auto",
    normalize: bool = True,
):
    """Load ``source`` and wrap it as an mteb encoder with a distinct name and revision."""
    from ..models import load_encoder, resolve_device

    model, tokenizer = load_encoder(source, resolve_device(device), model_name)
    fingerprint = model_fingerprint(source, getattr(model.config, "_commit_hash", None))  # hub commit
    return wrap_encoder(
        model, tokenizer, model_name, fingerprint, layer=layer,
        batch_size=batch_size, max_length=max_length, pooling=pooling, normalize=normalize,
    )  # fmt: skip


def wrap_encoder(
    model,
    tokenizer,
    model_name: str,
    fingerprint: str,
    *,
    layer: int | None = None,
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    normalize: bool = True,
):
    """An mteb encoder for a loaded model; ``fingerprint`` identifies its weights in the revision.

    ``normalize``: L2-normalise the embeddings (the authors' exported fine-tuned models) or not
    (their base models, ``SentenceTransformer(hub id)``: mean pooling only). The revision also
    records the process's precision (:func:`embaug.encode.set_precision`).
    """
    from ..config_checks import check_layers
    from ..encode import current_precision
    from ..models import check_pooling

    if layer is not None:
        [layer] = check_layers([layer], model.config.num_hidden_layers + 1, "mteb.layers", model_name)
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
    settings = {
        "layer": layer,
        "pooling": check_pooling(pooling),
        "max_length": max_length,
        "normalize": normalize,
        "precision": current_precision(),
    }
    meta = build_model_meta(
        mteb_model_name(model_name, layer),
        model_revision(fingerprint, settings),
        embed_dim=model.config.hidden_size,
        n_parameters=sum(p.numel() for p in model.parameters()),
        max_tokens=max_length,
    )
    return _encoder_class()(model, tokenizer, meta, layer, batch_size, max_length, pooling, normalize)


class TrainingScore:
    """Main score of one MTEB task for a model being trained (the MTEB curves of Figure 1).

    The task data are loaded once (from ``local_path`` or the hub); each call wraps the live
    model, evaluates without a result cache and puts the model back in its training mode.
    """

    def __init__(
        self,
        task_name: str,
        local_path: str | Path | None,
        tokenizer,
        *,
        batch_size: int = 64,
        max_length: int = 512,
        pooling: str = "mean",
        normalize: bool = True,
    ) -> None:
        self.task = get_task(task_name)
        load_task_data(self.task, local_path)
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.max_length, self.pooling, self.normalize = max_length, pooling, normalize

    def __call__(self, model) -> float:
        import mteb

        was_training = model.training
        encoder = wrap_encoder(
            model, self.tokenizer, "training", "in-training", batch_size=self.batch_size,
            max_length=self.max_length, pooling=self.pooling, normalize=self.normalize,
        )  # fmt: skip
        results = mteb.evaluate(
            encoder, self.task, cache=None, co2_tracker=False, show_progress_bar=False,
            encode_kwargs={"batch_size": self.batch_size}, overwrite_strategy="always",
        )  # fmt: skip
        model.train(was_training)
        return main_score(results.task_results[0])


def get_task(name: str, splits: Sequence[str] = ("test",), languages: Sequence[str] = ("eng",)):
    """The mteb task object, restricted to ``splits`` and ``languages`` where it has them."""
    import mteb

    try:
        task = mteb.get_task(name)
    except KeyError as exc:
        raise EmbaugError(
            f"unknown MTEB task '{name}' (check mteb.blocks / mteb.layer_tasks in the config): {exc}"
        ) from exc
    eval_splits = [s for s in task.metadata.eval_splits if s in splits] or None
    langs = [lang for lang in languages if lang in task.metadata.languages] or None
    return mteb.get_task(name, languages=langs, eval_splits=eval_splits)


def _read_table(path: Path) -> pd.DataFrame:
    suffixes = "".join(path.suffixes[-2:])
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    if suffixes in (".jsonl", ".jsonl.gz") or path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    raise EmbaugError(f"{path}: use a .parquet, .csv, .tsv or .jsonl file for local MTEB task data")


def _local_columns(task) -> tuple[list[str], list[str]]:
    """(columns, splits) the task's evaluation reads, for the task types with flat rows."""
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.sts import AbsTaskSTS

    splits = list(task.metadata.eval_splits)
    if isinstance(task, AbsTaskSTS) and all(isinstance(c, str) for c in task.column_names):
        return [*task.column_names, "score"], splits
    if isinstance(task, AbsTaskClassification) and isinstance(task.input_column_name, str):
        return [task.input_column_name, task.label_column_name], [task.train_split, *splits]
    input_column = getattr(task, "input_column_name", None)
    label_column = getattr(task, "label_column_name", None)
    if isinstance(input_column, str) and isinstance(label_column, str):  # clustering (v2)
        return [input_column, label_column], splits
    raise EmbaugError(
        f"MTEB task '{task.metadata.name}' ({task.metadata.type}): local files are supported for "
        "STS, classification and clustering tasks; remove it from mteb_tasks to use the hub"
    )


def load_local_task(task, path: str | Path) -> None:
    """Fill ``task.dataset`` from a local file and mark it loaded; mteb's evaluation then runs as usual.

    The file has the columns the task reads (STS: ``sentence1, sentence2, score``;
    classification: ``text, label``; clustering: ``sentences, labels``) and a ``split`` column
    naming each row's split (without one, every row belongs to the task's single split).
    """
    from datasets import Dataset, DatasetDict

    path = Path(path)
    name = task.metadata.name
    if not path.exists():
        raise EmbaugError(f"MTEB task '{name}': local file {path} (mteb_tasks.{name}.path) does not exist")
    table = _read_table(path)
    columns, splits = _local_columns(task)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise EmbaugError(f"{path}: MTEB task '{name}' needs columns {columns}; missing {missing}")
    if "split" not in table.columns:
        if len(set(splits)) > 1:
            raise EmbaugError(f"{path}: MTEB task '{name}' needs splits {splits}; add a 'split' column")
        table = table.assign(split=splits[0])
    parts = {}
    for split in dict.fromkeys(splits):
        rows = table[table["split"] == split][columns]
        if rows.empty:
            raise EmbaugError(f"{path}: MTEB task '{name}' needs split '{split}', which has no rows")
        parts[split] = Dataset.from_pandas(rows.reset_index(drop=True), preserve_index=False)
    task.dataset = {subset: DatasetDict(parts) for subset in task.hf_subsets}
    task.data_loaded = True


def load_task_data(task, local_path: str | Path | None = None) -> None:
    """Local files when configured, else the hub; a failed download names the config key to set."""
    name = task.metadata.name
    if local_path:
        load_local_task(task, local_path)
        return
    try:
        task.load_data()
    except Exception as exc:  # datasets raises many types offline (ConnectionError, OSError, ...)
        raise EmbaugError(
            f"MTEB task '{name}': cannot load its data from the hub ({type(exc).__name__}: "
            f"{str(exc)[:300]}). Without network, point it at local files in the config: "
            f"mteb_tasks: {{{name}: {{path: /path/to/{name.lower()}.parquet}}}}"
        ) from exc


def main_score(result, splits: Sequence[str] | None = None) -> float:
    """The task's main score (0..1): mean over the given splits (default all) and subsets."""
    return float(result.get_score(splits=[s for s in splits if s in result.scores] if splits else None))


def evaluate_task(
    model_name: str,
    source: str,
    task_name: str,
    *,
    cache_dir: str | Path = "results/mteb",
    local_path: str | Path | None = None,
    layer: int | None = None,
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    device: str = "auto",
    normalize: bool = True,
    splits: Sequence[str] = ("test",),
    encoder=None,
):
    """Score one model (or one layer) on one MTEB task into a ``ResultCache``; returns the TaskResult.

    A result already in the cache under the same name and revision is reused, not recomputed.
    The texts' encoding shows an ``embed`` progress bar (on stderr, so in a job's log too).
    """
    import mteb

    if encoder is None:
        encoder = make_encoder(
            model_name, source, layer=layer, batch_size=batch_size, max_length=max_length,
            pooling=pooling, device=device, normalize=normalize,
        )  # fmt: skip
        encoder.progress = True
    cache = mteb.ResultCache(cache_path=cache_dir)
    task = get_task(task_name, splits)
    meta = encoder.mteb_model_meta
    cached = cache.load_task_result(task.metadata.name, meta)
    if cached is None or cached.get_missing_evaluations(task):
        LOG.info("%s on %s: scoring", meta.name, task_name)
        load_task_data(task, local_path)
    results = mteb.evaluate(
        encoder,
        task,
        cache=cache,
        co2_tracker=False,
        encode_kwargs={"batch_size": batch_size},
        overwrite_strategy="only-missing",
        show_progress_bar=False,
    )
    result = results.task_results[0]
    if encoder.n_texts:
        LOG.info(
            "%s on %s: %d texts in %.1f s (%.0f docs/s)", meta.name, task_name, encoder.n_texts,
            encoder.seconds, encoder.n_texts / max(encoder.seconds, 1e-9),
        )  # fmt: skip
    return result


def evaluate_layers(
    model_name: str,
    source: str,
    task_name: str,
    layers: Sequence[int],
    *,
    cache_dir: str | Path = "results/mteb",
    local_path: str | Path | None = None,
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    device: str = "auto",
    normalize: bool = True,
    splits: Sequence[str] = ("test",),
) -> tuple[dict[int, Any], LayerCache]:
    """Score each of ``layers`` on one MTEB task, encoding the task's texts once for all of them.

    Each layer keeps its own mteb name and revision (as :func:`evaluate_task` with ``layer``
    gives it), so cached results are shared with single-layer evaluations. Returns the
    TaskResult per layer and the :class:`LayerCache` (``n_encoded``: texts through the model).
    Progress, on stderr: the first layer's ``embed`` bar, and a bar of the layers scored.
    """
    from ..models import load_encoder, resolve_device

    model, tokenizer = load_encoder(source, resolve_device(device), model_name)
    fingerprint = model_fingerprint(source)
    encoders = [
        wrap_encoder(model, tokenizer, model_name, fingerprint, layer=layer, batch_size=batch_size,
                     max_length=max_length, pooling=pooling, normalize=normalize)
        for layer in layers
    ]  # fmt: skip
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    results = {}
    # the layers' pooled outputs go to disk beside the results (not /tmp, often small on a node)
    with tempfile.TemporaryDirectory(prefix=".layer-cache-", dir=cache_dir) as spill_dir:
        shared = LayerCache(
            model, tokenizer, [e.layer for e in encoders], spill_dir, encoders[0].max_length, pooling, True
        )
        scored = tqdm(
            zip(layers, encoders, strict=True), total=len(layers), desc=f"mteb {task_name}", unit="layer"
        )
        for layer, encoder in scored:
            encoder.cache = shared
            results[layer] = evaluate_task(
                model_name, source, task_name, cache_dir=cache_dir, local_path=local_path,
                batch_size=batch_size, splits=splits, encoder=encoder,
            )  # fmt: skip
        shared.stores.clear()  # the memory maps, before their folder goes
    LOG.info(
        "%s on %s: %d texts encoded once for %d layers", model_name, task_name, shared.n_encoded, len(layers)
    )
    return results, shared


def write_result(result, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write mteb's own result JSON atomically (plus an ``embaug`` entry with extra facts)."""
    from ..io import write_json

    data = result.to_dict()
    if extra:
        data["embaug"] = dict(extra)
    write_json(data, path)


def read_main_score(path: str | Path, splits: Sequence[str] | None = ("test",)) -> float:
    """Main score (0..1) from a result file written by :func:`write_result`."""
    from mteb.results.task_result import TaskResult

    data = json.loads(Path(path).read_text())
    data.pop("embaug", None)
    return main_score(TaskResult.from_dict(data), splits)
