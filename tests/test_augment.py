"""Pair makers (crops, dropout, document), the registry, and token masking."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from embaug import augment
from embaug.augment import (
    PAIR_MAKERS,
    TrainingDocument,
    crop_pair,
    document_pair,
    dropout_pair,
    get_pair_maker,
    make_pairs,
    mask_tokens,
    pair_maker,
)
from embaug.errors import EmbaugError


class RecordingChunks(list):
    """A chunk list that records which positions were read."""

    def __init__(self, items):
        super().__init__(items)
        self.reads: list[int] = []

    def __getitem__(self, index):
        self.reads.append(int(index))
        return super().__getitem__(index)


def make_docs(n_docs: int = 30) -> list[TrainingDocument]:
    docs = []
    for d in range(n_docs):
        chunks = [f"doc{d} chunk{c}" for c in range(2 + d % 5)]  # 2..6 chunks, first doc has exactly 2
        docs.append(TrainingDocument(f"doc{d} full text", chunks))
    return docs


def test_registry_holds_the_builtin_makers():
    assert {"crops", "dropout", "document"} <= set(PAIR_MAKERS)
    assert get_pair_maker("crops") is crop_pair
    assert get_pair_maker("dropout") is dropout_pair
    assert get_pair_maker("document") is document_pair


def test_crops_are_two_different_chunks_of_the_same_document():
    rng = np.random.default_rng(0)
    docs = make_docs()
    for _ in range(50):
        for doc in docs:
            anchor, positive = crop_pair(doc, rng)
            assert anchor != positive
            assert anchor in doc.chunks and positive in doc.chunks


def test_crops_of_a_two_chunk_document_are_both_chunks():
    rng = np.random.default_rng(1)
    doc = TrainingDocument("t", ["first", "second"])
    pairs = Counter(crop_pair(doc, rng) for _ in range(400))
    assert set(pairs) == {("first", "second"), ("second", "first")}
    assert 150 < pairs[("first", "second")] < 250  # both orders, about equally often


def test_crops_draw_different_positions_even_for_identical_texts():
    rng = np.random.default_rng(2)
    chunks = RecordingChunks(["same text"] * 3)
    doc = TrainingDocument("same text. same text. same text.", chunks)
    for _ in range(200):
        chunks.reads.clear()
        assert crop_pair(doc, rng) == ("same text", "same text")
        first, second = chunks.reads
        assert first != second


def test_crops_are_uniform_over_ordered_pairs():
    rng = np.random.default_rng(3)
    chunks = RecordingChunks(["a", "b", "c", "d"])
    doc = TrainingDocument("abcd", chunks)
    draws = 6000
    for _ in range(draws):
        crop_pair(doc, rng)
    pairs = Counter(zip(chunks.reads[::2], chunks.reads[1::2]))
    assert len(pairs) == 12  # every ordered pair of distinct positions, never (i, i)
    assert all(i != j for i, j in pairs)
    expected = draws / 12
    assert all(abs(count - expected) < 0.2 * expected for count in pairs.values())


def test_dropout_gives_one_chunk_twice():
    rng = np.random.default_rng(4)
    doc = TrainingDocument("full", ["x", "y", "z"])
    seen = Counter()
    for _ in range(300):
        anchor, positive = dropout_pair(doc, rng)
        assert anchor == positive
        seen[anchor] += 1
    assert set(seen) == {"x", "y", "z"}
    assert min(seen.values()) > 60  # uniform over chunks


def test_document_gives_the_full_text_twice():
    doc = TrainingDocument("the whole document. with two sentences.", ["c1", "c2"])
    assert document_pair(doc, np.random.default_rng(5)) == (doc.text, doc.text)


def test_make_pairs_one_per_document_shuffled_and_deterministic():
    docs = make_docs(40)
    pairs = make_pairs(docs, document_pair, np.random.default_rng(42))
    assert len(pairs) == len(docs)
    assert sorted(a for a, _ in pairs) == sorted(d.text for d in docs)  # each document exactly once
    assert [a for a, _ in pairs] != [d.text for d in docs]  # shuffled

    first = make_pairs(docs, crop_pair, np.random.default_rng(7))
    again = make_pairs(docs, crop_pair, np.random.default_rng(7))
    other = make_pairs(docs, crop_pair, np.random.default_rng(8))
    assert first == again
    assert first != other
    owners = sorted(a.split()[0] for a, _ in first)
    assert owners == sorted(f"doc{d}" for d in range(40))
    for anchor, positive in first:  # anchor and positive from the same document
        assert anchor.split()[0] == positive.split()[0] and anchor != positive


def test_unknown_pair_maker_names_the_config_key():
    with pytest.raises(EmbaugError) as info:
        get_pair_maker("nope", "myaug")
    message = str(info.value)
    assert "augmentations.myaug.pairs" in message
    assert "'nope'" in message
    assert "crops" in message and "dropout" in message and "document" in message  # known names


def test_registering_a_pair_maker():
    assert "first_last" not in PAIR_MAKERS
    try:

        @pair_maker("first_last")
        def first_last(doc, rng):
            return doc.chunks[0], doc.chunks[-1]

        assert get_pair_maker("first_last", "custom") is first_last
        assert augment.PAIR_MAKERS["first_last"] is first_last
        doc = TrainingDocument("t", ["a", "b", "c"])
        assert make_pairs([doc], get_pair_maker("first_last"), np.random.default_rng(0)) == [("a", "c")]
    finally:
        PAIR_MAKERS.pop("first_last", None)
    with pytest.raises(EmbaugError):
        get_pair_maker("first_last", "custom")


MASK_ID = 4


def _batch(rows: int = 400, cols: int = 256, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(10, 1000, (rows, cols), generator=gen)
    lengths = torch.randint(5, cols + 1, (rows,), generator=gen)
    positions = torch.arange(cols).expand(rows, cols)
    special = (
        (positions == 0) | (positions == (lengths - 1).unsqueeze(1)) | (positions >= lengths.unsqueeze(1))
    )
    input_ids = input_ids.masked_fill(positions >= lengths.unsqueeze(1), 0)  # padding id 0
    return input_ids, special.long()


def test_mask_tokens_respects_special_positions_and_fraction():
    input_ids, special = _batch()
    masked = mask_tokens(input_ids, special, 0.4, MASK_ID, torch.Generator().manual_seed(1))
    assert masked.shape == input_ids.shape and masked.dtype == input_ids.dtype
    changed = masked != input_ids
    assert not changed[special.bool()].any()  # special and padding positions never masked
    assert torch.equal(masked[special.bool()], input_ids[special.bool()])
    assert (masked[changed] == MASK_ID).all()  # changed tokens become the mask token
    ordinary = ~special.bool()
    expected = [round(int(n) * 0.4) for n in ordinary.sum(dim=1)]
    assert changed.sum(dim=1).tolist() == expected  # exactly round(L * f) per row
    assert torch.equal(input_ids, _batch()[0])  # the input is not modified in place


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.8, 1.0])
def test_mask_tokens_masks_exactly_round_l_times_f(fraction):
    """The authors' MaskedAbstractDataset: round(L * f) of the L non-special tokens, L after truncation."""
    input_ids, special = _batch(seed=3)
    masked = mask_tokens(input_ids, special, fraction, MASK_ID, torch.Generator().manual_seed(2))
    lengths = (~special.bool()).sum(dim=1).tolist()
    assert (masked != input_ids).sum(dim=1).tolist() == [round(n * fraction) for n in lengths]
    assert not (masked != input_ids)[special.bool()].any()


def test_mask_counts_round_half_to_even():
    """L = 5, f = 0.1: 0.5 rounds to 0; L = 15: 1.5 rounds to 2 (Python's round, as the authors)."""
    input_ids = torch.arange(10, 27).expand(2, 17).clone()
    positions = torch.arange(17).expand(2, 17)
    special = (positions == 0) | (positions > torch.tensor([[5], [15]]))
    masked = mask_tokens(input_ids, special.long(), 0.1, MASK_ID, torch.Generator().manual_seed(0))
    assert (masked == MASK_ID).sum(dim=1).tolist() == [0, 2]


def test_mask_tokens_zero_fraction_is_identity():
    input_ids, special = _batch(rows=10, cols=20)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert mask_tokens(input_ids, special, 0.0, MASK_ID, generator) is input_ids
    assert torch.equal(generator.get_state(), state)  # no random numbers drawn


def test_mask_tokens_is_deterministic_per_generator_seed():
    input_ids, special = _batch(rows=50, cols=64)
    a = mask_tokens(input_ids, special, 0.4, MASK_ID, torch.Generator().manual_seed(9))
    b = mask_tokens(input_ids, special, 0.4, MASK_ID, torch.Generator().manual_seed(9))
    c = mask_tokens(input_ids, special, 0.4, MASK_ID, torch.Generator().manual_seed(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mask_tokens_with_a_real_tokenizer(tiny_model):
    _, tokenizer = tiny_model
    features = tokenizer(
        ["a short one", "match team goal coach season player league score final"],
        padding=True,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    masked = mask_tokens(
        features["input_ids"],
        features["special_tokens_mask"],
        1.0,
        tokenizer.mask_token_id,
        torch.Generator(),
    )
    special_ids = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    for row_in, row_out in zip(features["input_ids"].tolist(), masked.tolist()):
        for token_in, token_out in zip(row_in, row_out):
            expected = token_in if token_in in special_ids else tokenizer.mask_token_id
            assert token_out == expected
