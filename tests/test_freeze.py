"""Figure 4a's frozen layers and Table S6's bare embedding layer, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from embaug.data.chunking import chunk_corpus
from embaug.encode import embed_layers
from embaug.errors import EmbaugError
from embaug.models import build_scratch_model, load_encoder
from embaug.train import TrainSettings, finetune

SETTINGS = dict(batch_size=8, learning_rate=1.0e-3, max_length=48, device="cpu", max_steps=3)


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, tiny_model_dir, corpus):
    """The tiny model (2 blocks) trained 3 batches with the embedding layer and block 0 frozen."""
    out = tmp_path_factory.mktemp("freeze") / "run"
    settings = TrainSettings(**SETTINGS, freeze_layers=1)
    finetune(str(tiny_model_dir), corpus, chunk_corpus(corpus, n=2), settings, out)
    return out


def test_frozen_weights_are_bit_identical_and_the_rest_changed(frozen_run, tiny_model_dir):
    before, after = weights(tiny_model_dir), weights(frozen_run)
    frozen = [name for name in before if name.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [name for name in before if name.startswith("encoder.layer.1.")]
    assert frozen and trained
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    changed = [name for name in trained if not torch.equal(before[name], after[name])]
    assert len(changed) == len(trained), set(trained) - set(changed)


def test_freezing_zero_layers_freezes_only_the_embedding_layer(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "run"
    settings = TrainSettings(**{**SETTINGS, "max_steps": 1}, freeze_layers=0)
    finetune(str(tiny_model_dir), corpus, chunk_corpus(corpus, n=2), settings, out)
    before, after = weights(tiny_model_dir), weights(out)
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith("embeddings."):
            assert same, name
        elif name.startswith("encoder.layer.0.") and name.endswith(".weight"):
            assert not same, name


@pytest.mark.parametrize("k", [2, -1])
def test_freezing_every_block_or_a_negative_count_is_refused(tmp_path, tiny_model_dir, corpus, k):
    with pytest.raises(EmbaugError, match=r"training\.freeze_layers: .* 2 transformer blocks"):
        finetune(
            str(tiny_model_dir),
            corpus,
            chunk_corpus(corpus, n=2),
            TrainSettings(**SETTINGS, freeze_layers=k),
            tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()


def test_bare_embedding_layer_trains_and_embeds(tmp_path, corpus, tiny_architecture):
    """num_hidden_layers: 0 is a token embedding layer (+ positions, LayerNorm), mean-pooled."""
    base = tmp_path / "bare"
    build_scratch_model(corpus["text"].tolist(), base, {**tiny_architecture, "num_hidden_layers": 0})
    out = tmp_path / "run"
    log = finetune(str(base), corpus, chunk_corpus(corpus, n=2), TrainSettings(**SETTINGS), out)
    assert len(log) == 3 and log["loss"].notna().all()
    model, tokenizer = load_encoder(str(out))
    texts = corpus["text"].tolist()[:5]
    layers = embed_layers(model, tokenizer, texts, max_length=48, progress=False)
    assert layers.shape == (1, 5, tiny_architecture["hidden_size"])
    with torch.no_grad():
        features = tokenizer(texts[:1], return_tensors="pt", truncation=True, max_length=48)
        expected = model.embeddings(input_ids=features["input_ids"]).mean(dim=1)
    torch.testing.assert_close(torch.from_numpy(layers[0, :1]), expected, rtol=1e-4, atol=1e-5)
