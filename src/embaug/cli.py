"""``embaug <stage>``: the one entry point every workflow rule calls."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from .errors import EmbaugError

LOG = logging.getLogger("embaug")


def _read_corpus(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


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
        _read_corpus(args.corpus), args.sentences, args.min_chars, args.max_chars, args.dataset
    )
    write_parquet(chunks, args.out)
    LOG.info("%d chunks from %d documents", len(chunks), chunks["doc_id"].nunique())


def cmd_init_model(args: argparse.Namespace) -> None:
    """Build a randomly initialised BERT with a tokenizer fitted on the given corpora."""
    from .io import atomic_path
    from .models import build_scratch_model

    texts = [text for path in args.corpus for text in _read_corpus(path)["text"]]
    with atomic_path(args.out) as tmp:
        build_scratch_model(texts, tmp, json.loads(args.architecture), args.seed)


def cmd_finetune(args: argparse.Namespace) -> None:
    """Fine-tune one run contrastively and save the model, its log and its parameters."""
    from .models import set_threads
    from .train import TrainSettings, finetune

    set_threads(args.threads)
    settings = TrainSettings(**json.loads(args.settings))
    finetune(
        args.model,
        _read_corpus(args.corpus),
        pd.read_parquet(args.chunks),
        settings,
        args.out,
        args.run,
    )


def cmd_embed(args: argparse.Namespace) -> None:
    """Write every layer's pooled embedding of every document."""
    from .encode import embed_layers
    from .io import write_npz
    from .models import check_pooling, load_encoder, resolve_device, set_threads

    set_threads(args.threads)
    corpus = _read_corpus(args.corpus)
    model, tokenizer = load_encoder(args.model, resolve_device(args.device), args.name)
    layers = embed_layers(
        model,
        tokenizer,
        corpus["text"].tolist(),
        args.batch_size,
        args.max_length,
        check_pooling(args.pooling),
        args.layers,
    )
    n_layers = model.config.num_hidden_layers + 1
    layer_ids = np.arange(n_layers) if args.layers is None else np.array(args.layers) % n_layers
    write_npz(
        args.out,
        embeddings=layers.astype(args.dtype),
        layer=layer_ids,
        doc_id=corpus["doc_id"].to_numpy(dtype=str),
    )


def _load_embeddings(embeddings: str, corpus: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(embeddings) as stored:
        layers, layer_ids, doc_ids = stored["embeddings"], stored["layer"], stored["doc_id"]
    table = _read_corpus(corpus)
    if not np.array_equal(doc_ids, table["doc_id"].to_numpy(dtype=str)):
        raise EmbaugError(f"{embeddings}: documents differ from {corpus}; re-run the embed stage")
    return layers.astype(np.float32), layer_ids, table["label"].to_numpy(dtype=str)


def cmd_knn(args: argparse.Namespace) -> None:
    """kNN accuracy per layer, for each distance metric."""
    from functools import partial

    from .evaluate.knn import knn_accuracy
    from .evaluate.scores import score_layers
    from .io import write_csv

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    scorers = {metric: partial(knn_accuracy, k=args.k, metric=metric) for metric in args.metrics}
    scores = score_layers(layers, layer_ids, labels, scorers, args.test_fraction, args.seed)
    scores.insert(2, "k", args.k)
    write_csv(scores, args.out)


def cmd_linear(args: argparse.Namespace) -> None:
    """Logistic-regression accuracy per layer."""
    from functools import partial

    from .evaluate.linear import linear_accuracy
    from .evaluate.scores import score_layers
    from .io import write_csv

    layers, layer_ids, labels = _load_embeddings(args.embeddings, args.corpus)
    scorer = partial(linear_accuracy, max_iter=args.max_iter, seed=args.seed)
    scores = score_layers(layers, layer_ids, labels, {"logistic": scorer}, args.test_fraction, args.seed)
    write_csv(scores, args.out)


def cmd_table(args: argparse.Namespace) -> None:
    """Aggregate last-layer scores into a rows x columns table (Table 2's shape)."""
    from .report.tables import Cell, score_table, write_table

    table = score_table([Cell(*cell) for cell in args.cell], args.metric)
    write_table(table, args.out_csv, args.out_md, args.title)
    print(table.round(1).to_string())


def build_parser() -> argparse.ArgumentParser:
    """The ``embaug`` argument parser, one subcommand per workflow stage."""
    parser = argparse.ArgumentParser(prog="embaug", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)

    def stage(name: str, handler: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=handler.__doc__)
        sub.set_defaults(handler=handler)
        return sub

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

    sub = stage("init-model", cmd_init_model)
    sub.add_argument("--corpus", required=True, nargs="+", help="raw corpora to fit the tokenizer")
    sub.add_argument("--architecture", required=True, help="BertConfig fields and vocab_size, JSON")
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--out", required=True)

    sub = stage("finetune", cmd_finetune)
    sub.add_argument("--model", required=True, help="hub id or local directory")
    sub.add_argument("--corpus", required=True)
    sub.add_argument("--chunks", required=True)
    sub.add_argument("--settings", required=True, help="TrainSettings fields as JSON")
    sub.add_argument("--run", default="")
    sub.add_argument("--threads", type=int)
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
        else:
            sub.add_argument("--max-iter", type=int, default=1000)

    sub = stage("table", cmd_table)
    sub.add_argument("--cell", nargs=3, action="append", required=True, metavar=("ROW", "COLUMN", "SCORES"))
    sub.add_argument("--metric", default="euclidean")
    sub.add_argument("--title", default="kNN accuracy (%)")
    sub.add_argument("--out-csv", required=True)
    sub.add_argument("--out-md", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage; input errors print one clear line and exit with status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except EmbaugError as exc:
        print(f"embaug {args.stage}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
