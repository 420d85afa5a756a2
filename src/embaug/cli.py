"""``embaug <stage>``: the one entry point every workflow rule calls."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .cli_options import add_options, read_options
from .errors import EmbaugError, first_line
from .io import read_parquet
from .stage_options import (
    BatchSubsetOptions,
    CheckConfigOptions,
    CheckDatasetOptions,
    ChunkOptions,
    DownloadModelOptions,
    DownloadOptions,
    EmbedOptions,
    FigureCurvesOptions,
    FigureLayersOptions,
    FigureLossOptions,
    FigureSweepsOptions,
    FigureTsneOptions,
    FinetuneOptions,
    GridTableOptions,
    InitModelOptions,
    KnnOptions,
    LinearOptions,
    MtebOptions,
    MtebTableOptions,
    Precision,
    PretrainOptions,
    SeedsTableOptions,
    SplitDatasetOptions,
    TableOptions,
    TfidfOptions,
    TsneOptions,
    VsPaperOptions,
)

if TYPE_CHECKING:
    from .store import EmbeddingStore

LOG = logging.getLogger("embaug")


def cmd_download(args: DownloadOptions) -> None:
    """Read a configured dataset source and write the raw table."""
    from .data.sources import load_corpus
    from .io import write_parquet

    corpus = load_corpus(args.dataset, json.loads(args.spec), args.cache_dir)
    write_parquet(corpus, args.out)
    LOG.info("%s: %d documents, %d labels", args.dataset, len(corpus), corpus["label"].nunique())


CHUNK_WINDOW = 20_000
"""Documents chunked together by ``chunk`` (memory: one window's documents and chunks)."""


def cmd_chunk(args: ChunkOptions) -> None:
    """Split every document into overlapping n-sentence chunks, a window of documents at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .data.chunking import chunk_batches
    from .io import atomic_path, parquet_windows

    read_parquet(args.corpus, columns=["doc_id"])  # a missing or damaged corpus: one clear line
    windows = (batch.to_pandas() for batch in parquet_windows(args.corpus, CHUNK_WINDOW, ["doc_id", "text"]))
    n_chunks, n_docs = 0, 0
    with atomic_path(args.out) as tmp:
        writer = None
        for chunks in chunk_batches(windows, args.sentences, args.min_chars, args.max_chars, args.dataset):
            if chunks.empty:
                continue
            table = pa.Table.from_pandas(chunks, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            n_chunks, n_docs = n_chunks + len(chunks), n_docs + chunks["doc_id"].nunique()
        writer.close()
    LOG.info("%d chunks from %d documents", n_chunks, n_docs)


def cmd_init_model(args: InitModelOptions) -> None:
    """Build a randomly initialised BERT (or its word embeddings alone) and its vocabulary."""
    from .io import atomic_path
    from .scratch import init_scratch_model

    texts = [text for path in args.corpus for text in read_parquet(path)["text"]]
    with atomic_path(args.out) as tmp:
        vocabulary = init_scratch_model(
            texts, tmp, json.loads(args.architecture), args.seed, args.kind, args.tokenizer or None,
            args.tokenizer_revision or None,
        )  # fmt: skip
    LOG.info("%s model with %s", args.kind, vocabulary)


def cmd_download_model(args: DownloadModelOptions) -> None:
    """Download a hub model at a pinned revision into the cache directory."""
    from .models import download_hub_model

    folder = download_hub_model(args.repo, args.revision, args.cache_dir, args.name)
    LOG.info("%s at %s: %s", args.repo, args.revision, folder)


def cmd_finetune(args: FinetuneOptions) -> None:
    """Fine-tune one run contrastively and save the model, its log and its parameters."""
    from .encode import set_precision
    from .models import set_threads
    from .train import TrainSettings, finetune

    set_threads(args.threads)
    settings = TrainSettings(**json.loads(args.settings))
    set_precision(settings.precision)  # also the MTEB training curves' encodings
    eval_corpora = {}
    for entry in args.eval_corpus or []:
        name, _, path = entry.partition("=")
        eval_corpora[name] = read_parquet(path)
    finetune(
        args.model,
        read_parquet(args.corpus),
        read_parquet(args.chunks),
        settings,
        args.out,
        args.run,
        eval_corpora,
        {task: path or None for task, _, path in (e.partition("=") for e in args.eval_mteb or [])},
        args.checkpoint_dir,
        args.checkpoint_every,
    )


def cmd_pretrain(args: PretrainOptions) -> None:
    """Pretrain a base model by masked language modelling and save it with its log."""
    from pathlib import Path

    from .encode import set_precision
    from .models import set_threads
    from .pretrain import PretrainSettings, pretrain

    set_threads(args.threads)
    settings = PretrainSettings(**json.loads(args.settings))
    set_precision(settings.precision)
    corpora = {Path(path).stem: path for path in args.corpus}
    pretrain(args.model, corpora, settings, args.out, args.name, args.checkpoint_dir, args.checkpoint_every)


EMBED_WINDOW = 8192
"""Documents read, tokenized and length-sorted together by ``embed`` (memory: one window's tokens)."""


def cmd_embed(args: EmbedOptions) -> None:
    """Write every layer's pooled embedding of every document into an embedding store."""
    from .config_checks import check_layers
    from .encode import embed_to_store, input_length
    from .io import parquet_windows
    from .models import check_pooling, load_encoder, resolve_device, set_threads
    from .store import EmbeddingWriter

    set_threads(args.threads)
    pooling = check_pooling(args.pooling)
    doc_ids = read_parquet(args.corpus, columns=["doc_id"])["doc_id"].to_numpy(dtype=str)
    windows = (batch["text"].to_pylist() for batch in parquet_windows(args.corpus, EMBED_WINDOW, ["text"]))
    model, tokenizer = load_encoder(args.model, resolve_device(args.device), args.name)
    name = args.name or args.model
    layers = check_layers(args.layers, model.config.num_hidden_layers + 1, "embedding.layers", name)
    max_length = input_length(model, tokenizer, args.max_length, "embedding.max_length", name)
    dim = model.config.hidden_size
    with EmbeddingWriter(args.out, layers, len(doc_ids), dim, args.dtype, doc_ids) as writer:
        embed_to_store(model, tokenizer, windows, writer, args.batch_size, max_length, pooling)
    LOG.info("%s: %d documents x %d layers x %d (%s)", args.out, len(doc_ids), len(layers), dim, args.dtype)


def _load_embeddings(embeddings: str, corpus: str) -> tuple[EmbeddingStore, list[int], np.ndarray]:
    """The store at ``embeddings`` (its layers are read lazily, one memory map each), its layer
    indices, and the labels of ``corpus`` in the store's row order (the documents must match)."""
    from .store import EmbeddingStore

    store = EmbeddingStore(embeddings)
    table = read_parquet(corpus, columns=["doc_id", "label"])
    if not np.array_equal(store.doc_ids, table["doc_id"].to_numpy(dtype=str)):
        raise EmbaugError(f"{embeddings}: documents differ from {corpus}; re-run the embed stage")
    return store, store.layers, table["label"].to_numpy(dtype=str)


def cmd_check_config(args: CheckConfigOptions) -> None:
    """Check config files as text and YAML: the file, line and column at fault (Snakemake reads
    --configfile files before any workflow code runs, and names neither)."""
    from .config_checks import check_configfile

    for path in args.configfile:
        check_configfile(path)
        LOG.info("%s: a YAML mapping of config keys", path)


def cmd_check_dataset(args: CheckDatasetOptions) -> None:
    """Check a dataset's labels against the evaluation settings (before any fine-tuning)."""
    from .config_checks import check_evaluation_data
    from .io import write_json

    labels = read_parquet(args.corpus)["label"].to_numpy(dtype=str)
    counts = check_evaluation_data(labels, args.dataset, args.k, args.test_fraction, args.seed)
    write_json(counts, args.out)
    LOG.info("%s: %s", args.dataset, counts)


def _check_scoring(labels: np.ndarray, args: KnnOptions | LinearOptions | TfidfOptions) -> None:
    """What scoring on the split needs (two classes, a test split large enough to mean anything; for
    kNN more reference documents than k), as one line naming the config key, as rule check_dataset
    asks before fine-tuning; the dataset is the corpus file's name."""
    from pathlib import Path

    from .config_checks import check_evaluation_data

    k = getattr(args, "k", None)
    check_evaluation_data(labels, Path(args.corpus).stem, k, args.test_fraction, args.seed)


def cmd_knn(args: KnnOptions) -> None:
    """kNN accuracy per layer, for each distance metric (and preprocessing, Table S3)."""
    from .io import write_csv
    from .models import resolve_device, set_threads

    set_threads(args.threads)
    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    _check_scoring(labels, args)
    scores = _knn_scores(layers, layer_ids, labels, args, args.preprocessing, resolve_device(args.device))
    write_csv(scores, args.out)


def _knn_scores(
    layers: Sequence, layer_ids: Sequence[int], labels: np.ndarray, args: KnnOptions | TfidfOptions,
    preprocessing: Sequence[str] = ("raw",), device: str = "cpu",
) -> pd.DataFrame:  # fmt: skip
    """A kNN score file's rows: accuracy per layer and metric (``args.k``, ``args.metrics``, the
    ``args.test_fraction`` / ``args.seed`` split), for each preprocessing, with the ``k`` column.
    Both metrics of a preprocessing share one pass over the layer (``knn_accuracies``)."""
    from functools import partial

    from .evaluate.knn import knn_accuracies
    from .evaluate.preprocess import metric_name, preprocessed
    from .evaluate.scores import score_layers

    knn = partial(knn_accuracies, k=args.k, metrics=args.metrics, device=device)
    scorers = [(prep, preprocessed(knn, prep)) for prep in preprocessing]

    def score(embeddings, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
        return {
            metric_name(prep, metric): accuracy
            for prep, scorer in scorers
            for metric, accuracy in scorer(embeddings, labels, train, test).items()
        }

    scores = score_layers(layers, layer_ids, labels, score, args.test_fraction, args.seed)
    scores.insert(2, "k", args.k)
    return scores


def cmd_linear(args: LinearOptions) -> None:
    """Logistic-regression accuracy per layer; ``n_fit``: the training documents fitted (``--max-train``)."""
    from functools import partial

    from .data.split import labelled_split
    from .evaluate.linear import LinearSettings, linear_accuracy
    from .evaluate.scores import score_layers
    from .io import write_csv

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    _check_scoring(labels, args)
    settings = LinearSettings(args.C, args.solver, args.tol, args.max_iter, args.max_train, args.seed)
    scorer = partial(linear_accuracy, settings=settings)
    scores = score_layers(layers, layer_ids, labels, {"logistic": scorer}, args.test_fraction, args.seed)
    train, _ = labelled_split(labels, args.test_fraction, args.seed)
    n_fit = len(train) if args.max_train is None else min(len(train), args.max_train)  # the subsample's size
    scores.insert(len(scores.columns) - 1, "n_fit", n_fit)
    write_csv(scores, args.out)


def read_vocabulary(model_dir: str) -> str:
    """Where a from-scratch model's vocabulary comes from (its ``scratch.json``)."""
    from pathlib import Path

    path = Path(model_dir) / "scratch.json"
    if not path.exists():
        raise EmbaugError(f"{path}: missing; rebuild the model with `embaug init-model`")
    return json.loads(path.read_text())["vocabulary"]


def cmd_table(args: TableOptions) -> None:
    """Aggregate last-layer scores into a rows x columns table (Table 2's shape)."""
    from .report.tables import Cell, score_table, write_table

    table = score_table([Cell(*cell) for cell in args.cell], args.metric)
    notes = [
        f"{label}: trained from scratch with {read_vocabulary(folder)}."
        for label, folder in args.vocabulary or []
    ]
    write_table(table, args.out_csv, args.out_md, "\n\n".join([args.title, *notes]))
    print(table.round(1).to_string())


def cmd_tfidf(args: TfidfOptions) -> None:
    """TF-IDF and TF-IDF + truncated SVD kNN baselines, scored like a model's last layer."""
    from .data.split import labelled_split
    from .evaluate.tfidf import svd_vectors, tfidf_vectors
    from .io import write_csv

    corpus = read_parquet(args.corpus)
    labels = corpus["label"].to_numpy(dtype=str)
    _check_scoring(labels, args)
    _, test = labelled_split(labels, args.test_fraction, args.seed)
    fit_rows = np.setdiff1d(np.arange(len(corpus)), test)  # never the kNN queries
    vectors = tfidf_vectors(corpus["text"].tolist(), fit_rows, json.loads(args.settings))
    features = {
        args.out_tfidf: vectors,
        args.out_svd: svd_vectors(vectors, fit_rows, args.svd_components, args.svd_seed),
    }
    for out, matrix in features.items():
        scores = _knn_scores([matrix], [0], labels, args)
        write_csv(scores, out)
        LOG.info(
            "%s: %d features, %s", out, matrix.shape[1], scores[["metric", "accuracy"]].to_dict("records")
        )


def cmd_split_dataset(args: SplitDatasetOptions) -> None:
    """Table S4: a corpus's training part (without the kNN test documents) and its test part."""
    from .data.heldout import held_out_parts
    from .io import write_parquet

    train, test = held_out_parts(read_parquet(args.corpus), args.test_fraction, args.seed)
    write_parquet(train, args.out_train)
    write_parquet(test, args.out_test)
    LOG.info("training part %d documents, held-out test part %d", len(train), len(test))


def cmd_batch_subset(args: BatchSubsetOptions) -> None:
    """Figure 3: a random subset of a corpus with as many training documents (batches) as another."""
    from .augment import WHOLE_DOCUMENT_MAKERS
    from .data.batch_matched import batch_matched_subset, pair_documents
    from .io import write_parquet

    whole = args.pairs in WHOLE_DOCUMENT_MAKERS
    ids = ["doc_id"]  # which documents give a pair is all the chunk files and the matched corpus tell
    matched = read_parquet(args.match_corpus, columns=ids)
    n_training = int(pair_documents(matched, read_parquet(args.match_chunks, columns=ids), whole).sum())
    corpus, chunks = read_parquet(args.corpus), read_parquet(args.chunks, columns=ids)
    subset = batch_matched_subset(corpus, chunks, n_training, args.seed, whole)
    n_subset = int(pair_documents(subset, chunks, whole).sum())
    if n_subset < n_training:
        LOG.warning(
            "%s has %d training documents, fewer than the %d of %s: its whole corpus is used",
            args.corpus, n_subset, n_training, args.match_corpus,
        )  # fmt: skip
    write_parquet(subset, args.out)
    LOG.info(
        "%d of %d documents, %d of them training documents (as %s)",
        len(subset), len(corpus), n_subset, args.match_corpus,
    )  # fmt: skip


def cmd_grid_table(args: GridTableOptions) -> None:
    """Tables S3 / S7: last-layer scores, rows (dataset, model), one column per variant."""
    from .report.grid_tables import GridCell, grid_table
    from .report.tables import write_table

    table = grid_table([GridCell(*cell) for cell in args.cell])
    write_table(table, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def cmd_seeds_table(args: SeedsTableOptions) -> None:
    """A table over training seeds: mean, sd and n per cell, and a seed-paired difference."""
    from .report.seeds import SeedCell, seed_display, seed_table, seed_values
    from .report.tables import write_table

    values = seed_values([SeedCell(*cell) for cell in args.cell], args.metric)
    table = seed_table(values, tuple(args.difference) if args.difference else None)
    write_table(table, args.out_csv, args.out_md, args.title, shown=seed_display(table))
    print(seed_display(table).to_string())


def cmd_figure_sweeps(args: FigureSweepsOptions) -> None:
    """Figure S1 / 4a: last-layer score against each swept setting, plus its table."""
    from .report.sweeps import sweep_figure, sweep_scores, sweep_table
    from .report.tables import write_table

    scores = sweep_scores(args.point, args.reference or [], args.metric)
    sweep_figure(scores, args.out, args.title)
    table = sweep_table(scores)
    write_table(table, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def _last_layer_accuracy(scores: str | None, metric: str) -> str:
    if not scores:
        return ""
    from .report.tables import last_layer_score

    return f"{last_layer_score(scores, metric):.1f}%"


def cmd_tsne(args: TsneOptions) -> None:
    """t-SNE map of the last layer's embeddings: coordinates (parquet) and a PNG coloured by label.

    Above ``--max-docs`` documents a stratified subsample is mapped; the coordinates' ``tsne``
    column says what was used (documents, affinities, neighbours, initialisation).
    """
    from .data.split import labelled_split, stratified_subsample
    from .evaluate.knn import knn_accuracy
    from .evaluate.tsne import TsneSettings, last_layer, tsne_map
    from .io import write_parquet
    from .report.figures import tsne_figure
    from .store import float32_rows

    store, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    layer = last_layer(layer_ids)
    settings = TsneSettings(
        affinity=args.affinity,
        k=args.neighbors_k,
        perplexity=args.perplexity,
        initialization=args.initialization,
        neighbors=args.neighbors,
        learning_rate=args.learning_rate if args.learning_rate == "auto" else float(args.learning_rate),
        n_iter=args.n_iter,
        max_docs=args.max_docs,
        seed=args.seed,
    )
    rows = stratified_subsample(np.arange(len(labels)), labels, settings.max_docs, settings.seed)
    embeddings = float32_rows(store.layer(layer), rows)
    xy = tsne_map(embeddings, settings, args.threads or 1)
    used = settings.describe(len(rows), len(labels))
    labels = labels[rows]
    coords = pd.DataFrame(
        {"doc_id": store.doc_ids[rows], "x": xy[:, 0], "y": xy[:, 1], "label": labels, "tsne": used}
    )
    write_parquet(coords, args.out)
    train, test = labelled_split(labels, args.test_fraction, args.split_seed)
    in_2d = 100 * knn_accuracy(xy, labels, train, test, k=args.k)
    in_dims = _last_layer_accuracy(args.scores, args.metric)
    title = f"{args.name or args.embeddings}, layer {layer}: {args.k}-NN accuracy "
    title += f"{in_dims} ({args.metric}, {embeddings.shape[1]}-d), " if in_dims else ""
    title += f"{in_2d:.1f}% in 2-D t-SNE\n{used}"
    tsne_figure(coords, args.png, title)
    LOG.info("%s", title)


def cmd_figure_tsne(args: FigureTsneOptions) -> None:
    """Figure 2: t-SNE maps side by side with one shared legend."""
    from .report.figures import tsne_panels_figure

    panels = {}
    for name, coords, scores in args.panel:
        accuracy = _last_layer_accuracy(scores, args.metric)
        panels[f"{name} (kNN {accuracy})" if accuracy else name] = read_parquet(coords)
    tsne_panels_figure(panels, args.out, args.title)


def cmd_figure_layers(args: FigureLayersOptions) -> None:
    """Figures 4b-c and S3: per-layer scores, one line per model."""
    from .report.figures import layers_figure, mteb_layer_scores

    scores = {name: pd.read_csv(path) for name, path in args.model + args.reference}
    metric: str | list[str] = args.metric
    if args.metric in ("mteb", "mteb-blocks"):
        by_block = args.metric == "mteb-blocks"
        scores = {name: mteb_layer_scores(table, by_block) for name, table in scores.items()}
        if by_block:  # one panel per block, in the tables' column order
            metric = list(dict.fromkeys(m for table in scores.values() for m in table["metric"]))
    references = [name for name, _ in args.reference]
    layers_figure(scores, args.out, metric, args.title, args.ylabel, references)


def cmd_figure_loss(args: FigureLossOptions) -> None:
    """Training loss and learning rate of one run against the batch number."""
    from pathlib import Path

    from .report.figures import loss_figure

    loss_figure(pd.read_csv(Path(args.run_dir) / "train_log.csv"), args.out, args.title, args.ylabel)


def cmd_figure_curves(args: FigureCurvesOptions) -> None:
    """Figures 1 and 3: held-out kNN accuracy over batches, one line per run."""
    from .report.figures import block_curves, curves_figure, read_curves

    curves = read_curves([tuple(entry) for entry in args.curve])
    if args.blocks:
        curves = block_curves(curves, json.loads(args.blocks))
    curves_figure(curves, args.out, args.title)
    if args.deltas:
        from .io import write_csv
        from .report.figures import adaptation_deltas

        sentence_run, step, in_domain_run = args.deltas
        deltas = adaptation_deltas(curves, sentence_run, int(step), in_domain_run)
        write_csv(deltas.round(2), args.deltas_out)
        print(deltas.round(1).to_string(index=False))


def cmd_mteb(args: MtebOptions) -> None:
    """Score one model (or layers of it) on one MTEB task; mteb's result JSON, cached by name+revision.

    With several ``--layer``, the task's texts are encoded once for all of them and each layer's
    result goes to the ``--out`` at the same position."""
    from .evaluate.mteb import evaluate_layers, evaluate_task, main_score, write_result
    from .models import set_threads

    layers = args.layer or [None]
    if len(args.out) != len(layers):
        raise EmbaugError(
            f"mteb: {len(layers)} layer(s) but {len(args.out)} --out file(s); give one per layer"
        )
    set_threads(args.threads)
    settings = dict(
        cache_dir=args.cache_dir, local_path=args.local_path or None, batch_size=args.batch_size,
        max_length=args.max_length, pooling=args.pooling, device=args.device, splits=args.splits,
        normalize=args.normalize,
    )  # fmt: skip
    if args.layer:
        results, _ = evaluate_layers(args.name, args.model, args.task, args.layer, **settings)
    else:
        results = {None: evaluate_task(args.name, args.model, args.task, **settings)}
    for (layer, result), out in zip(results.items(), args.out, strict=True):
        score = main_score(result, args.splits)
        extra = {"model": args.name, "layer": layer, "local_path": args.local_path, "main_score": score}
        write_result(result, out, extra)
        LOG.info(
            "%s %s%s: main score %.4f", args.name, args.task, f" layer {layer}" * (layer is not None), score
        )


def cmd_mteb_table(args: MtebTableOptions) -> None:
    """Table 1 / S1: MTEB main scores per model, block means and block average."""
    from .report.mteb_table import mteb_table, write_mteb_table

    blocks = json.loads(args.blocks)
    table = mteb_table([tuple(row) for row in args.row], blocks, args.splits)
    write_mteb_table(table, blocks, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def cmd_vs_paper(args: VsPaperOptions) -> None:
    """A table beside the paper's numbers: ours, paper and difference per cell."""
    from .report.paper import write_comparison

    cells = write_comparison(args.ours, args.paper, args.out_csv, args.out_md, args.title)
    print(cells.round(1).to_string(index=False))


STAGES: dict[str, tuple[type, Callable]] = {
    "download": (DownloadOptions, cmd_download),
    "chunk": (ChunkOptions, cmd_chunk),
    "check-config": (CheckConfigOptions, cmd_check_config),
    "check-dataset": (CheckDatasetOptions, cmd_check_dataset),
    "init-model": (InitModelOptions, cmd_init_model),
    "download-model": (DownloadModelOptions, cmd_download_model),
    "finetune": (FinetuneOptions, cmd_finetune),
    "pretrain": (PretrainOptions, cmd_pretrain),
    "embed": (EmbedOptions, cmd_embed),
    "knn": (KnnOptions, cmd_knn),
    "linear": (LinearOptions, cmd_linear),
    "table": (TableOptions, cmd_table),
    "grid-table": (GridTableOptions, cmd_grid_table),
    "tfidf": (TfidfOptions, cmd_tfidf),
    "split-dataset": (SplitDatasetOptions, cmd_split_dataset),
    "batch-subset": (BatchSubsetOptions, cmd_batch_subset),
    "seeds-table": (SeedsTableOptions, cmd_seeds_table),
    "figure-sweeps": (FigureSweepsOptions, cmd_figure_sweeps),
    "tsne": (TsneOptions, cmd_tsne),
    "figure-tsne": (FigureTsneOptions, cmd_figure_tsne),
    "figure-layers": (FigureLayersOptions, cmd_figure_layers),
    "figure-loss": (FigureLossOptions, cmd_figure_loss),
    "figure-curves": (FigureCurvesOptions, cmd_figure_curves),
    "mteb": (MtebOptions, cmd_mteb),
    "mteb-table": (MtebTableOptions, cmd_mteb_table),
    "vs-paper": (VsPaperOptions, cmd_vs_paper),
}
"""Each stage's options class (:mod:`embaug.stage_options`) and handler, which reads an instance."""


def build_parser() -> argparse.ArgumentParser:
    """The ``embaug`` argument parser, one subcommand per stage, its options from its options class."""
    parser = argparse.ArgumentParser(prog="embaug", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)
    for name, (options, handler) in STAGES.items():
        sub = stages.add_parser(name, help=handler.__doc__)
        add_options(sub, options)
    return parser


def stop_with_parent() -> None:
    """On Linux, end this process (SIGTERM) when its parent dies, e.g. a killed snakemake; SIGTERM
    and SIGINT end it with one line (:func:`_stopped`).

    A job's shell execs ``embaug``, so the parent is snakemake itself (or the job's shell, which
    snakemake's death ends too). SIGTERM exits through Python, so an unfinished output's
    temporary folder is removed (:func:`embaug.io.atomic_path`).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    if os.getppid() != parent:  # the parent died before the request was made
        sys.exit(128 + signal.SIGTERM)


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM or SIGINT (an interrupted snakemake, embaug.interrupt): the log's last line says so,
    and the process exits through Python, so temporaries go and a fine-tuning checkpoint stays."""
    import signal

    stage = sys.argv[1] if len(sys.argv) > 1 else "embaug"
    print(
        f"embaug {stage}: error: stopped by {signal.Signals(signum).name} (the run was interrupted); run "
        "the same snakemake command again to continue",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run one stage; input errors print one clear line and exit with status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if argv is None:  # the `embaug` command, not a call from Python
        stop_with_parent()
    args = build_parser().parse_args(argv)
    options_class, handler = STAGES[args.stage]
    options = read_options(options_class, args)
    try:
        if isinstance(options, Precision):
            from .encode import set_precision

            set_precision(options.precision)
        handler(options)
    except EmbaugError as exc:
        print(f"embaug {args.stage}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if argv is not None:  # called from Python: the caller gets the exception
            raise
        # the `embaug` command: the traceback for a bug report, then the log's usual last line
        traceback.print_exc()
        message = f"unexpected {type(exc).__name__}: {first_line(exc)} (traceback above)"
        print(f"embaug {args.stage}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
