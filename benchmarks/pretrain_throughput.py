"""Masked-language-model pretraining: embaug's loop against transformers' ``Trainer``.

Both tools train the same model on the same windows for one epoch, with the same batch size,
sequence length, masking collator, optimizer and schedule, on the same cores:

* **data**: the first ``--docs`` ICLR abstracts (``../shared/data/iclr.parquet``), cut into
  windows of at most ``--max-length`` tokens by ``embaug.mlm.token_windows``, less the one
  document ``embaug.pretrain`` holds out (``heldout_docs: 1``, so its scoring costs nothing);
  the Trainer gets exactly the windows embaug trains on.
* **model**: the throughput benchmark's from-scratch BERT (``throughput.SCRATCH_ARCHITECTURE``:
  hidden 256, 4 layers, WordPiece vocabulary of 8000 fitted on the texts) as
  ``BertForMaskedLM``, loaded by ``embaug.pretrain.load_masked_lm`` for both (same head init).
* **embaug**: ``embaug.pretrain.pretrain`` itself (one optimizer step per batch). Its training
  time is the log's last ``seconds`` less the held-out scoring before and after training.
* **Trainer**: ``transformers.Trainer`` with ``DataCollatorForLanguageModeling`` (the same
  collator, ``embaug.mlm.masking_collator``), fused AdamW, weight decay 0.01, 6% linear warm-up
  then linear decay, gradient clipping at 1.0, no logging, evaluation or saving, no dataloader
  workers; its time is ``train_runtime``.

Tokens are the windows' tokens without padding (one epoch: every window once, in each tool's own
shuffled order). Each measurement runs in its own spawned process: peak memory is that process's
``ru_maxrss`` on CPU (Python, torch, tokenizer, model, data), ``torch.cuda.max_memory_allocated``
on CUDA. ``--repeats N`` alternates the tools N times; every repeat is a row.

    python benchmarks/pretrain_throughput.py --data ../shared/data/iclr.parquet \\
        --out benchmarks/results/pretrain_throughput_cpu.csv
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from embaug.mlm import TokenWindows
from throughput import (
    DEFAULT_DATA,
    build_scratch,
    environment,
    in_fresh_process,
    load_iclr,
    peak_memory_mib,
    prepare_worker,
    quiet_offline,
    synchronize,
)

SEED = 42


def training_windows(job: dict, tokenizer) -> TokenWindows:
    """The windows embaug.pretrain trains on: every text but the held-out one, cut to max_length."""
    from embaug.mlm import heldout_split, token_windows

    texts = pd.read_parquet(job["corpus"])["text"].tolist()
    train, _ = heldout_split(len(texts), 1, SEED, "heldout_docs")
    return token_windows([texts[i] for i in train], tokenizer, job["max_length"])


def measure_embaug(job: dict) -> dict:
    """One epoch of ``embaug.pretrain.pretrain`` on the corpus (in a fresh process)."""
    device = prepare_worker(job["device"], job["threads"])
    import json

    from transformers import AutoTokenizer

    from embaug.pretrain import PretrainSettings, pretrain

    windows = training_windows(job, AutoTokenizer.from_pretrained(job["model"]))
    steps = -(-len(windows) // job["batch_size"])
    settings = PretrainSettings(
        steps=steps, batch_size=job["batch_size"], max_length=job["max_length"], heldout_docs=1,
        learning_rate=5.0e-4, seed=SEED, device=str(device), precision=job["precision"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        log = pretrain(job["model"], {"corpus": job["corpus"]}, settings, Path(folder) / "model", "benchmark")
        record = json.loads((Path(folder) / "model" / "run.json").read_text())
    seconds = float(log["seconds"].iloc[-1] - record["initial_eval_seconds"] - log["eval_seconds"].iloc[-1])
    peak, kind = peak_memory_mib(device)
    return result(job, windows, steps, seconds, peak, kind)


def measure_trainer(job: dict) -> dict:
    """One epoch of ``transformers.Trainer`` on the same windows (in a fresh process)."""
    device = prepare_worker(job["device"], job["threads"])
    import torch
    from transformers import Trainer, TrainingArguments

    from embaug.mlm import masking_collator
    from embaug.pretrain import load_masked_lm

    torch.manual_seed(SEED)
    model, tokenizer = load_masked_lm(job["model"], device)
    windows = training_windows(job, tokenizer)
    dataset = [{key: value.tolist() for key, value in window.items()} for window in windows]
    steps = -(-len(windows) // job["batch_size"])
    with tempfile.TemporaryDirectory() as folder:
        arguments = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=job["batch_size"], num_train_epochs=1,
            learning_rate=5.0e-4, weight_decay=0.01, warmup_steps=int(0.06 * steps),
            lr_scheduler_type="linear", max_grad_norm=1.0, optim="adamw_torch_fused",
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none",
            dataloader_num_workers=0, seed=SEED, disable_tqdm=True, use_cpu=device.type == "cpu",
            bf16=job["precision"] == "bfloat16" and device.type == "cuda",
        )  # fmt: skip
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=masking_collator(tokenizer, SEED),
        )
        metrics = trainer.train().metrics
        synchronize(device)
    peak, kind = peak_memory_mib(device)
    return result(job, windows, steps, float(metrics["train_runtime"]), peak, kind)


def result(job: dict, windows: TokenWindows, steps: int, seconds: float, peak: float, kind: str) -> dict:
    """One CSV row."""
    tokens = sum(len(window["input_ids"]) for window in windows)
    return {
        "windows": len(windows), "steps": steps, "tokens": tokens, "seconds": seconds,
        "tokens_per_s": tokens / seconds, "windows_per_s": len(windows) / seconds,
        "peak_mem_mib": peak, "peak_mem_kind": kind,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="ICLR Parquet file (text, label, id)")
    parser.add_argument("--docs", type=int, default=1000, help="documents: the first N abstracts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/pretrain_throughput_cpu.csv")
    args = parser.parse_args(argv)
    quiet_offline()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.parquet"
        load_iclr(args.data).head(args.docs).to_parquet(corpus)
        model = str(Path(folder) / "scratch")
        in_fresh_process(build_scratch, {"corpus": str(corpus), "out": model, "threads": args.threads})
        job = {
            "corpus": str(corpus), "model": model, "batch_size": args.batch_size,
            "max_length": args.max_length, "device": args.device, "precision": args.precision,
            "threads": args.threads,
        }  # fmt: skip
        device = in_fresh_process(environment, job)["device"]
        for repeat in range(args.repeats):
            for tool, measure in (("embaug", measure_embaug), ("transformers.Trainer", measure_trainer)):
                load_before = os.getloadavg()[0]
                began = time.perf_counter()
                row = in_fresh_process(measure, job)
                rows.append({
                    "tool": tool, "repeat": repeat, "device": device, "docs": args.docs,
                    "batch_size": args.batch_size, "max_length": args.max_length, "precision": args.precision,
                    **row, "process_seconds": time.perf_counter() - began,
                    "load_before": load_before, "load_after": os.getloadavg()[0],
                })  # fmt: skip
                print(
                    f"{tool}: {row['tokens_per_s']:.0f} tokens/s, peak {row['peak_mem_mib']:.0f} MiB",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4g")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
