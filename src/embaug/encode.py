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


def capped_max_length(tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """``max_length`` capped at what the model accepts (``tokenizer.model_max_length``)."""
    limit = tokenizer.model_max_length
    return min(max_length, limit) if isinstance(limit, int) and limit > 0 else max_length


class TokenizedTexts:
    """Texts tokenized once and cut into length-sorted batches, ready to be embedded many times."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        batch_size: int = 64,
        max_length: int = 512,
    ) -> None:
        self.tokenizer = tokenizer
        self.size = len(texts)
        self.encoded = tokenizer(
            list(texts), truncation=True, max_length=capped_max_length(tokenizer, max_length)
        )
        lengths = [len(ids) for ids in self.encoded["input_ids"]]
        self.batches = list(length_sorted_batches(lengths, batch_size))

    def padded(self, index: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """The batch ``index`` padded to its longest text, as tensors on ``device``."""
        features = self.tokenizer.pad(
            {key: [self.encoded[key][i] for i in index] for key in self.encoded}, return_tensors="pt"
        )
        return {key: value.to(device) for key, value in features.items()}


@torch.inference_mode()
def embed_tokenized(
    model: PreTrainedModel,
    tokenized: TokenizedTexts,
    pooling: str = "mean",
    layers: Sequence[int] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pooled hidden states ``[n_layers, n_texts, dim]`` (float32) of pre-tokenized texts.

    Layer 0 is the embedding layer, layer ``i`` the output of transformer block ``i``;
    ``layers`` selects a subset (default: all; negative indices count from the last). Every
    layer comes from a single forward pass per batch. Leaves the model in eval mode.
    """
    device = next(model.parameters()).device
    model.eval()
    n_layers = model.config.num_hidden_layers + 1
    selected = list(range(n_layers)) if layers is None else [i % n_layers for i in layers]
    out = np.empty((len(selected), tokenized.size, model.config.hidden_size), dtype=np.float32)
    for index in tqdm(tokenized.batches, desc="embed", unit="batch", disable=not progress):
        features = tokenized.padded(index, device)
        with autocast(device):
            hidden = model(**features, output_hidden_states=True).hidden_states
        stacked = torch.stack([hidden[i] for i in selected]).float()
        out[:, index] = pool(stacked, features["attention_mask"], pooling).cpu().numpy()
    return out


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

    Texts are tokenized once (truncated at ``max_length``, capped at the model's limit),
    batched by length and embedded by :func:`embed_tokenized`.
    """
    tokenized = TokenizedTexts(tokenizer, texts, batch_size, max_length)
    return embed_tokenized(model, tokenized, pooling, layers, progress)
