"""Masked-language-model pretraining of a base model: the paper's kind of base, made offline.

The model is transformers' own ``AutoModelForMaskedLM`` (``BertForMaskedLM`` for a BERT), the
masking transformers' collator (:mod:`embaug.mlm`); the loop is AdamW with linear warm-up and
decay, gradient accumulation and clipping, checkpointed and resumed like fine-tuning
(:mod:`embaug.checkpoint`). The saved folder loads with ``AutoModelForMaskedLM`` (head
included) and ``AutoModel`` (the encoder, its pooler kept from the base), so ``models:`` can
name it (``source: pretrained:<base>``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForMaskedLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from .allocator import HeapTrimmer
from .checkpoint import Checkpoints, capture_rng, restore_rng, run_fingerprint
from .encode import autocast, autocast_dtype, input_length
from .errors import EmbaugError, first_line
from .io import atomic_path, parquet_rows, parquet_windows, write_csv, write_json
from .mlm import (
    HeldOutMlm,
    TokenWindows,
    WindowCutter,
    collate,
    heldout_split,
    masked_predictions,
    masking_collator,
    micro_batch_order,
)
from .models import load_encoder, resolve_device, save_encoder
from .train import TrainingRecord, fused_optimizer, global_rng_kept, library_versions

LOG = logging.getLogger(__name__)


@dataclass
class PretrainSettings:
    """Every parameter of one pretraining run (``models.<name>.pretraining`` in the config).

    ``batch_size`` windows of at most ``max_length`` tokens go through the model per forward
    pass; ``grad_accumulation`` such micro-batches make one optimizer step; ``steps`` counts
    optimizer steps. Warm-up spans ``warmup_fraction`` of them, then the learning rate decays
    linearly to 0. ``heldout_docs`` documents (drawn with ``seed``) are never trained on and
    score the model every ``eval_every`` steps (0: before and after training only).
    """

    steps: int = 1000
    batch_size: int = 64
    grad_accumulation: int = 1
    learning_rate: float = 5.0e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    max_grad_norm: float = 1.0
    max_length: int = 128
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False
    heldout_docs: int = 500
    eval_every: int = 0
    seed: int = 42
    device: str = "auto"
    precision: str = "float32"


def load_masked_lm(
    source: str, device: torch.device, name: str = ""
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(masked-LM model, tokenizer)`` of ``source`` (a local folder or hub id), in float32.

    The encoder and tokenizer load as every stage loads them (:func:`~embaug.models.load_encoder`:
    its errors); the masked-LM head is the checkpoint's where it has one, else newly initialised
    (from torch's seeded generator). The base's pooler is kept in the masked-LM model, so that the
    saved folder loads with ``AutoModel`` without newly initialised weights.
    """
    encoder, tokenizer = load_encoder(source, "cpu", name)
    try:
        model = AutoModelForMaskedLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise EmbaugError(
            f"models.{name or source}: {type(encoder).__name__} has no masked-LM head for pretraining "
            f"({first_line(exc)})"
        ) from exc
    body = model.base_model
    if getattr(body, "pooler", "absent") is None and getattr(encoder, "pooler", None) is not None:
        body.pooler = encoder.pooler
    return model.to(device), tokenizer


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices, none on biases and LayerNorm weights."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]


def save_pretrained_base(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """Save the encoder as every base model is saved (``AutoModel`` and sentence-transformers
    files), then the masked-LM model over its config and weights (``AutoModelForMaskedLM``)."""
    save_encoder(model.base_model, tokenizer, out_dir)
    model.save_pretrained(out_dir)


READ_ROWS = 1000
"""Documents read from a corpus and tokenized together while the corpora are cut into windows."""


@dataclass
class CorpusWindows:
    """The corpora as training and held-out windows, with what the run records of them."""

    train: TokenWindows
    heldout: TokenWindows
    documents: dict[str, int]
    """Documents of each corpus."""
    training_documents: int
    heldout_documents: int
    digest: str
    """A hash of every text, in order, with the corpora's names (for resuming only the same run)."""


def cut_corpora(
    corpora: Mapping[str, Path],
    documents: Mapping[str, int],
    heldout_ids: np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    whole_word_mask: bool,
) -> CorpusWindows:
    """The ``text`` of ``corpora`` (Parquet files of ``documents`` rows) cut into windows,
    ``READ_ROWS`` documents at a time, the documents numbered ``heldout_ids`` (counted over the
    corpora in order) into the held-out windows: only the windows are kept, never the texts."""
    total = sum(documents.values())
    held_out = np.zeros(total, dtype=bool)
    held_out[heldout_ids] = True
    train, heldout = (WindowCutter(tokenizer, max_length, whole_word_mask) for _ in range(2))
    digest = hashlib.sha256()
    position = 0
    with tqdm(total=total, desc="cutting the corpora into windows", unit="doc") as progress:
        for name, path in corpora.items():
            digest.update(f"{name}\0{documents[name]}\0".encode())
            row = 0  # of this corpus
            for batch in parquet_windows(path, READ_ROWS, ["text"]):
                texts = batch.column("text").to_pylist()
                if None in texts:
                    raise EmbaugError(f"{path}: row {row + texts.index(None)}: the text is missing (null)")
                row += len(texts)
                for text in texts:
                    encoded = text.encode()
                    digest.update(len(encoded).to_bytes(8, "little") + encoded)
                marks = held_out[position : position + len(texts)]
                train.add([text for text, mark in zip(texts, marks, strict=True) if not mark])
                heldout.add([text for text, mark in zip(texts, marks, strict=True) if mark])
                position += len(texts)
                progress.update(len(texts))
    return CorpusWindows(
        train.windows(), heldout.windows(), dict(documents), total - len(heldout_ids), len(heldout_ids),
        digest.hexdigest(),
    )  # fmt: skip


def pretrain(
    model_source: str,
    corpora: Mapping[str, str | Path],
    settings: PretrainSettings,
    out_dir: str | Path,
    name: str = "",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> pd.DataFrame:
    """Pretrain ``model_source`` by masked language modelling on the ``text`` of ``corpora``
    (name -> Parquet file), read in batches: the run holds their windows, not their texts.

    Saves the model (atomically) with ``train_log.csv`` (``step, loss, lr, seconds`` per
    optimizer step; ``heldout_loss, heldout_accuracy`` at the scored steps) and ``run.json``;
    returns the log. With ``checkpoint_dir`` the training state is saved there every
    ``checkpoint_every`` steps and a run of the same settings and inputs resumes from it, ending
    with the same model and log (bar the timings) as an uninterrupted run.
    """
    key = f"models.{name}.pretraining" if name else "pretraining"
    corpora = {corpus: Path(path) for corpus, path in corpora.items()}
    documents = {corpus: parquet_rows(path, ["text"]) for corpus, path in corpora.items()}
    _, heldout_ids = heldout_split(
        sum(documents.values()), settings.heldout_docs, settings.seed, f"{key}.heldout_docs"
    )
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)  # a new masked-LM head's initial weights, then dropout
    model, tokenizer = load_masked_lm(model_source, device, name)
    length = input_length(
        model.base_model, tokenizer, settings.max_length, f"{key}.max_length", name or model_source
    )
    text = cut_corpora(corpora, documents, heldout_ids, tokenizer, length, settings.whole_word_mask)
    windows, heldout_windows = text.train, text.heldout
    if not windows:
        raise EmbaugError(f"{key}.corpora: no text gives a token to mask")
    LOG.info(
        "%s: %d training windows (%d tokens) from %d documents, %d held-out windows",
        name or model_source,
        len(windows),
        windows.tokens,
        text.training_documents,
        len(heldout_windows),
    )
    masking = {
        "mlm_probability": settings.mlm_probability,
        "mask_replace_prob": settings.mask_replace_prob,
        "random_replace_prob": settings.random_replace_prob,
        "whole_word_mask": settings.whole_word_mask,
    }
    collator = masking_collator(tokenizer, settings.seed, **masking)
    heldout = HeldOutMlm(
        heldout_windows,
        masking_collator(tokenizer, settings.seed + 1, **masking),
        settings.batch_size,
        device,
        settings.precision,
    )
    fingerprint = ""
    if checkpoint_dir:
        described = {"pretrain": name, "base_model": model_source, "settings": asdict(settings)}
        fingerprint = run_fingerprint({**described, "corpora": text.digest}, model, {})
    checkpoints = Checkpoints(checkpoint_dir, checkpoint_every, fingerprint)
    optimizer = fused_optimizer(
        torch.optim.AdamW, decay_groups(model, settings.weight_decay), lr=settings.learning_rate
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(settings.warmup_fraction * settings.steps), settings.steps
    )
    scaler = torch.amp.GradScaler(
        device.type, enabled=autocast_dtype(device, precision=settings.precision) == torch.float16
    )
    trainable = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}

    def evaluate() -> tuple[dict[str, float], float]:
        began = time.perf_counter()
        with global_rng_kept(device):
            scores = heldout(model) if heldout_windows else {}
        return scores, time.perf_counter() - began

    resumed = checkpoints.load()
    if resumed is None:
        record = TrainingRecord(*evaluate())
        LOG.info("before pretraining: %s", record.initial_scores)
    else:
        for part_name, part in trainable.items():
            part.load_state_dict(resumed[part_name])
        record = TrainingRecord(**resumed["record"])
        record.resumed_after.append(record.step)
        restore_rng(resumed["rng"], device, {"mask": collator.generator})
        LOG.info("%s: resuming after step %d of %d (%s)", name, record.step, settings.steps, checkpoints.path)
    done = record.step
    order = micro_batch_order(
        len(windows), settings.batch_size, settings.seed, done * settings.grad_accumulation
    )
    model.train()
    start = time.perf_counter() - record.seconds
    progress = tqdm(total=settings.steps, initial=done, desc=f"pretrain {name}", unit="step")
    heap = HeapTrimmer()
    for step in range(done + 1, settings.steps + 1):
        lr = scheduler.get_last_lr()[0]
        step_loss = 0.0
        for _ in range(settings.grad_accumulation):
            batch = {k: v.to(device) for k, v in collate(collator, [windows[i] for i in next(order)]).items()}
            with autocast(device, precision=settings.precision):
                scores, labels = masked_predictions(model, batch)
            loss = torch.nn.functional.cross_entropy(scores.float(), labels) / settings.grad_accumulation
            scaler.scale(loss).backward()
            step_loss += loss.item()
            heap.tick()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step == settings.steps or (settings.eval_every and step % settings.eval_every == 0):
            scores, seconds = evaluate()
            record.scored.append({"step": step, **scores, "eval_seconds": seconds})
        record.log.append((step, step_loss, lr, time.perf_counter() - start))
        progress.update()
        progress.set_postfix(loss=f"{step_loss:.3f}")
        if checkpoints.due(step, settings.steps):
            checkpoints.save(
                {
                    **{part_name: part.state_dict() for part_name, part in trainable.items()},
                    "record": asdict(record),
                    "rng": capture_rng(device, {"mask": collator.generator}),
                }
            )
    progress.close()
    log = pd.DataFrame(record.log, columns=["step", "loss", "lr", "seconds"])
    scored = pd.DataFrame(record.scored, columns=["step", "heldout_loss", "heldout_accuracy", "eval_seconds"])
    log = log.merge(scored, on="step", how="left")
    final = record.scored[-1] if record.scored else {}
    LOG.info("after %d steps: %s", settings.steps, {k: v for k, v in final.items() if k != "step"})
    with atomic_path(out_dir) as tmp:
        save_pretrained_base(model.cpu(), tokenizer, tmp)
        write_csv(log, tmp / "train_log.csv")
        write_json(
            {
                "name": name,
                "base_model": model_source,
                "settings": asdict(settings),
                "corpora": text.documents,
                "training_documents": text.training_documents,
                "training_windows": len(windows),
                "training_tokens": windows.tokens,
                "heldout_documents": text.heldout_documents,
                "device": str(device),
                "seconds": float(log["seconds"].iloc[-1]) if len(log) else 0.0,
                "initial_scores": record.initial_scores,
                "initial_eval_seconds": record.initial_eval_seconds,
                "final_scores": {k: v for k, v in final.items() if k.startswith("heldout_")},
                "resumed_after_steps": record.resumed_after,
                "versions": library_versions(),
            },
            tmp / "run.json",
        )
    checkpoints.remove()
    return log
