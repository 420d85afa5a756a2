"""Masked-language-model data: token windows of a corpus, transformers' masking, held-out scores.

The masking is transformers' own :class:`~transformers.DataCollatorForLanguageModeling` (15% of
the tokens, of which 80% become ``[MASK]``, 10% a random token and 10% stay; with
``whole_word_mask`` every piece of a chosen word), seeded so that a run is reproducible and its
generator state can be checkpointed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from .encode import autocast
from .errors import EmbaugError

Window = dict[str, np.ndarray]
"""One training sequence: ``input_ids``, ``special_tokens_mask`` (and ``offset_mapping`` for
whole-word masking), each an array of the window's tokens."""


class TokenWindows(Sequence[Window]):
    """Windows kept flat: blocks of one array per field holding many windows' tokens, and where
    each window starts in its block; ``windows[i]`` is a :data:`Window` of views. A dict and two
    small arrays per window would cost a few hundred bytes of Python objects each, gigabytes at
    millions of windows."""

    def __init__(self, blocks: Sequence[tuple[dict[str, np.ndarray], np.ndarray]]) -> None:
        """``blocks``: ``(fields, starts)`` pairs; ``starts`` has one entry per window of the block
        and one past its last token."""
        self.blocks = list(blocks)
        self.first = np.cumsum([0, *(len(starts) - 1 for _, starts in self.blocks)])

    def __len__(self) -> int:
        return int(self.first[-1])

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - int -> Window, slice -> list[Window]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = range(len(self))[index]  # negative indices; IndexError past the end
        block = int(np.searchsorted(self.first, position, side="right")) - 1
        fields, starts = self.blocks[block]
        within = position - self.first[block]
        begin, end = starts[within], starts[within + 1]
        return {key: values[begin:end] for key, values in fields.items()}

    @property
    def tokens(self) -> int:
        """Tokens in all windows, special tokens included."""
        return sum(int(starts[-1]) for _, starts in self.blocks)


BLOCK_TOKENS = 1 << 24
"""Tokens per block of :class:`TokenWindows` (about 80 MiB of ids and masks): the most a block
is held twice while its batches are joined."""


class WindowCutter:
    """Cuts texts, batch after batch as they are read, into windows of at most ``max_length``
    tokens (special tokens included), kept flat in :class:`TokenWindows`.

    A text longer than one window continues in the next (the tokenizer's overflow), so no text is
    lost to truncation; windows are in text order. A window with nothing to mask (special tokens
    only) is left out. Each batch's arrays are joined into a block once ``block_tokens`` tokens
    have come, so the windows are never all held twice (a join at the end would: 1.1 GiB more at
    733k documents). Token ids are ``uint16`` where the vocabulary fits (BERT's does), else ``int32``.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        whole_word_mask: bool = False,
        block_tokens: int = BLOCK_TOKENS,
    ) -> None:
        self.tokenizer, self.max_length, self.whole_word_mask = tokenizer, max_length, whole_word_mask
        self.block_tokens = block_tokens
        ids = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.int32
        self.fields = {"input_ids": (ids, ()), "special_tokens_mask": (np.int8, ())}
        if whole_word_mask:
            self.fields["offset_mapping"] = (np.int32, (2,))  # (start, end) character offsets per token
        self.blocks: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        self.pending: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        self.pending_tokens = 0

    def add(self, texts: Sequence[str]) -> None:
        """Cut ``texts`` (one batch, tokenized at once) into windows after those added before."""
        if not texts:
            return
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            return_special_tokens_mask=True,
            return_offsets_mapping=self.whole_word_mask,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        special = encoded["special_tokens_mask"]
        kept = [row for row, mask in enumerate(special) if len(mask) > sum(mask)]  # something to mask
        arrays = {}
        for key, (dtype, shape) in self.fields.items():  # one array per field and batch
            rows = [np.asarray(encoded[key][row], dtype=dtype).reshape(-1, *shape) for row in kept]
            arrays[key] = np.concatenate([np.zeros((0, *shape), dtype), *rows])
        sizes = np.array([len(special[row]) for row in kept], dtype=np.int64)
        self.pending.append((arrays, sizes))
        self.pending_tokens += int(sizes.sum())
        if self.pending_tokens >= self.block_tokens:
            self._join_pending()

    def _join_pending(self) -> None:
        if self.pending_tokens:
            fields = {key: np.concatenate([arrays[key] for arrays, _ in self.pending]) for key in self.fields}
            sizes = np.concatenate([sizes for _, sizes in self.pending])
            self.blocks.append((fields, np.concatenate([[0], np.cumsum(sizes)])))
        self.pending, self.pending_tokens = [], 0

    def windows(self) -> TokenWindows:
        """Every window cut so far."""
        self._join_pending()
        return TokenWindows(self.blocks)


def token_windows(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    whole_word_mask: bool = False,
    batch_size: int = 1000,
) -> TokenWindows:
    """Every text cut into windows (:class:`WindowCutter`), ``batch_size`` texts tokenized at once."""
    cutter = WindowCutter(tokenizer, max_length, whole_word_mask)
    for first in range(0, len(texts), batch_size):
        cutter.add(texts[first : first + batch_size])
    return cutter.windows()


def masking_collator(
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    whole_word_mask: bool = False,
) -> DataCollatorForLanguageModeling:
    """transformers' MLM collator (dynamic padding, masking) drawing from its own seeded generator.

    With ``whole_word_mask`` every piece of a chosen word becomes ``[MASK]`` (transformers'
    whole-word masking has no random or kept tokens). The generator (``collator.generator``) is
    created here, so its state can be saved and put back before the first batch of a resumed run.
    """
    if whole_word_mask:  # transformers replaces every piece of a chosen word by [MASK] (and says so)
        mask_replace_prob, random_replace_prob = 1.0, 0.0
    if tokenizer.mask_token_id is None:
        raise EmbaugError(f"pretraining: the tokenizer of {tokenizer.name_or_path} has no mask token")
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=mlm_probability,
        mask_replace_prob=mask_replace_prob,
        random_replace_prob=random_replace_prob,
        whole_word_mask=whole_word_mask,
        seed=seed,
    )
    # Not collator.create_rng: it refuses to run outside the process named MainProcess (a spawned
    # worker, as in the benchmark). The pid marks the generator as this process's own, so the
    # collator keeps it instead of making a new one.
    collator.generator = collator.get_generator(seed, "pt")
    collator._generator_pid = os.getpid()
    return collator


def collate(collator: DataCollatorForLanguageModeling, windows: Sequence[Window]) -> dict[str, torch.Tensor]:
    """One masked, padded batch (``input_ids``, ``attention_mask``, ``labels``) of ``windows``.

    The character offsets of whole-word masking are padded here: the collator's padding
    (``tokenizer.pad``) pads every other field but not them, and fails on windows of different
    lengths. A padding position is a special token there, so it is never masked."""
    features = [{key: value.tolist() for key, value in window.items()} for window in windows]
    if collator.whole_word_mask and features:
        longest = max(len(feature["input_ids"]) for feature in features)
        left = collator.tokenizer.padding_side == "left"
        for feature in features:
            padding = [[0, 0]] * (longest - len(feature["offset_mapping"]))
            feature["offset_mapping"] = (
                [*padding, *feature["offset_mapping"]] if left else feature["offset_mapping"] + padding
            )
    return collator(features)


def heldout_split(n_texts: int, n_heldout: int, seed: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train, heldout)`` text indices: ``n_heldout`` texts drawn with ``seed``, both sorted.

    ``key`` names the config setting in the error of a held-out set that leaves nothing to train.
    """
    if n_heldout >= n_texts:
        raise EmbaugError(
            f"{key}: {n_heldout} held-out documents leave none of the {n_texts} documents to train on"
        )
    heldout = np.sort(np.random.default_rng(seed).choice(n_texts, size=n_heldout, replace=False))
    return np.setdiff1d(np.arange(n_texts), heldout), heldout


PREDICTION_HEADS = ("cls", "lm_head")
"""Where masked-LM models keep the head over the vocabulary: BERT's ``cls``, RoBERTa's and MPNet's
``lm_head``; each maps hidden states ``[..., hidden]`` to scores ``[..., vocabulary]``."""


def masked_predictions(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, labels)`` of the chosen tokens of ``batch`` (``labels != -100``) only.

    The model's own encoder and head, but the head runs on the ~15% chosen tokens instead of every
    position (the output layer over the vocabulary is most of a small model's compute; measured
    in benchmarks/pretrain_throughput.py). The mean cross-entropy of the result is the model's
    own ``loss``. A model with no head where :data:`PREDICTION_HEADS` looks runs whole.
    """
    chosen = batch["labels"] != -100
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    head = next((getattr(model, name) for name in PREDICTION_HEADS if hasattr(model, name)), None)
    if head is None:
        return model(**inputs).logits[chosen], batch["labels"][chosen]
    hidden = model.base_model(**inputs).last_hidden_state
    return head(hidden[chosen]), batch["labels"][chosen]


class HeldOutMlm:
    """MLM loss and accuracy on held-out windows, masked once (seeded): every call scores the same
    masked tokens, so scores at different steps compare. Mean cross-entropy and the share of
    masked tokens predicted exactly, over all masked tokens of the set."""

    def __init__(
        self,
        windows: Sequence[Window],
        collator: DataCollatorForLanguageModeling,
        batch_size: int,
        device: torch.device,
        precision: str = "float32",
    ) -> None:
        self.batches = [
            collate(collator, windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)
        ]
        self.device, self.precision = device, precision

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """``{"heldout_loss": ..., "heldout_accuracy": ...}`` of ``model`` (eval mode, no gradient)."""
        was_training = model.training
        model.eval()
        loss_sum, correct, masked = 0.0, 0, 0
        with torch.no_grad():
            for batch in self.batches:
                batch = {key: value.to(self.device) for key, value in batch.items()}
                with autocast(self.device, precision=self.precision):
                    scores, labels = masked_predictions(model, batch)
                scores = scores.float()
                loss_sum += float(torch.nn.functional.cross_entropy(scores, labels, reduction="sum"))
                correct += int((scores.argmax(dim=-1) == labels).sum())
                masked += len(labels)
        model.train(was_training)
        if not masked:
            return {"heldout_loss": float("nan"), "heldout_accuracy": float("nan")}
        return {"heldout_loss": loss_sum / masked, "heldout_accuracy": correct / masked}


def micro_batch_order(n_windows: int, batch_size: int, seed: int, done: int = 0) -> Iterator[np.ndarray]:
    """Window indices of every micro-batch from number ``done`` on, epoch after epoch, endlessly.

    Epoch ``e`` is a permutation drawn from ``(seed, e)`` alone (its last batch may be smaller),
    so the order after any number of batches needs no saved state: a resumed run skips to it.
    """
    per_epoch = -(-n_windows // batch_size)
    epoch, position = divmod(done, per_epoch)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n_windows)
        for first in range(position * batch_size, n_windows, batch_size):
            yield order[first : first + batch_size]
        epoch, position = epoch + 1, 0
