"""``embaug <stage>``: the one entry point every workflow rule calls."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import EmbaugError, first_line
from .io import read_parquet

LOG = logging.getLogger("embaug")


def cmd_download(args: argparse.Namespace) -> None:
    """Read a configured dataset source and write the raw table."""
    from .data.sources import load_corpus
    from .io import write_parquet

    corpus = load_corpus(args.dataset, json.loads(args.spec), args.cache_dir)
    write_parquet(corpus, args.out)
    LOG.info("%s: %d documents, %d labels", args.dataset, len(corpus), corpus["label"].nunique())


def cmd_chunk(args: argparse.Namespace) -> None:
    """Split every document into overlapping n-sentence chunks."""
    from .data.chunking import chunk_corpus
    from .io import write_parquet

    chunks = chunk_corpus(
        read_parquet(args.corpus), args.sentences, args.min_chars, args.max_chars, args.dataset
    )
    write_parquet(chunks, args.out)
    LOG.info("%d chunks from %d documents", len(chunks), chunks["doc_id"].nunique())


def cmd_init_model(args: argparse.Namespace) -> None:
    """Build a randomly initialised BERT with a tokenizer fitted on the given corpora."""
    from .io import atomic_path
    from .models import build_scratch_model

    texts = [text for path in args.corpus for text in read_parquet(path)["text"]]
    with atomic_path(args.out) as tmp:
        build_scratch_model(texts, tmp, json.loads(args.architecture), args.seed)


def cmd_download_model(args: argparse.Namespace) -> None:
    """Download a hub model at a pinned revision into the cache directory."""
    from .models import download_hub_model

    folder = download_hub_model(args.repo, args.revision, args.cache_dir, args.name)
    LOG.info("%s at %s: %s", args.repo, args.revision, folder)


def cmd_finetune(args: argparse.Namespace) -> None:
    """Fine-tune one run contrastively and save the model, its log and its parameters."""
    from .models import set_threads
    from .train import TrainSettings, finetune

    set_threads(args.threads)
    settings = TrainSettings(**json.loads(args.settings))
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


def cmd_embed(args: argparse.Namespace) -> None:
    """Write every layer's pooled embedding of every document."""
    from .config_checks import check_layers
    from .encode import embed_layers, input_length
    from .io import write_npz
    from .models import check_pooling, load_encoder, resolve_device, set_threads

    set_threads(args.threads)
    corpus = read_parquet(args.corpus)
    model, tokenizer = load_encoder(args.model, resolve_device(args.device), args.name)
    name = args.name or args.model
    layer_ids = check_layers(args.layers, model.config.num_hidden_layers + 1, "embedding.layers", name)
    layers = embed_layers(
        model,
        tokenizer,
        corpus["text"].tolist(),
        args.batch_size,
        input_length(model, tokenizer, args.max_length, "embedding.max_length", name),
        check_pooling(args.pooling),
        layer_ids,
    )
    write_npz(
        args.out,
        embeddings=layers.astype(args.dtype),
        layer=np.array(layer_ids),
        doc_id=corpus["doc_id"].to_numpy(dtype=str),
    )


def _load_embeddings(embeddings: str, corpus: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(embeddings) as stored:
        layers, layer_ids, doc_ids = stored["embeddings"], stored["layer"], stored["doc_id"]
    table = read_parquet(corpus)
    if not np.array_equal(doc_ids, table["doc_id"].to_numpy(dtype=str)):
        raise EmbaugError(f"{embeddings}: documents differ from {corpus}; re-run the embed stage")
    return layers.astype(np.float32), layer_ids, table["label"].to_numpy(dtype=str)


def cmd_check_dataset(args: argparse.Namespace) -> None:
    """Check a dataset's labels against the evaluation settings (before any fine-tuning)."""
    from .config_checks import check_evaluation_data
    from .io import write_json

    labels = read_parquet(args.corpus)["label"].to_numpy(dtype=str)
    counts = check_evaluation_data(labels, args.dataset, args.k, args.test_fraction, args.seed)
    write_json(counts, args.out)
    LOG.info("%s: %s", args.dataset, counts)


def _check_scoring(labels: np.ndarray, args: argparse.Namespace) -> None:
    """What scoring on the split needs (two classes; for kNN more reference documents than k),
    as one line naming the config key; the dataset is the corpus file's name."""
    from pathlib import Path

    from .config_checks import check_evaluation_data

    k = getattr(args, "k", None)
    check_evaluation_data(labels, Path(args.corpus).stem, k, args.test_fraction, args.seed, min_test=0)


def cmd_knn(args: argparse.Namespace) -> None:
    """kNN accuracy per layer, for each distance metric (and preprocessing, Table S3)."""
    from .io import write_csv

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    _check_scoring(labels, args)
    write_csv(_knn_scores(layers, layer_ids, labels, args, args.preprocessing), args.out)


def _knn_scores(
    layers: Sequence, layer_ids: Sequence[int], labels: np.ndarray, args: argparse.Namespace,
    preprocessing: Sequence[str] = ("raw",),
) -> pd.DataFrame:  # fmt: skip
    """A kNN score file's rows: accuracy per layer and metric (``args.k``, ``args.metrics``, the
    ``args.test_fraction`` / ``args.seed`` split), for each preprocessing, with the ``k`` column."""
    from functools import partial

    from .evaluate.knn import knn_accuracy
    from .evaluate.preprocess import metric_name, preprocessed
    from .evaluate.scores import score_layers

    scorers = {
        metric_name(prep, metric): preprocessed(partial(knn_accuracy, k=args.k, metric=metric), prep)
        for prep in preprocessing
        for metric in args.metrics
    }
    scores = score_layers(layers, layer_ids, labels, scorers, args.test_fraction, args.seed)
    scores.insert(2, "k", args.k)
    return scores


def cmd_linear(args: argparse.Namespace) -> None:
    """Logistic-regression accuracy per layer."""
    from functools import partial

    from .evaluate.linear import linear_accuracy
    from .evaluate.scores import score_layers
    from .io import write_csv

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    _check_scoring(labels, args)
    scorer = partial(linear_accuracy, max_iter=args.max_iter, seed=args.seed)
    scores = score_layers(layers, layer_ids, labels, {"logistic": scorer}, args.test_fraction, args.seed)
    write_csv(scores, args.out)


def cmd_table(args: argparse.Namespace) -> None:
    """Aggregate last-layer scores into a rows x columns table (Table 2's shape)."""
    from .report.tables import Cell, score_table, write_table

    table = score_table([Cell(*cell) for cell in args.cell], args.metric)
    write_table(table, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def cmd_tfidf(args: argparse.Namespace) -> None:
    """TF-IDF and TF-IDF + truncated SVD kNN baselines, scored like a model's last layer."""
    from .evaluate.split import labelled_split
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


def cmd_split_dataset(args: argparse.Namespace) -> None:
    """Table S4: a corpus's training part (without the kNN test documents) and its test part."""
    from .data.heldout import held_out_parts
    from .io import write_parquet

    train, test = held_out_parts(read_parquet(args.corpus), args.test_fraction, args.seed)
    write_parquet(train, args.out_train)
    write_parquet(test, args.out_test)
    LOG.info("training part %d documents, held-out test part %d", len(train), len(test))


def cmd_grid_table(args: argparse.Namespace) -> None:
    """Tables S3 / S7: last-layer scores, rows (dataset, model), one column per variant."""
    from .report.grid_tables import GridCell, grid_table
    from .report.tables import write_table

    table = grid_table([GridCell(*cell) for cell in args.cell])
    write_table(table, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def cmd_seeds_table(args: argparse.Namespace) -> None:
    """A table over training seeds: mean, sd and n per cell, and a seed-paired difference."""
    from .report.seeds import SeedCell, seed_display, seed_table, seed_values
    from .report.tables import write_table

    values = seed_values([SeedCell(*cell) for cell in args.cell], args.metric)
    table = seed_table(values, tuple(args.difference) if args.difference else None)
    write_table(table, args.out_csv, args.out_md, args.title, shown=seed_display(table))
    print(seed_display(table).to_string())


def cmd_figure_sweeps(args: argparse.Namespace) -> None:
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


def cmd_tsne(args: argparse.Namespace) -> None:
    """t-SNE map of the last layer's embeddings: coordinates (parquet) and a PNG coloured by label."""
    from .evaluate.knn import knn_accuracy
    from .evaluate.split import labelled_split
    from .evaluate.tsne import last_layer, tsne_map
    from .io import write_parquet
    from .report.figures import tsne_figure

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    embeddings, layer = last_layer(layers, layer_ids)
    learning_rate = args.learning_rate if args.learning_rate == "auto" else float(args.learning_rate)
    xy = tsne_map(embeddings, args.perplexity, learning_rate, args.n_iter, args.seed, args.threads or 1)
    doc_ids = read_parquet(args.corpus)["doc_id"].to_numpy(dtype=str)
    coords = pd.DataFrame({"doc_id": doc_ids, "x": xy[:, 0], "y": xy[:, 1], "label": labels})
    write_parquet(coords, args.out)
    train, test = labelled_split(labels, args.test_fraction, args.split_seed)
    in_2d = 100 * knn_accuracy(xy, labels, train, test, k=args.k)
    in_dims = _last_layer_accuracy(args.scores, args.metric)
    title = f"{args.name or args.embeddings}, layer {layer}: {args.k}-NN accuracy "
    title += f"{in_dims} ({args.metric}, {embeddings.shape[1]}-d), " if in_dims else ""
    title += f"{in_2d:.1f}% in 2-D t-SNE"
    tsne_figure(coords, args.png, title)
    LOG.info("%s", title)


def cmd_figure_tsne(args: argparse.Namespace) -> None:
    """Figure 2: t-SNE maps side by side with one shared legend."""
    from .report.figures import tsne_panels_figure

    panels = {}
    for name, coords, scores in args.panel:
        accuracy = _last_layer_accuracy(scores, args.metric)
        panels[f"{name} (kNN {accuracy})" if accuracy else name] = read_parquet(coords)
    tsne_panels_figure(panels, args.out, args.title)


def cmd_figure_layers(args: argparse.Namespace) -> None:
    """Figure 4b-c: per-layer scores, one line per model."""
    from .report.figures import layers_figure, mteb_layer_scores

    scores = {name: pd.read_csv(path) for name, path in args.model}
    if args.metric == "mteb":
        scores = {name: mteb_layer_scores(table) for name, table in scores.items()}
    layers_figure(scores, args.out, args.metric, args.title, args.ylabel)


def cmd_figure_loss(args: argparse.Namespace) -> None:
    """Training loss and learning rate of one run against the batch number."""
    from pathlib import Path

    from .report.figures import loss_figure

    loss_figure(pd.read_csv(Path(args.run_dir) / "train_log.csv"), args.out, args.title)


def cmd_figure_curves(args: argparse.Namespace) -> None:
    """Figures 1 and 3: held-out kNN accuracy over batches, one line per run."""
    from .report.figures import curves_figure, read_curves

    curves = read_curves([tuple(entry) for entry in args.curve])
    curves_figure(curves, args.out, args.title)


def cmd_mteb(args: argparse.Namespace) -> None:
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


def cmd_mteb_table(args: argparse.Namespace) -> None:
    """Table 1 / S1: MTEB main scores per model, block means and block average."""
    from .report.mteb_table import mteb_table, write_mteb_table

    blocks = json.loads(args.blocks)
    table = mteb_table([tuple(row) for row in args.row], blocks, args.splits)
    write_mteb_table(table, blocks, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def cmd_vs_paper(args: argparse.Namespace) -> None:
    """A table beside the paper's numbers: ours, paper and difference per cell."""
    from .report.paper import write_comparison

    cells = write_comparison(args.ours, args.paper, args.out_csv, args.out_md, args.title)
    print(cells.round(1).to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    """The ``embaug`` argument parser, one subcommand per workflow stage."""
    parser = argparse.ArgumentParser(prog="embaug", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)

    def stage(name: str, handler: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=handler.__doc__)
        sub.set_defaults(handler=handler)
        return sub

    def table_outputs(sub: argparse.ArgumentParser, title: str) -> None:
        """A table stage's title and its two files: CSV (data) and Markdown (for reading)."""
        sub.add_argument("--title", default=title)
        sub.add_argument("--out-csv", required=True, help="the table")
        sub.add_argument("--out-md", required=True)

    sub = stage("download", cmd_download)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--spec", required=True, help="the dataset's config entry as JSON")
    sub.add_argument("--cache-dir", default="data/cache")
    sub.add_argument("--out", required=True)

    sub = stage("chunk", cmd_chunk)
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--dataset", default="")
    sub.add_argument("--sentences", type=int, default=2)
    sub.add_argument("--min-chars", type=int, default=100)
    sub.add_argument("--max-chars", type=int, default=250)
    sub.add_argument("--out", required=True)

    sub = stage("check-dataset", cmd_check_dataset)
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--k", type=int, default=10, help="evaluation.knn.k")
    sub.add_argument("--test-fraction", type=float, default=0.1, help="evaluation.test_fraction")
    sub.add_argument("--seed", type=int, default=42, help="evaluation.seed")
    sub.add_argument("--out", required=True, help="the counts checked (JSON)")

    sub = stage("init-model", cmd_init_model)
    sub.add_argument("--corpus", required=True, nargs="+", help="raw corpora to fit the tokenizer")
    sub.add_argument("--architecture", required=True, help="BertConfig fields and vocab_size, JSON")
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--out", required=True)

    sub = stage("download-model", cmd_download_model)
    sub.add_argument("--repo", required=True, help="hub model id, e.g. microsoft/mpnet-base")
    sub.add_argument("--revision", required=True, help="the repository's commit")
    sub.add_argument("--cache-dir", required=True, help="huggingface_hub cache folder (cache_dir/hub)")
    sub.add_argument("--name", default="", help="the model's config name, for error messages")

    sub = stage("finetune", cmd_finetune)
    sub.add_argument("--model", required=True, help="hub id or local directory")
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--chunks", required=True)
    sub.add_argument("--settings", required=True, help="TrainSettings fields as JSON")
    sub.add_argument("--run", default="")
    sub.add_argument("--eval-corpus", action="append", metavar="NAME=PATH", help="also score on this corpus")
    sub.add_argument(
        "--eval-mteb", action="append", metavar="TASK[=PATH]", help="also score this MTEB task (local file)"
    )
    sub.add_argument("--threads", type=int)
    sub.add_argument(
        "--checkpoint-dir", help="keep the training state here, and resume from it (default: no checkpoints)"
    )
    sub.add_argument(
        "--checkpoint-every", type=int, default=1000, metavar="N", help="batches between checkpoints"
    )
    sub.add_argument("--out", required=True)

    sub = stage("embed", cmd_embed)
    sub.add_argument("--model", required=True, help="hub id or local directory")
    sub.add_argument("--name", default="")
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--max-length", type=int, default=512)
    sub.add_argument("--pooling", default="mean")
    sub.add_argument("--layers", type=int, nargs="+", help="layer indices (default: all)")
    sub.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    sub.add_argument("--device", default="auto")
    sub.add_argument("--threads", type=int)
    sub.add_argument("--out", required=True)

    for name, handler in (("knn", cmd_knn), ("linear", cmd_linear)):
        sub = stage(name, handler)
        sub.add_argument("--embeddings", required=True)
        sub.add_argument("--corpus", required=True)
        sub.add_argument("--test-fraction", type=float, default=0.1)
        sub.add_argument("--seed", type=int, default=42)
        sub.add_argument("--out", required=True)
        if name == "knn":
            sub.add_argument("--k", type=int, default=10)
            sub.add_argument("--metrics", nargs="+", default=["euclidean", "cosine"])
            sub.add_argument(
                "--preprocessing",
                nargs="+",
                default=["raw"],
                choices=["raw", "centred", "whitened"],
                help="fitted on the training split only; metric column e.g. whitened_cosine",
            )
        else:
            sub.add_argument("--max-iter", type=int, default=1000)

    sub = stage("table", cmd_table)
    sub.add_argument("--cell", nargs=3, action="append", required=True, metavar=("ROW", "COLUMN", "SCORES"))
    sub.add_argument("--metric", default="euclidean")
    table_outputs(sub, "kNN accuracy (%)")

    sub = stage("grid-table", cmd_grid_table)
    sub.add_argument(
        "--cell",
        nargs=5,
        action="append",
        required=True,
        metavar=("DATASET", "MODEL", "COLUMN", "METRIC", "SCORES"),
    )
    table_outputs(sub, "kNN accuracy (%)")

    sub = stage("tfidf", cmd_tfidf)
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--settings", default="{}", help="TfidfVectorizer arguments as JSON")
    sub.add_argument("--svd-components", type=int, default=100)
    sub.add_argument("--svd-seed", type=int, default=42)
    sub.add_argument("--k", type=int, default=10)
    sub.add_argument("--metrics", nargs="+", default=["euclidean", "cosine"])
    sub.add_argument("--test-fraction", type=float, default=0.1)
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--out-tfidf", required=True)
    sub.add_argument("--out-svd", required=True)

    sub = stage("split-dataset", cmd_split_dataset)
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--test-fraction", type=float, default=0.1, help="the kNN evaluation's test fraction")
    sub.add_argument("--seed", type=int, default=42, help="the kNN evaluation's split seed")
    sub.add_argument("--out-train", required=True)
    sub.add_argument("--out-test", required=True)

    sub = stage("seeds-table", cmd_seeds_table)
    sub.add_argument(
        "--cell", nargs=4, action="append", required=True, metavar=("ROW", "COLUMN", "SEED", "SCORES")
    )
    sub.add_argument(
        "--difference", nargs=2, metavar=("A", "B"), help="seed-paired A - B with a 95%% interval"
    )
    sub.add_argument("--metric", default="euclidean")
    table_outputs(sub, "kNN accuracy (%) over seeds")

    sub = stage("figure-sweeps", cmd_figure_sweeps)
    sub.add_argument(
        "--point", nargs=4, action="append", required=True, metavar=("SETTING", "VALUE", "COLUMN", "SCORES")
    )
    sub.add_argument("--reference", nargs=3, action="append", metavar=("LABEL", "COLUMN", "SCORES"))
    sub.add_argument("--metric", default="euclidean")
    sub.add_argument("--out", required=True, help="the figure (PNG; its data CSV is written beside it)")
    table_outputs(sub, "")

    sub = stage("tsne", cmd_tsne)
    sub.add_argument("--embeddings", required=True)
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--scores", help="per-layer kNN scores, for the title")
    sub.add_argument("--name", default="", help="model name for the title")
    sub.add_argument("--perplexity", type=float, default=30.0)
    sub.add_argument("--learning-rate", default="auto", help="a number, or auto (n / 12)")
    sub.add_argument("--n-iter", type=int, default=500)
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--k", type=int, default=10)
    sub.add_argument("--metric", default="euclidean")
    sub.add_argument("--test-fraction", type=float, default=0.1)
    sub.add_argument("--split-seed", type=int, default=42, help="seed of the kNN split in the title")
    sub.add_argument("--threads", type=int)
    sub.add_argument("--out", required=True, help="coordinates, parquet")
    sub.add_argument("--png", required=True)

    sub = stage("figure-tsne", cmd_figure_tsne)
    sub.add_argument("--panel", nargs=3, action="append", required=True, metavar=("NAME", "COORDS", "SCORES"))
    sub.add_argument("--metric", default="euclidean")
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)

    sub = stage("figure-layers", cmd_figure_layers)
    sub.add_argument("--model", nargs=2, action="append", required=True, metavar=("NAME", "SCORES"))
    sub.add_argument(
        "--metric", default="euclidean", help="a score column's metric, or mteb for per-layer MTEB tables"
    )
    sub.add_argument("--title", default="")
    sub.add_argument("--ylabel", default="kNN accuracy (%)")
    sub.add_argument("--out", required=True)

    sub = stage("figure-loss", cmd_figure_loss)
    sub.add_argument("--run-dir", required=True)
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)

    sub = stage("figure-curves", cmd_figure_curves)
    sub.add_argument(
        "--curve", nargs=4, action="append", required=True, metavar=("PANEL", "RUN", "RUN_DIR", "COLUMN")
    )
    sub.add_argument("--title", default="")
    sub.add_argument("--out", required=True)
    sub = stage("mteb", cmd_mteb)
    sub.add_argument("--model", required=True, help="hub id or local directory")
    sub.add_argument("--name", required=True, help="the model's name in the study (mteb: embaug/NAME)")
    sub.add_argument("--task", required=True, help="MTEB task name, e.g. STS15")
    sub.add_argument("--local-path", default="", help="local task data (else the hub)")
    sub.add_argument(
        "--layer", type=int, nargs="+", help="score these layers' pooled outputs (default: the last layer)"
    )
    sub.add_argument("--splits", nargs="+", default=["test"])
    sub.add_argument("--cache-dir", default="results/mteb", help="mteb ResultCache folder")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--max-length", type=int, default=512)
    sub.add_argument("--pooling", default="mean")
    sub.add_argument("--device", default="auto")
    sub.add_argument("--threads", type=int)
    sub.add_argument("--out", nargs="+", required=True, help="result JSON (one per --layer)")

    sub = stage("mteb-table", cmd_mteb_table)
    sub.add_argument("--row", nargs=2, action="append", required=True, metavar=("LABEL", "RESULT_DIR"))
    sub.add_argument("--blocks", required=True, help="JSON: block -> list of task names")
    sub.add_argument("--splits", nargs="+", default=["test"])
    table_outputs(sub, "MTEB main scores (%)")

    sub = stage("vs-paper", cmd_vs_paper)
    sub.add_argument("--ours", required=True, help="a table CSV of this project")
    sub.add_argument("--paper", required=True, help="the paper's table (workflow/reference/paper_*.csv)")
    table_outputs(sub, "Ours beside the paper")
    return parser


def stop_with_parent() -> None:
    """On Linux, end this process (SIGTERM) when its parent dies, e.g. a killed snakemake.

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
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if os.getppid() != parent:  # the parent died before the request was made
        sys.exit(128 + signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run one stage; input errors print one clear line and exit with status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if argv is None:  # the `embaug` command, not a call from Python
        stop_with_parent()
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
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
