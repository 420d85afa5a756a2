"""The training forward pass: pre-tokenized pairs and length-sorted micro-batches change the cost only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embaug.augment import get_pair_maker, make_pairs
from embaug.data.chunking import chunk_corpus
from embaug.encode import capped_max_length
from embaug.train import PairEncoder, TrainSettings, finetune, info_nce_loss, training_documents


@pytest.fixture(scope="module")
def chunks(corpus):
    return chunk_corpus(corpus, n=2)


@pytest.fixture(scope="module")
def pairs(corpus, chunks):
    """Crop pairs plus a few whole documents, so that lengths in a batch differ a lot."""
    documents = training_documents(corpus, chunks)
    crops = make_pairs(documents, get_pair_maker("crops"), np.random.default_rng(0))
    return [*crops[:9], ("tiny", corpus["text"].iloc[0]), (corpus["text"].iloc[1], "short text")]


def encoder(model, tokenizer, forward_tokens: int, mask_fraction: float = 0.0, seed: int = 0) -> PairEncoder:
    """A pair encoder on CPU whose batch holds all 11 test pairs."""
    settings = TrainSettings(
        batch_size=11, max_length=64, mask_fraction=mask_fraction, forward_tokens=forward_tokens
    )
    return PairEncoder(model, tokenizer, settings, torch.device("cpu"), torch.Generator().manual_seed(seed))


def loss_and_gradients(model, tokenizer, pairs, forward_tokens: int) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    pair_encoder = encoder(model, tokenizer, forward_tokens)
    (batch,) = pair_encoder.batches(pairs)
    loss = info_nce_loss(*pair_encoder(batch), 0.05)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def test_pretokenized_inputs_are_the_tokenizer_padding(tiny_model, pairs):
    model, tokenizer = tiny_model
    pair_encoder = encoder(model, tokenizer, forward_tokens=-1)
    anchors, positives, index = next(pair_encoder.batches(pairs))
    for side, tokenized in enumerate((anchors, positives)):
        expected = tokenizer(
            [pair[side] for pair in pairs],
            padding=True,
            truncation=True,
            max_length=capped_max_length(tokenizer, 64),
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        got = tokenized.padded(index, torch.device("cpu"))
        assert set(got) == set(expected)
        for key in expected:
            assert torch.equal(got[key], expected[key]), key


def test_micro_batches_give_the_same_loss_and_gradients(tiny_model, pairs):
    """Eval mode (no dropout): whole sides vs passes of at most 40 padded tokens (several per side)."""
    model, tokenizer = tiny_model
    lengths = [len(tokenizer(a, truncation=True, max_length=64)["input_ids"]) for a, _ in pairs]
    assert max(lengths) * len(pairs) > 4 * 40 and min(lengths) < 10  # really split, really uneven
    whole_loss, whole = loss_and_gradients(model, tokenizer, pairs, forward_tokens=-1)
    split_loss, split = loss_and_gradients(model, tokenizer, pairs, forward_tokens=40)
    assert split_loss == pytest.approx(whole_loss, abs=1e-5)
    assert set(split) == set(whole) and len(whole) > 10
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], atol=1e-5, rtol=1e-4, msg=name)


def test_masking_draws_do_not_depend_on_micro_batches(tiny_model, pairs):
    model, tokenizer = tiny_model
    embedded = []
    for forward_tokens in (-1, 40):
        pair_encoder = encoder(model, tokenizer, forward_tokens, mask_fraction=0.4, seed=3)
        with torch.no_grad():
            embedded.append(pair_encoder(next(pair_encoder.batches(pairs))))
    unmasked = encoder(model, tokenizer, -1)
    with torch.no_grad():
        plain = unmasked(next(unmasked.batches(pairs)))
    for whole, split, clean in zip(*embedded, plain):
        torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(whole, clean, atol=1e-3)  # masking did change the inputs


def test_finetune_with_micro_batches_is_deterministic(tmp_path, tiny_model_dir, corpus, chunks):
    settings = dict(batch_size=8, max_length=32, device="cpu", learning_rate=1e-3, forward_tokens=48)
    first = finetune(str(tiny_model_dir), corpus, chunks, TrainSettings(**settings), tmp_path / "a")
    again = finetune(str(tiny_model_dir), corpus, chunks, TrainSettings(**settings), tmp_path / "b")
    assert first["loss"].tolist() == again["loss"].tolist()
    assert len(first) == 5 and np.isfinite(first["loss"]).all()
