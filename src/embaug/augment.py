"""Positive-pair makers (the augmentations) and token masking.

An augmentation is a *pair maker* from the registry below plus an optional masking fraction,
both named in the config::

    augmentations:
      crops:         {pairs: crops}
      dropout:       {pairs: dropout}
      masking:       {pairs: document, mask_fraction: 0.4}
      crops_masking: {pairs: crops, mask_fraction: 0.4}

A new augmentation is one function decorated with :func:`pair_maker` and one config entry.
Dropout needs no code of its own beyond identical texts: the model is trained in train mode,
so anchor and positive pass through different dropout masks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import EmbaugError

if TYPE_CHECKING:  # torch is imported where masking runs: the workflow reads PAIR_MAKERS at parse time
    import torch


@dataclass(frozen=True)
class TrainingDocument:
    """A document that can give a positive pair: its full text and its chunks (two or more)."""

    text: str
    chunks: Sequence[str]


PairMaker = Callable[[TrainingDocument, np.random.Generator], tuple[str, str]]
PAIR_MAKERS: dict[str, PairMaker] = {}
#: Pair makers that read only the full text, so every document (chunks or not) can train.
WHOLE_DOCUMENT_MAKERS: set[str] = set()


def pair_maker(name: str, whole_document: bool = False) -> Callable[[PairMaker], PairMaker]:
    """Register a function ``(document, rng) -> (anchor, positive)`` under ``name``.

    ``whole_document``: the function never reads ``document.chunks``.
    """

    def register(function: PairMaker) -> PairMaker:
        PAIR_MAKERS[name] = function
        if whole_document:
            WHOLE_DOCUMENT_MAKERS.add(name)
        return function

    return register


@pair_maker("crops")
def crop_pair(doc: TrainingDocument, rng: np.random.Generator) -> tuple[str, str]:
    """Two different chunks of the document, drawn uniformly without replacement."""
    first, second = rng.choice(len(doc.chunks), size=2, replace=False)
    return doc.chunks[first], doc.chunks[second]


@pair_maker("dropout")
def dropout_pair(doc: TrainingDocument, rng: np.random.Generator) -> tuple[str, str]:
    """One chunk twice; the two forward passes' dropout masks make the pair (SimCSE)."""
    chunk = doc.chunks[rng.integers(len(doc.chunks))]
    return chunk, chunk


@pair_maker("document", whole_document=True)
def document_pair(doc: TrainingDocument, rng: np.random.Generator) -> tuple[str, str]:
    """The whole document twice (used with masking, or as dropout on full documents).

    Like the authors' masking-only dataset, every document trains, with or without chunks.
    """
    return doc.text, doc.text


def get_pair_maker(name: str, augmentation: str = "") -> PairMaker:
    """Look up a pair maker, failing with the config key and the known names."""
    try:
        return PAIR_MAKERS[name]
    except KeyError:
        raise EmbaugError(
            f"augmentation '{augmentation}': unknown pair maker '{name}' "
            f"(key augmentations.{augmentation}.pairs; known: {', '.join(sorted(PAIR_MAKERS))})"
        ) from None


def make_pairs(
    documents: Sequence[TrainingDocument], maker: PairMaker, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """One positive pair per document, in a shuffled order (one epoch's worth)."""
    order = rng.permutation(len(documents))
    return [maker(documents[i], rng) for i in order]


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    fraction: float,
    mask_token_id: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Replace exactly ``round(L * fraction)`` of each row's ``L`` non-special tokens by the mask token.

    ``special_tokens_mask`` is 1 at special and padding positions, which are never masked and do
    not count towards ``L`` (the authors' MaskedAbstractDataset: L = tokens after truncation,
    without [CLS], [SEP] and padding; ``round`` halves to even, like Python's). The masked
    positions are a uniformly random subset of the row's ordinary tokens.
    """
    import torch

    if fraction <= 0:
        return input_ids
    ordinary = ~special_tokens_mask.bool()
    draw = torch.rand(input_ids.shape, generator=generator, device="cpu").to(input_ids.device)
    # rank the ordinary positions of each row in random order; the first round(L * f) are masked
    rank = draw.masked_fill(~ordinary, 2.0).argsort(dim=1).argsort(dim=1)
    count = torch.round(ordinary.sum(dim=1, dtype=torch.float64) * fraction).long()
    return input_ids.masked_fill(rank < count.unsqueeze(1), mask_token_id)
