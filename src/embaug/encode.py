"""Every layer's pooled document embeddings in one forward pass per batch."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config_checks import check_layers, check_max_length
from .errors import EmbaugError
from .models import pool, position_limit
from .store import EmbeddingWriter

CPU_FORWARD_TOKENS = 2048
"""Padded tokens per inference pass on CPU, unless told otherwise (see :func:`forward_token_cap`)."""


PRECISIONS = ("float32", "bfloat16")
"""``precision`` settings: float32 (the authors', the default) or bfloat16 autocast on CUDA."""

_precision = "float32"


def set_precision(precision: str) -> None:
    """This process's default precision for :func:`autocast` (a stage sets it from its options)."""
    global _precision  # one setting per process: every encoding of a stage runs at it
    if precision not in PRECISIONS:
        raise EmbaugError(f"precision: unknown '{precision}' (one of {', '.join(PRECISIONS)})")
    _precision = precision


def current_precision() -> str:
    """This process's default precision (:func:`set_precision`)."""
    return _precision


def autocast_dtype(
    device: torch.device, enabled: bool = True, precision: str | None = None
) -> torch.dtype | None:
    """The autocast dtype: ``None`` (float32) on CPU or at float32 precision, else bf16 on CUDA
    (fp16 where bf16 is missing); ``precision`` defaults to the process's (:func:`set_precision`)."""
    if device.type != "cuda" or not enabled or (precision or _precision) == "float32":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True, precision: str | None = None):
    """Autocast at ``precision`` (default the process's): a no-op at float32 and on CPU."""
    dtype = autocast_dtype(device, enabled, precision)
    return nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
) -> Iterator[np.ndarray]:
    """Index batches of similar length (longest first), so padding stays small.

    A batch holds at most ``batch_size`` texts and, with ``max_tokens``, at most that many
    tokens once padded to its longest text (but always at least one text).
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < len(order):
        size = batch_size
        if max_tokens is not None:
            size = max(1, min(batch_size, max_tokens // max(1, int(lengths[order[start]]))))
        yield order[start : start + size]
        start += size


def forward_token_cap(
    device: torch.device, max_tokens: int | str | None = "auto", cpu_tokens: int = CPU_FORWARD_TOKENS
) -> int | None:
    """Most padded tokens one forward pass may hold: ``auto`` caps CPU passes, leaves GPU ones whole.

    On CPU a smaller pass runs faster per token (its activations stay in cache, and
    length-sorted small groups carry little padding), so ``auto`` gives ``cpu_tokens`` there;
    on GPU, larger passes use the device better, so none. ``None`` or a value <= 0: no cap.
    """
    if max_tokens == "auto":
        return cpu_tokens if device.type == "cpu" else None
    if max_tokens is None or int(max_tokens) <= 0:
        return None
    return int(max_tokens)


def capped_max_length(tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """``max_length`` capped at what the model accepts (``tokenizer.model_max_length``)."""
    limit = tokenizer.model_max_length
    return min(max_length, limit) if isinstance(limit, int) and limit > 0 else max_length


def input_length(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int, key: str, name: str
) -> int:
    """The tokens inputs are cut to (:func:`capped_max_length`); when that is more than the
    model's positions (a tokenizer that does not cap inputs there), fails naming ``key``."""
    length = capped_max_length(tokenizer, max_length)
    check_max_length(max_length, length, position_limit(model), key, name)
    return length


class TokenizedTexts:
    """Texts tokenized once and cut into length-sorted batches, ready to be embedded many times.

    ``lengths`` holds each text's token count; ``special_tokens_mask=True`` also keeps the
    tokenizer's special-token mask (1 at special and, once padded, padding positions).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        batch_size: int = 64,
        max_length: int = 512,
        special_tokens_mask: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.size = len(texts)
        self.encoded = tokenizer(
            list(texts),
            truncation=True,
            max_length=capped_max_length(tokenizer, max_length),
            return_special_tokens_mask=special_tokens_mask,
        )
        self.lengths = np.array([len(ids) for ids in self.encoded["input_ids"]], dtype=np.int64)
        self.batches = list(length_sorted_batches(self.lengths, batch_size))

    def padded(self, index: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """The batch ``index`` padded to its longest text, as tensors on ``device``.

        The same tensors as ``tokenizer.pad`` (and as the tokenizer called with ``padding=True``),
        filled with numpy: ``tokenizer.pad`` spends more time in Python than a GPU step takes.
        """
        pad_values = {
            "input_ids": self.tokenizer.pad_token_id,
            "token_type_ids": self.tokenizer.pad_token_type_id,
            "attention_mask": 0,
            "special_tokens_mask": 1,
        }
        if not set(self.encoded) <= set(pad_values) or pad_values["input_ids"] is None:
            features = self.tokenizer.pad(
                {key: [self.encoded[key][i] for i in index] for key in self.encoded}, return_tensors="pt"
            )
            return {key: value.to(device) for key, value in features.items()}
        lengths = self.lengths[index]
        width = int(lengths.max())
        left = self.tokenizer.padding_side == "left"
        features = {}
        for key, rows in self.encoded.items():
            array = np.full((len(index), width), pad_values[key], dtype=np.int64)
            for row, (i, length) in enumerate(zip(index, lengths)):
                start = width - length if left else 0
                array[row, start : start + length] = rows[i]
            features[key] = torch.from_numpy(array).to(device)
        return features


PooledBatch = tuple[np.ndarray, int, np.ndarray]
"""``(index, position, pooled)``: rows ``index`` of the ``position``-th selected layer, ``pooled
[len(index), dim]`` float32."""


def selected_layers(model: PreTrainedModel, layers: Sequence[int] | None = None) -> list[int]:
    """The non-negative layer indices ``layers`` names (default: all; negative count from the last)."""
    return check_layers(layers, model.config.num_hidden_layers + 1, "layers", model.name_or_path)


@torch.inference_mode()
def pooled_batches(
    model: PreTrainedModel,
    tokenized: TokenizedTexts,
    pooling: str = "mean",
    layers: Sequence[int] | None = None,
    max_tokens: int | str | None = "auto",
    progress: tqdm | None = None,
) -> Iterator[PooledBatch]:
    """Each forward pass's pooled hidden states, one :data:`PooledBatch` per selected layer.

    Layer 0 is the embedding layer, layer ``i`` the output of transformer block ``i``
    (:func:`selected_layers`). Every layer comes from a single forward pass per batch; a batch
    is split into passes of at most ``max_tokens`` padded tokens (:func:`forward_token_cap`).
    ``progress`` is advanced by the texts of each pass. Leaves the model in eval mode.
    """
    device = next(model.parameters()).device
    model.eval()
    cap = forward_token_cap(device, max_tokens)
    selected = selected_layers(model, layers)
    for batch in tokenized.batches:
        for part in length_sorted_batches(tokenized.lengths[batch], len(batch), cap):
            index = batch[part]
            features = tokenized.padded(index, device)
            with autocast(device):
                outputs = model(**features, output_hidden_states=True)
            # a model without transformer blocks (a bare embedding layer) returns no hidden states
            hidden = outputs.hidden_states or (outputs.last_hidden_state,)
            mask = features["attention_mask"]
            for position, layer in enumerate(selected):  # layer by layer: no stacked copy of every state
                yield index, position, pool(hidden[layer].float(), mask, pooling).cpu().numpy()
            if progress is not None:
                progress.update(len(index))


def embed_tokenized(
    model: PreTrainedModel,
    tokenized: TokenizedTexts,
    pooling: str = "mean",
    layers: Sequence[int] | None = None,
    progress: bool = False,
    max_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Pooled hidden states ``[n_layers, n_texts, dim]`` (float32) of pre-tokenized texts.

    The in-memory form of :func:`pooled_batches` (same layers, passes and pooling).
    """
    n_layers = len(selected_layers(model, layers))
    out = np.empty((n_layers, tokenized.size, model.config.hidden_size), dtype=np.float32)
    with tqdm(total=tokenized.size, desc="embed", unit="text", disable=not progress) as bar:
        for index, position, pooled in pooled_batches(model, tokenized, pooling, layers, max_tokens, bar):
            out[position, index] = pooled
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
    max_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Pooled hidden states ``[n_layers, n_texts, dim]`` (float32), input order kept.

    Texts are tokenized once (truncated at ``max_length``, capped at the model's limit),
    batched by length and embedded by :func:`embed_tokenized` (``max_tokens`` caps the padded
    tokens of one forward pass; ``auto``: :data:`CPU_FORWARD_TOKENS` on CPU, no cap on GPU).
    """
    tokenized = TokenizedTexts(tokenizer, texts, batch_size, max_length)
    return embed_tokenized(model, tokenized, pooling, layers, progress, max_tokens)


def embed_to_store(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[Sequence[str]],
    writer: EmbeddingWriter,
    batch_size: int = 64,
    max_length: int = 512,
    pooling: str = "mean",
    max_tokens: int | str | None = "auto",
    progress: bool = True,
) -> None:
    """Embed texts window by window straight into ``writer`` (its layers, in its row order).

    ``texts`` yields consecutive windows of the corpus (e.g. parquet record batches); each window
    is tokenized, length-sorted and embedded on its own (:func:`pooled_batches`) and its rows are
    flushed to the store's files (:meth:`EmbeddingWriter.flush`), so memory holds one window's
    tokens and one batch's states, whatever the corpus size.
    """
    offset = 0
    with tqdm(total=writer.n_docs, desc="embed", unit="text", disable=not progress) as bar:
        for window in texts:
            tokenized = TokenizedTexts(tokenizer, window, batch_size, max_length)
            for index, position, pooled in pooled_batches(
                model, tokenized, pooling, writer.layers, max_tokens, bar
            ):
                writer.write(offset + index, position, pooled)
            offset += tokenized.size
            writer.flush()  # the window's rows to disk: the store's pages do not stay resident
            del tokenized  # before the next window is tokenized: one window's tokens at a time
            # transformers' per-pass outputs leave reference cycles that Python's full collection
            # reaches only rarely; collecting once a window keeps the heap flat over a long corpus
            gc.collect()
    if offset != writer.n_docs:
        raise EmbaugError(f"{writer.path}: {offset} texts for {writer.n_docs} documents")
