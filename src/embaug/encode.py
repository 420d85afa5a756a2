"""Every layer's pooled document embeddings in one forward pass per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .models import pool


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (fp16 where bf16 is missing); a no-op on CPU."""
    if device.type != "cuda" or not enabled:
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Index batches of similar length (longest first), so padding stays small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


@torch.inference_mode()
def embed_layers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    layers: Sequence[int] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Pooled hidden states ``[n_layers, n_texts, dim]`` (float32), input order kept.

    Layer 0 is the embedding layer, layer ``i`` the output of transformer block ``i``;
    ``layers`` selects a subset (default: all). Texts are tokenized once, batched by length,
    and run with hidden states of every layer returned by a single forward pass.
    """
    device = next(model.parameters()).device
    model.eval()
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    n_layers = model.config.num_hidden_layers + 1
    selected = list(range(n_layers)) if layers is None else [i % n_layers for i in layers]
    out = np.empty((len(selected), len(texts), model.config.hidden_size), dtype=np.float32)
    batches = list(length_sorted_batches(lengths, batch_size))
    for index in tqdm(batches, desc="embed", unit="batch", disable=not progress):
        features = tokenizer.pad(
            {key: [encoded[key][i] for i in index] for key in encoded}, return_tensors="pt"
        )
        features = {key: value.to(device) for key, value in features.items()}
        with autocast(device):
            hidden = model(**features, output_hidden_states=True).hidden_states
        stacked = torch.stack([hidden[i] for i in selected]).float()
        out[:, index] = pool(stacked, features["attention_mask"], pooling).cpu().numpy()
    return out
