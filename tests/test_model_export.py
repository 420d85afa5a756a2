"""Fine-tuning a tiny model, and what it leaves behind: the model, train_log.csv and run.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from embaug.data.chunking import chunk_corpus
from embaug.encode import embed_layers
from embaug.errors import EmbaugError
from embaug.models import load_encoder, save_encoder
from embaug.train import TrainSettings, finetune, training_documents

BASE_LR = 1e-3


def settings(**overrides) -> TrainSettings:
    values = dict(
        batch_size=8, max_length=32, device="cpu", learning_rate=BASE_LR, warmup_fraction=0.4, seed=42
    )
    return TrainSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def chunks(corpus) -> pd.DataFrame:
    return chunk_corpus(corpus, n=2)


@pytest.fixture(scope="module")
def crops_run(tmp_path_factory, tiny_model_dir, corpus, chunks):
    out = tmp_path_factory.mktemp("runs") / "tiny__synthetic__crops"
    log = finetune(str(tiny_model_dir), corpus, chunks, settings(), out, "tiny__synthetic__crops")
    return out, log


def test_training_documents_need_two_chunks_and_keep_corpus_order():
    corpus = pd.DataFrame({"doc_id": ["b", "a", "c"], "text": ["B text", "A text", "C text"]})
    chunks = pd.DataFrame(
        {
            "doc_id": ["a", "c", "a", "b", "b", "a"],
            "chunk_id": [2, 0, 0, 1, 0, 1],
            "text": ["a2", "c0", "a0", "b1", "b0", "a1"],
        }
    )
    docs = training_documents(corpus, chunks)
    assert [d.text for d in docs] == ["B text", "A text"]  # c has one chunk only
    assert [list(d.chunks) for d in docs] == [["b0", "b1"], ["a0", "a1", "a2"]]


def test_whole_document_pairs_train_on_every_document():
    """Masking without crops (pairs: document) trains on every document, like the authors'."""
    corpus = pd.DataFrame({"doc_id": ["b", "a", "c"], "text": ["B text", "A text", "C text"]})
    chunks = pd.DataFrame({"doc_id": ["a", "a", "c"], "chunk_id": [0, 1, 0], "text": ["a0", "a1", "c0"]})
    docs = training_documents(corpus, chunks, whole_documents=True)
    assert [d.text for d in docs] == ["B text", "A text", "C text"]
    assert [list(d.chunks) for d in docs] == [[], ["a0", "a1"], ["c0"]]


def test_masking_run_counts_every_document(tmp_path, tiny_model_dir, corpus, chunks):
    short = pd.DataFrame({"doc_id": ["short"], "text": ["One sentence, no crop."], "label": ["music"]})
    with_short = pd.concat([corpus, short], ignore_index=True)
    masking = settings(augmentation="masking", pairs="document", mask_fraction=0.4, max_steps=1)
    finetune(str(tiny_model_dir), with_short, chunks, masking, tmp_path / "m", "m")
    run = json.loads((tmp_path / "m" / "run.json").read_text())
    assert run["training_documents"] == len(with_short) == chunks["doc_id"].nunique() + 1


def test_warmup_spans_one_epoch_with_several_epochs(tmp_path, tiny_model_dir, corpus, chunks):
    """The authors: warm-up int(0.1 * len(loader)) steps, len(loader) being ONE epoch's batches."""
    log = finetune(str(tiny_model_dir), corpus, chunks, settings(epochs=2), tmp_path / "e", "e")
    # 5 steps per epoch, 10 in all: warm-up int(0.4 * 5) = 2 steps (not int(0.4 * 10) = 4), then
    # linear decay to 0 over the remaining 8
    expected = BASE_LR * np.array([0, 1 / 2, *(np.arange(8, 0, -1) / 8)])
    np.testing.assert_allclose(log["lr"], expected, rtol=1e-9, atol=1e-15)


def test_train_log_columns_and_schedule(crops_run, corpus):
    out, log = crops_run
    written = pd.read_csv(out / "train_log.csv")
    assert list(written.columns) == ["step", "loss", "lr", "seconds"]
    pd.testing.assert_frame_equal(written, log, check_dtype=False)
    # 40 documents with >= 2 chunks, batches of 8: 5 steps
    assert written["step"].tolist() == [1, 2, 3, 4, 5]
    assert np.isfinite(written["loss"]).all() and (written["loss"] > 0).all()
    # warm-up over int(0.4 * 5) = 2 steps, then linear decay to 0 (the lr used by each step)
    expected = BASE_LR * np.array([0, 1 / 2, 1, 2 / 3, 1 / 3])
    np.testing.assert_allclose(written["lr"], expected, rtol=1e-9, atol=1e-15)
    peak = int(np.argmax(written["lr"]))
    assert (np.diff(written["lr"][: peak + 1]) > 0).all() and (np.diff(written["lr"][peak:]) < 0).all()
    assert (np.diff(written["seconds"]) >= 0).all() and written["seconds"].iloc[0] > 0


def test_max_steps_stops_early_and_fits_the_schedule(tmp_path, tiny_model_dir, corpus, chunks, crops_run):
    _, full = crops_run
    log = finetune(str(tiny_model_dir), corpus, chunks, settings(max_steps=3, epochs=2), tmp_path / "r", "r")
    assert log["step"].tolist() == [1, 2, 3]
    # warm-up over int(0.4 * 3) = 1 step, then linear decay to 0 at step 3
    np.testing.assert_allclose(log["lr"], BASE_LR * np.array([0, 1, 1 / 2]), rtol=1e-9, atol=1e-15)
    assert json.loads((tmp_path / "r" / "run.json").read_text())["steps"] == 3
    assert log["loss"].iloc[0] == pytest.approx(full["loss"].iloc[0], abs=1e-6)  # same first batch


def test_run_json(crops_run, tiny_model_dir):
    out, _ = crops_run
    run = json.loads((out / "run.json").read_text())
    assert run["settings"] == asdict(settings())
    assert run["settings"]["seed"] == 42
    assert run["run"] == "tiny__synthetic__crops"
    assert run["base_model"] == str(tiny_model_dir)
    assert run["training_documents"] == 40 and run["steps"] == 5
    assert run["device"] == "cpu"
    assert run["seconds"] > 0
    assert {
        "python",
        "torch",
        "transformers",
        "sentence-transformers",
        "tokenizers",
        "numpy",
        "embaug",
    } <= set(run["versions"])
    assert run["versions"]["torch"] == torch.__version__


def test_output_folder_is_complete_and_nothing_temporary_left(crops_run):
    out, _ = crops_run
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "train_log.csv"} <= names
    assert {"run.json", "1_Pooling", "2_Normalize"} <= names
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_reloads_with_automodel_and_sentence_transformers(crops_run, corpus):
    from sentence_transformers import SentenceTransformer

    out, _ = crops_run
    texts = ["a short one", *corpus["text"].tolist()[:6], "music album tour studio"]
    model, tokenizer = load_encoder(str(out), "cpu")
    ours = embed_layers(model, tokenizer, texts, batch_size=4, max_length=128, layers=[-1], progress=False)[0]

    auto = AutoModel.from_pretrained(out).eval()
    auto_tokenizer = AutoTokenizer.from_pretrained(out)
    plain = embed_layers(
        auto, auto_tokenizer, texts, batch_size=3, max_length=128, layers=[-1], progress=False
    )
    np.testing.assert_allclose(plain[0], ours, atol=1e-5, rtol=0)

    st = SentenceTransformer(str(out), device="cpu")
    assert st.max_seq_length == 128
    vectors = st.encode(texts, batch_size=4, convert_to_numpy=True)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    normalised = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, normalised, atol=1e-5, rtol=0)


def test_training_changed_the_weights(crops_run, tiny_model_dir):
    out, _ = crops_run
    base = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    tuned = AutoModel.from_pretrained(out).state_dict()
    changed = [k for k in base if "pooler" not in k and not torch.equal(base[k], tuned[k])]
    assert len(changed) > 10
    assert "embeddings.word_embeddings.weight" in changed


def test_training_is_deterministic(crops_run, tmp_path, tiny_model_dir, corpus, chunks):
    _, first = crops_run
    again = finetune(str(tiny_model_dir), corpus, chunks, settings(), tmp_path / "again", "again")
    assert again["loss"].tolist() == first["loss"].tolist()
    assert again["lr"].tolist() == first["lr"].tolist()
    other = finetune(str(tiny_model_dir), corpus, chunks, settings(seed=7), tmp_path / "other", "other")
    assert other["loss"].tolist() != first["loss"].tolist()


def test_masked_crops_train(tmp_path, tiny_model_dir, corpus, chunks, crops_run):
    out = tmp_path / "masked"
    log = finetune(
        str(tiny_model_dir),
        corpus,
        chunks,
        settings(augmentation="crops_masking", pairs="crops", mask_fraction=0.4),
        out,
        "masked",
    )
    assert len(log) == 5 and np.isfinite(log["loss"]).all()
    # masking changes the inputs, hence the losses (same seed, same pairs otherwise)
    assert log["loss"].tolist() != crops_run[1]["loss"].tolist()
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["mask_fraction"] == 0.4 and run["settings"]["augmentation"] == "crops_masking"
    assert (out / "model.safetensors").exists()


def test_unknown_pairs_name_fails_before_training(tmp_path, tiny_model_dir, corpus, chunks):
    with pytest.raises(EmbaugError, match=r"augmentations\.myaug\.pairs") as info:
        finetune(
            str(tiny_model_dir), corpus, chunks, settings(augmentation="myaug", pairs="nope"), tmp_path / "x"
        )
    assert "'nope'" in str(info.value)
    assert not (tmp_path / "x").exists()


def test_no_document_with_two_chunks_fails(tmp_path, tiny_model_dir, corpus, chunks):
    single = chunks[chunks["chunk_id"] == 0]
    with pytest.raises(EmbaugError, match="no document has two chunks") as info:
        finetune(str(tiny_model_dir), corpus, single, settings(), tmp_path / "x", "lonely")
    assert "run 'lonely'" in str(info.value)
    assert not (tmp_path / "x").exists()


def test_missing_model_names_the_model(tmp_path, corpus, chunks):
    with pytest.raises(EmbaugError, match="no such folder '.*no-such-model'"):
        finetune(str(tmp_path / "no-such-model"), corpus, chunks, settings(), tmp_path / "x", "r")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("pooling", ["mean", "cls", "sep"])
def test_save_encoder_sentence_transformers_pooling(tmp_path, tiny_model, pooling):
    """The exported Transformer -> Pooling -> Normalize stack pools as the name says."""
    from sentence_transformers import SentenceTransformer

    model, tokenizer = tiny_model
    save_encoder(model, tokenizer, tmp_path / "m", pooling)
    modules = [m["type"] for m in json.loads((tmp_path / "m" / "modules.json").read_text())]
    assert [t.rsplit(".", 1)[-1] for t in modules] == ["Transformer", "Pooling", "Normalize"]
    texts = ["match team goal", "a much longer text about the album and the band on tour in the studio"]
    vectors = SentenceTransformer(str(tmp_path / "m"), device="cpu").encode(texts, convert_to_numpy=True)
    with torch.inference_mode():
        for text, vector in zip(texts, vectors):
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            expected = {"mean": hidden.mean(dim=0), "cls": hidden[0], "sep": hidden[-1]}[pooling]
            expected = (expected / expected.norm()).numpy()
            np.testing.assert_allclose(vector, expected, atol=1e-5, rtol=0)


def test_save_encoder_token_pooling_is_transformers_only(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    save_encoder(model, tokenizer, tmp_path / "m", "token:3")
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()
    assert not (tmp_path / "m" / "modules.json").exists()
    reloaded, _ = load_encoder(str(tmp_path / "m"))
    for key, value in model.state_dict().items():
        if "pooler" not in key:
            assert torch.equal(reloaded.state_dict()[key], value)


def test_tiny_model_shape(tiny_model_dir: Path):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 2
    assert config["vocab_size"] <= 500
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("match team")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.mask_token_id is not None and tokenizer.model_max_length == 128


def test_scratch_model_repeats_byte_for_byte(tmp_path, tiny_model_dir, tiny_architecture, corpus):
    """The same texts, architecture and seed: the same tokenizer files and weights (in-process)."""
    from embaug.models import build_scratch_model

    for attempt in range(3):
        build_scratch_model(corpus["text"].tolist(), tmp_path / str(attempt), tiny_architecture)
        for name in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
            assert (tmp_path / str(attempt) / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    vocab = json.loads((tiny_model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert sorted(vocab, key=vocab.get) == specials + sorted(set(vocab) - set(specials))


BUILD = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import TINY_ARCHITECTURE, make_corpus
from embaug.models import build_scratch_model
out = Path(sys.argv[1])
build_scratch_model(make_corpus(n_per_topic=15)["text"].tolist(), out, TINY_ARCHITECTURE, seed=3)
for name in ("tokenizer.json", "tokenizer_config.json", "model.safetensors"):
    print(name, hashlib.sha256((out / name).read_bytes()).hexdigest())
"""


@pytest.mark.slow
def test_scratch_model_repeats_across_processes(tmp_path):
    """Five builds in fresh processes with different hash seeds (upstream's trainer gave five
    different tokenizers here): one tokenizer, one set of weights (~1.5 minutes)."""
    script = BUILD.format(tests=str(Path(__file__).parent))
    digests = set()
    for hash_seed in range(5):
        env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
        result = subprocess.run([sys.executable, "-c", script, str(tmp_path / str(hash_seed))],
                                env=env, capture_output=True, text=True, check=True)  # fmt: skip
        digests.add(result.stdout)
    assert len(digests) == 1, digests


def test_a_saved_tokenizer_does_not_keep_its_last_call(tmp_path, tiny_model_dir):
    """A fast tokenizer keeps the truncation of its last call and save_pretrained wrote it: the
    same model saved after encoding at another length gave other files."""
    model, tokenizer = load_encoder(str(tiny_model_dir), torch.device("cpu"))
    saved = {}
    for max_length in (16, 48):
        tokenizer(["a short text"] * 2, truncation=True, max_length=max_length, padding=True)
        save_encoder(model, tokenizer, tmp_path / str(max_length))
        saved[max_length] = {
            name: (tmp_path / str(max_length) / name).read_bytes()
            for name in ("tokenizer.json", "tokenizer_config.json")
        }
    assert saved[16] == saved[48]
    assert json.loads(saved[16]["tokenizer.json"])["truncation"] is None
