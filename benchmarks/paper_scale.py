"""Cost of every stage at the paper's corpus sizes: wall time and peak memory at 10k / 100k / 733k documents.

Synthetic corpora shaped like arXiv in the paper's Table S5 (the largest corpus: 732,723 documents, 180
classes, 1010 +- 432 characters per document): each document a run of random-word sentences, most of
them 100-250 characters long, its label one of 180 classes. Per size:

* ``chunk``: the chunk stage as the workflow runs it (``embaug chunk``: 2-sentence crops, a window of
  documents at a time into a Parquet writer) over the whole synthetic corpus.
* ``embed_corpus``: ``embaug embed`` as the workflow's embed job runs it, over the whole corpus, with a
  from-scratch 6 x 384 BERT (7 stored layers, float32 store) and documents cut to
  ``--embed-max-length`` tokens (short documents, so that 733k fit in minutes): its peak memory is
  what grows with the corpus.
* ``pretrain_corpus``: ``embaug pretrain`` as the workflow's pretrain job, on the whole corpus (every
  document cut into windows of at most 128 tokens, 500 held out), the same 6-layer BERT with a new
  masked-LM head, for ``--pretrain-steps`` steps of 64 windows: the windows are what grows with the
  corpus (the steps cost the same at every size).
* ``embed``: ``embaug embed`` (every layer, mean pooling, into the embedding store) of a sample of
  ``--embed-docs`` documents with a from-scratch BERT small enough for a CPU (hidden 256, 4 layers, 4
  heads, intermediate 1024, WordPiece vocabulary 8000 fitted on the sample, max length 512), projected
  to the corpus linearly in documents and to MPNet base by the ratio of linear-layer FLOPs per token.
* The reading stages run on synthetic stored embeddings of MPNet's exact shape (13 layers x 768,
  float16, ``embaug.store.EmbeddingWriter``; class centres plus noise plus a shared offset), on the
  labelled 90/10 split with seed 42:
  ``knn`` (``embaug.evaluate.knn.knn_accuracies``, k = 10, Euclidean and cosine in one pass),
  ``sklearn_knn`` (scikit-learn's ``KNeighborsClassifier(algorithm="brute")``, both metrics, on the
  same rows and cores: the reference the new search must match and beat), ``linear``
  (``linear_accuracy`` with its default settings) and ``tsne`` (``tsne_map`` with its defaults, on a
  stratified subsample capped as the stage caps it) on the last layer, and ``preprocess`` (Table S3's
  whitening fitted on the training rows, then applied once to every row of the layer).

Sizes where the full stage takes too long on 2 cores are measured on a part and projected linearly:
``--knn-layers`` layers of the 13 and at most ``--knn-queries`` test documents (cost is linear in both),
one layer of 13 for ``linear`` and ``preprocess``. The table says what was measured and by what factor
it was scaled (``factor``; 1 = measured in full).

Each stage runs in its own process; its peak memory is that process's ``ru_maxrss`` from ``os.wait4``
(the ``RUSAGE_CHILDREN`` figure of that one child), file-backed pages of the memory-mapped store
included. The parent imports neither torch nor the store.

    python benchmarks/paper_scale.py --sizes 10000                  # a couple of minutes on 2 cores
    python benchmarks/paper_scale.py --sizes 10000 100000 733000 --knn-layers 1 --knn-queries 4096
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import SCRATCH_ARCHITECTURE as SCRATCH  # the from-scratch BERT of the throughput benchmark

ROOT = Path(__file__).resolve().parents[1]
LAYERS, DIM, CLASSES = 13, 768, 180  # MPNet base's stored shape; arXiv's classes (Table S5)
MEAN_CHARS, SD_CHARS = 1010, 432  # arXiv's document length in Table S5
MPNET = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072}
STAGES = (
    "chunk",
    "embed",
    "embed_corpus",
    "pretrain_corpus",
    "knn",
    "sklearn_knn",
    "linear",
    "tsne",
    "preprocess",
)
# embed_corpus: the from-scratch 6 x 384 BERT (7 stored layers) over the whole corpus
EMBED_CORPUS_MODEL = {**SCRATCH, "num_hidden_layers": 6, "num_attention_heads": 4}  # width: --embed-hidden
BLOCK = 65536


def linear_flops_per_token(architecture: dict) -> int:
    """2 x the weights of the attention projections and the feed-forward block, over all layers."""
    hidden, inner = architecture["hidden_size"], architecture["intermediate_size"]
    return 2 * architecture["num_hidden_layers"] * (4 * hidden * hidden + 2 * hidden * inner)


# --- synthetic data (in worker processes) ---------------------------------------------------------


def synthetic_corpus(n_docs: int, text: bool = True, seed: int = 0, mean_chars: int = MEAN_CHARS):
    """``doc_id``, ``text``, ``label``: arXiv-shaped documents of random-word sentences (``mean_chars``
    characters on average, with arXiv's coefficient of variation)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = np.char.add("c", rng.integers(0, CLASSES, n_docs).astype(str))
    table = pd.DataFrame({"doc_id": np.arange(n_docs).astype(str), "label": labels})
    if not text:
        return table
    words = np.array(
        ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(2, 11))) for _ in range(5000)]
    )
    pool = []
    for length in rng.integers(60, 280, 20000):  # sentences, most of them within the 100-250 crop bounds
        sentence, size = [], 0
        while size < length:
            sentence.append(words[rng.integers(len(words))])
            size += len(sentence[-1]) + 1
        pool.append(" ".join(sentence).capitalize() + ".")
    pool = np.array(pool)
    pool_chars = np.array([len(s) + 1 for s in pool])
    shape = (MEAN_CHARS / SD_CHARS) ** 2  # a gamma distribution with Table S5's mean and sd
    targets = rng.gamma(shape, mean_chars / shape, n_docs)
    starts = rng.integers(0, len(pool), n_docs)
    texts = []
    for start, target in zip(starts, targets):
        chosen, size, i = [], 0, start
        while size < target:
            chosen.append(pool[i % len(pool)])
            size += pool_chars[i % len(pool)]
            i += 7919  # a prime stride through the pool
        texts.append(" ".join(chosen))
    return table.assign(text=texts)


def write_store(path: Path, labels, layers: int = LAYERS, seed: int = 0) -> None:
    """The last ``layers`` of 13 layers x n x 768 float16 in the project's store: class centre (growing
    with depth, so accuracy is far from 0 and 1) + unit noise + an offset shared by all documents."""
    import numpy as np

    from embaug.store import EmbeddingWriter

    codes = np.unique(labels, return_inverse=True)[1]
    n, stored = len(labels), range(LAYERS - layers, LAYERS)
    with EmbeddingWriter(path, stored, n, DIM, "float16", np.arange(n).astype(str)) as writer:
        for position, layer in enumerate(stored):
            rng = np.random.default_rng([seed, layer])
            centres = rng.normal(size=(CLASSES, DIM)).astype(np.float32) * 0.01 * (layer + 1)
            offset = rng.normal(size=DIM).astype(np.float32) * 3
            for start in range(0, n, BLOCK):
                rows = np.arange(start, min(start + BLOCK, n))
                noise = rng.standard_normal((len(rows), DIM), dtype=np.float32)
                writer.write(rows, position, (centres[codes[rows]] + noise + offset).astype(np.float16))


# --- workers: one stage each, in a fresh process ----------------------------------------------------


def _split(work: Path):
    import numpy as np
    import pandas as pd

    from embaug.data.split import labelled_split

    labels = pd.read_parquet(work / "corpus.parquet", columns=["label"])["label"].to_numpy(dtype=str)
    train, test = labelled_split(labels, 0.1, 42)
    return labels, train, test, np


def worker(stage: str, work: Path, options: dict) -> dict:
    """Run one stage; return what was measured (seconds inside the timed part, accuracy, factor)."""
    import torch

    torch.set_num_threads(options["threads"])
    if stage == "setup":
        corpus = synthetic_corpus(options["size"], text=options["text"], mean_chars=options["mean_chars"])
        from embaug.io import write_parquet

        write_parquet(corpus, work / "corpus.parquet")  # as the download stage writes a corpus
        if options["text"]:
            sample = corpus.sample(min(options["embed_docs"], len(corpus)), random_state=0)
            sample.to_parquet(work / "sample.parquet")
            if options["scratch6"]:  # built here, so that embed_corpus's (and pretrain_corpus's)
                # process is the job alone
                from embaug.models import build_scratch_model

                hidden = options["embed_hidden"]
                architecture = {**EMBED_CORPUS_MODEL, "hidden_size": hidden, "intermediate_size": 4 * hidden}
                build_scratch_model(sample["text"].tolist(), work / "scratch6", architecture, seed=0)
        write_store(work / "store", corpus["label"].to_numpy(dtype=str), options["store_layers"])
        return {}
    if stage == "chunk":
        import pyarrow.parquet as pq

        from embaug.cli import main

        argv = ["chunk", "--corpus", str(work / "corpus.parquet"), "--dataset", "synthetic"]
        argv += ["--sentences", "2", "--min-chars", "100", "--max-chars", "250"]
        argv += ["--out", str(work / "chunks.parquet")]
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        docs = pq.ParquetFile(work / "corpus.parquet").metadata.num_rows
        chunks = pq.ParquetFile(work / "chunks.parquet").metadata.num_rows
        return {"seconds": seconds, "measured": f"{docs} docs, {chunks} chunks"}
    if stage == "embed":
        import pandas as pd

        from embaug.cli import main
        from embaug.models import build_scratch_model

        sample = pd.read_parquet(work / "sample.parquet")
        build_scratch_model(sample["text"].tolist(), work / "scratch", SCRATCH, seed=0)
        argv = ["embed", "--model", str(work / "scratch"), "--corpus", str(work / "sample.parquet")]
        argv += ["--threads", str(options["threads"]), "--device", "cpu", "--out", str(work / "sample_store")]
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        mpnet = linear_flops_per_token(MPNET) / linear_flops_per_token(SCRATCH)
        factor = options["size"] / len(sample)
        return {
            "seconds": seconds,
            "factor": factor,
            "mpnet_factor": mpnet,
            "measured": f"{len(sample)} docs, scratch BERT; x{factor:.0f} docs, x{mpnet:.1f} for MPNet",
        }
    if stage == "embed_corpus":
        from embaug.cli import main

        hidden = options["embed_hidden"]
        argv = ["embed", "--model", str(work / "scratch6"), "--corpus", str(work / "corpus.parquet")]
        argv += ["--batch-size", "64", "--max-length", str(options["embed_max_length"]), "--dtype", "float32"]
        argv += ["--threads", str(options["threads"]), "--device", "cpu", "--out", str(work / "corpus_store")]
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        store_mib = sum(f.stat().st_size for f in (work / "corpus_store").rglob("*") if f.is_file()) / 2**20
        shutil.rmtree(work / "corpus_store")
        return {
            "seconds": seconds,
            "factor": 1,
            "measured": f"all {options['size']} docs of ~{options['mean_chars']} chars, 6 x {hidden} "
            f"scratch BERT, <= {options['embed_max_length']} tokens, store {store_mib:.0f} MiB",
        }
    if stage == "pretrain_corpus":
        import pandas as pd

        from embaug.cli import main

        settings = {"steps": options["pretrain_steps"], "batch_size": 64, "max_length": 128}
        settings.update(heldout_docs=500, device="cpu", seed=0)
        argv = ["pretrain", "--model", str(work / "scratch6"), "--corpus", str(work / "corpus.parquet")]
        argv += ["--settings", json.dumps(settings), "--name", "scale", "--threads", str(options["threads"])]
        argv += ["--out", str(work / "pretrained")]
        start = time.perf_counter()
        main(argv)
        seconds = time.perf_counter() - start
        record = json.loads((work / "pretrained" / "run.json").read_text())
        log = pd.read_csv(work / "pretrained" / "train_log.csv")
        shutil.rmtree(work / "pretrained")
        return {
            "seconds": seconds,
            "factor": 1,
            "measured": f"all {options['size']} docs: {record['training_windows']} windows, "
            f"{record['training_tokens']} tokens; {options['pretrain_steps']} steps of 64 in "
            f"{float(log['seconds'].iloc[-1]):.0f} s",
        }
    labels, train, test, np = _split(work)
    from embaug.store import EmbeddingStore

    store = EmbeddingStore(work / "store")
    last = store.layer(LAYERS - 1)
    if stage in ("knn", "sklearn_knn"):
        layers = min(options["knn_layers"], len(store.layers))
        queries = test[: options["knn_queries"]] if options["knn_queries"] else test
        factor = LAYERS / layers * len(test) / len(queries)
        start = time.perf_counter()
        accuracy = {}
        for layer in store.layers[-layers:]:
            accuracy = (_ours if stage == "knn" else _sklearn)(
                store.layer(layer), labels, train, queries, options
            )
        measured = f"{layers} of {LAYERS} layers x 2 metrics, {len(queries)} of {len(test)} queries"
        return {"seconds": time.perf_counter() - start, "factor": factor, "measured": measured, **accuracy}
    if stage == "linear":
        from embaug.evaluate.linear import linear_accuracy

        start = time.perf_counter()
        accuracy = linear_accuracy(last, labels, train, test)
        return {
            "seconds": time.perf_counter() - start,
            "factor": LAYERS,
            "measured": "1 of 13 layers",
            "linear": accuracy,
        }
    if stage == "tsne":
        from embaug.data.split import stratified_subsample
        from embaug.evaluate.tsne import TsneSettings, tsne_map
        from embaug.store import float32_rows

        settings = TsneSettings()
        rows = stratified_subsample(np.arange(len(labels)), labels, settings.max_docs, settings.seed)
        start = time.perf_counter()
        tsne_map(float32_rows(last, rows), settings, options["threads"])
        return {
            "seconds": time.perf_counter() - start,
            "factor": 1,
            "measured": f"last layer, {len(rows)} docs mapped",
        }
    if stage == "preprocess":
        from embaug.evaluate.knn import Chunks
        from embaug.evaluate.preprocess import TransformedRows, fit_transform

        preprocess_block = Chunks().references

        start = time.perf_counter()
        rows = TransformedRows(last, fit_transform("whitened", last, train))
        for begin in range(0, len(labels), preprocess_block):  # blocks as the kNN search reads them
            rows[np.arange(begin, min(begin + preprocess_block, len(labels)))]
        measured = "whitening of 1 of 13 layers: fit on train rows + one pass over all rows"
        return {"seconds": time.perf_counter() - start, "factor": LAYERS, "measured": measured}
    raise ValueError(stage)


def _ours(layer, labels, train, queries, options) -> dict:
    from embaug.evaluate.knn import knn_accuracies

    found = knn_accuracies(layer, labels, train, queries, 10, ("euclidean", "cosine"), options["device"])
    return {f"knn_{metric}": accuracy for metric, accuracy in found.items()}


def _sklearn(layer, labels, train, queries, options) -> dict:
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    from embaug.store import float32_rows

    reference, x = float32_rows(layer, train), float32_rows(layer, queries)
    accuracy = {}
    with threadpool_limits(options["threads"]):
        for metric in ("euclidean", "cosine"):
            classifier = KNeighborsClassifier(
                n_neighbors=10, metric=metric, algorithm="brute", n_jobs=options["threads"]
            )
            classifier.fit(reference, labels[train])
            accuracy[f"knn_{metric}"] = float(np.mean(classifier.predict(x) == labels[queries]))
    return accuracy


# --- the parent: one process per stage --------------------------------------------------------------


def run_stage(stage: str, work: Path, options: dict) -> dict:
    """Run ``stage`` in a child process; its result plus wall time and its own peak RSS."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        stage,
        "--work",
        str(work),
        "--options",
        json.dumps(options),
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    env.update(OMP_NUM_THREADS=str(options["threads"]), MKL_NUM_THREADS=str(options["threads"]))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"stage {stage} at {options['size']} documents failed (status {status})")
    result = json.loads(output.strip().splitlines()[-1])
    return {**result, "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 733_000])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device of the knn stage (cpu, cuda)")
    parser.add_argument("--embed-docs", type=int, default=256, help="documents embedded, then projected")
    parser.add_argument(
        "--knn-layers", type=int, default=LAYERS, help="layers searched (of 13), then projected"
    )
    parser.add_argument(
        "--embed-max-length", type=int, default=32, help="embed_corpus: tokens per document (short documents)"
    )
    parser.add_argument("--embed-hidden", type=int, default=384, help="embed_corpus: the model's width")
    parser.add_argument("--pretrain-steps", type=int, default=20, help="pretrain_corpus: optimizer steps")
    parser.add_argument(
        "--mean-chars", type=int, default=MEAN_CHARS, help="mean document length (default: arXiv's)"
    )
    parser.add_argument("--knn-queries", type=int, default=0, help="test documents searched (0: all)")
    parser.add_argument(
        "--store-layers",
        type=int,
        default=LAYERS,
        help="layers written (the last ones; every stage reads one at a time)",
    )
    parser.add_argument("--skip", nargs="*", default=[], metavar="SIZE:STAGE", help="e.g. 733000:tsne")
    parser.add_argument("--workdir", help="where the synthetic corpora go (default: a temporary folder)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/runs/paper_scale.csv"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.work), json.loads(args.options))))
        return

    import pandas as pd

    rows = []
    base = Path(args.workdir or tempfile.mkdtemp(prefix="paper_scale_"))
    for size in args.sizes:
        work = base / str(size)
        work.mkdir(parents=True, exist_ok=True)
        options = {
            "size": size,
            "threads": args.threads,
            "device": args.device,
            "embed_docs": args.embed_docs,
            "embed_max_length": args.embed_max_length,
            "embed_hidden": args.embed_hidden,
            "scratch6": bool({"embed_corpus", "pretrain_corpus"} & set(args.stages)),
            "pretrain_steps": args.pretrain_steps,
            "mean_chars": args.mean_chars,
            "knn_layers": args.knn_layers,
            "knn_queries": args.knn_queries,
            "store_layers": args.store_layers,
            "text": bool({"chunk", "embed", "embed_corpus", "pretrain_corpus"} & set(args.stages)),
        }
        if (work / "store").exists() and not options["text"]:  # a --workdir kept from an earlier run
            print(f"{size} documents: reusing {work / 'store'}", flush=True)
        else:
            setup = run_stage("setup", work, options)
            print(
                f"{size} documents: synthetic corpus and store written in {setup['wall_s']:.0f} s", flush=True
            )
        for stage in args.stages:
            if f"{size}:{stage}" in args.skip:
                continue
            result = run_stage(stage, work, options)
            factor = result.get("factor", 1) * result.get("mpnet_factor", 1)
            row = {"docs": size, "stage": stage, "threads": args.threads, "device": args.device, **result}
            row["projected_s"] = result["seconds"] * factor
            rows.append(row)
            print(
                f"  {stage:12s} {result['seconds']:9.1f} s measured, {row['projected_s']:10.0f} s full, "
                f"peak RSS {result['peak_rss_mib']:7.0f} MiB  ({result['measured']})",
                flush=True,
            )
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
        if not args.workdir:
            shutil.rmtree(work)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
