"""Table S6's from-scratch models: the bare word-embedding model and the vocabulary's origin."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from embaug.data.chunking import chunk_corpus
from embaug.embedding_model import EmbeddingOnlyModel
from embaug.encode import embed_layers
from embaug.models import build_scratch_model, load_encoder
from embaug.scratch import init_scratch_model
from embaug.train import TrainSettings, finetune


@pytest.fixture(scope="module")
def embedding_only_dir(tmp_path_factory, corpus, tiny_architecture, monkeypatch_module):
    monkeypatch_module.setattr("embaug.scratch.hub_unreachable", lambda: "offline (test)")
    out = tmp_path_factory.mktemp("emb") / "model"
    note = init_scratch_model(
        corpus["text"].tolist(), out, tiny_architecture, 7, "embedding_only", "bert-base-uncased"
    )
    return out, note


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_only_the_word_embeddings_of_a_random_bert(embedding_only_dir, corpus, tiny_architecture, tmp_path):
    """The authors' EmbeddingOnlyModel(BertModel(config).embeddings.word_embeddings): one matrix."""
    out, _ = embedding_only_dir
    model, tokenizer = load_encoder(str(out))
    assert isinstance(model, EmbeddingOnlyModel) and model.config.num_hidden_layers == 0
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == {
        "word_embeddings.weight": (len(tokenizer), tiny_architecture["hidden_size"])
    }
    bert_dir = tmp_path / "bert"
    build_scratch_model(corpus["text"].tolist(), bert_dir, tiny_architecture, 7)  # same seed, same BERT
    bert, _ = load_encoder(str(bert_dir))
    assert torch.equal(model.word_embeddings.weight, bert.get_input_embeddings().weight)


def test_embedding_is_the_mean_word_vector_over_the_attention_mask(embedding_only_dir):
    out, _ = embedding_only_dir
    model, tokenizer = load_encoder(str(out))
    texts = ["a short text", "a somewhat longer text with more words in it"]
    layers = embed_layers(model, tokenizer, texts, 2, 32, "mean", None, False)
    assert layers.shape[0] == 1  # one layer: the embeddings
    weight = model.word_embeddings.weight.detach().numpy()
    for text, embedding in zip(texts, layers[0]):
        ids = tokenizer(text)["input_ids"]  # [CLS] ... [SEP], no padding
        np.testing.assert_allclose(embedding, weight[ids].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_vocabulary_origin_is_recorded(embedding_only_dir):
    out, note = embedding_only_dir
    fitted = "a WordPiece vocabulary fitted on the training datasets"
    assert note == f"{fitted} (bert-base-uncased unreachable: offline)"
    assert json.loads((out / "scratch.json").read_text()) == {"kind": "embedding_only", "vocabulary": note}


def test_trains_at_the_authors_learning_rate(embedding_only_dir, corpus, tmp_path):
    out, _ = embedding_only_dir
    settings = TrainSettings(batch_size=8, max_length=32, device="cpu", learning_rate=0.5, max_steps=2)
    log = finetune(str(out), corpus, chunk_corpus(corpus, n=2), settings, tmp_path / "run", "run")
    assert np.isfinite(log["loss"]).all() and log["lr"].max() == pytest.approx(0.5)
    before, _ = load_encoder(str(out))
    after, _ = load_encoder(str(tmp_path / "run"))
    assert isinstance(after, EmbeddingOnlyModel)
    assert not torch.equal(before.word_embeddings.weight, after.word_embeddings.weight)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown scratch model kind 'lstm'"):
        init_scratch_model(["x"], "unused", {}, kind="lstm")


def test_bert_kind_keeps_the_fitted_bert(tmp_path, corpus, tiny_architecture):
    note = init_scratch_model(corpus["text"].tolist(), tmp_path / "m", tiny_architecture, 7)
    model, _ = load_encoder(str(tmp_path / "m"))
    assert type(model).__name__ == "BertModel" and note.startswith("a WordPiece vocabulary fitted")
    assert json.loads((tmp_path / "m" / "scratch.json").read_text())["kind"] == "bert"


def test_table_caption_names_the_vocabulary(embedding_only_dir, tmp_path):
    from embaug.cli import main

    out, note = embedding_only_dir
    scores = tmp_path / "s.csv"
    scores.write_text("layer,metric,accuracy\n0,euclidean,0.5\n")
    md = tmp_path / "t.md"
    base = ["table", "--cell", "iclr", "embedding_layer + crops", str(scores), "--title", "Table S6"]
    outputs = ["--out-csv", str(tmp_path / "t.csv"), "--out-md", str(md)]
    assert main([*base, "--vocabulary", "embedding_layer", str(out), *outputs]) == 0
    assert md.read_text().startswith(f"# Table S6\n\nembedding_layer: trained from scratch with {note}.\n")
    assert main([*base, "--vocabulary", "x", str(tmp_path), *outputs]) == 1  # no scratch.json
