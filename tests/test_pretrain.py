"""Masked-language-model pretraining: transformers' masking recipe, resume, and the saved base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from embaug import pretrain as pretraining
from embaug.checkpoint import CHECKPOINT_FILE
from embaug.errors import EmbaugError
from embaug.mlm import (
    WindowCutter,
    collate,
    heldout_split,
    masked_predictions,
    masking_collator,
    micro_batch_order,
    token_windows,
)
from embaug.models import load_encoder
from embaug.pretrain import PretrainSettings, pretrain

# 40 documents, 8 held out; ~60 windows of <= 48 tokens in micro-batches of 8, two per step:
# an epoch is about 4 steps, so 10 steps cross epochs; dropout and masking draw every step.
SETTINGS = dict(
    steps=10, batch_size=8, grad_accumulation=2, learning_rate=1.0e-3, max_length=48, heldout_docs=8,
    eval_every=4, device="cpu", warmup_fraction=0.2,
)  # fmt: skip
TIMINGS = ["seconds", "eval_seconds"]


class Interrupted(Exception):
    """Stands for a kill in the middle of a step."""


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory, corpus) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    corpus.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def run(tiny_model_dir, corpus_path):
    """``run(out, checkpoint_dir=None, checkpoint_every=0, **settings)``: the tiny run (SETTINGS)."""

    def run(
        out: Path, checkpoint_dir: Path | None = None, checkpoint_every: int = 0, **settings
    ) -> pd.DataFrame:
        return pretrain(
            str(tiny_model_dir), {"corpus": corpus_path}, PretrainSettings(**{**SETTINGS, **settings}), out,
            "tiny_mlm", checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        )  # fmt: skip

    return run


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, run) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "model"
    run(out)
    return out


# --- the masking recipe -------------------------------------------------------------------------


def masked_batch(tokenizer, corpus, seed: int = 0, whole_word_mask: bool = False):
    windows = token_windows(corpus["text"].tolist(), tokenizer, 64, whole_word_mask)
    original = collate(masking_collator(tokenizer, seed, mlm_probability=0.0), windows)["input_ids"]
    batch = collate(masking_collator(tokenizer, seed, whole_word_mask=whole_word_mask), windows)
    return windows, original, batch


def test_fifteen_percent_of_tokens_eighty_ten_ten(tokenizer, corpus):
    _, original, batch = masked_batch(tokenizer, corpus)
    maskable = (original != tokenizer.pad_token_id) & ~torch.isin(
        original, torch.tensor(tokenizer.all_special_ids)
    )
    chosen = batch["labels"] != -100
    assert not (chosen & ~maskable).any()  # never a special or padding token
    assert torch.equal(batch["labels"][chosen], original[chosen])  # the targets are the originals
    n = int(chosen.sum())
    assert int(maskable.sum()) > 5000
    assert abs(n / int(maskable.sum()) - 0.15) < 0.015
    inputs = batch["input_ids"][chosen]
    as_mask = (inputs == tokenizer.mask_token_id).float().mean().item()
    kept = (inputs == original[chosen]).float().mean().item()
    assert abs(as_mask - 0.8) < 0.03
    assert abs(kept - 0.1) < 0.03  # (a random token equal to the original: 1 in 500)
    assert abs(1 - as_mask - kept - 0.1) < 0.03  # random replacements
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])  # the rest untouched


def test_masking_is_seeded(tokenizer, corpus):
    first, second, other = (masked_batch(tokenizer, corpus, seed)[2] for seed in (3, 3, 4))
    assert torch.equal(first["input_ids"], second["input_ids"])
    assert not torch.equal(first["input_ids"], other["input_ids"])


def test_whole_word_masking_masks_every_piece_of_a_word(tokenizer):
    sentence = "Unbelievably overcomplicated tokenization of antidisestablishmentarianism happens."
    texts = [" ".join([sentence] * (1 + i % 3)) for i in range(200)]  # windows of different lengths
    windows = token_windows(texts, tokenizer, 64, whole_word_mask=True)
    assert len({len(window["input_ids"]) for window in windows}) > 1
    batch = collate(masking_collator(tokenizer, 0, whole_word_mask=True), windows)
    chosen = (batch["labels"] != -100).numpy()
    pieces = [tokenizer.convert_ids_to_tokens(w["input_ids"].tolist()) for w in windows]
    assert any(token.startswith("##") for token in pieces[0])  # the test needs split words
    for row, tokens in enumerate(pieces):
        assert not chosen[row, len(tokens) :].any()  # never the padding
        for position, token in enumerate(tokens):
            if token.startswith("##"):  # a continuation is masked exactly when its word start is
                assert chosen[row, position] == chosen[row, position - 1]
    assert 0.05 < chosen.sum() / sum(len(t) - 2 for t in pieces) < 0.35


def test_a_run_with_whole_word_masking(tmp_path, run):
    log = run(tmp_path / "model", steps=3, eval_every=0, whole_word_mask=True)
    assert log["step"].tolist() == [1, 2, 3] and log["loss"].notna().all()
    assert json.loads((tmp_path / "model" / "run.json").read_text())["settings"]["whole_word_mask"]


def test_windows_joined_in_blocks_are_the_windows_of_one_block(tokenizer, corpus):
    texts = corpus["text"].tolist()
    whole = token_windows(texts, tokenizer, 24, whole_word_mask=True)
    cutter = WindowCutter(tokenizer, 24, whole_word_mask=True, block_tokens=100)
    for first in range(0, len(texts), 7):
        cutter.add(texts[first : first + 7])
    blocks = cutter.windows()
    assert len(whole.blocks) == 1 and len(blocks.blocks) > 5
    assert len(blocks) == len(whole) > len(texts) and blocks.tokens == whole.tokens
    for index in (*range(len(whole)), -1):
        assert all(np.array_equal(blocks[index][key], whole[index][key]) for key in whole[index])
    assert whole[0]["input_ids"].dtype == np.uint16  # BERT's vocabulary fits
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_the_corpora_are_cut_as_read_with_the_held_out_documents_apart(tmp_path, tokenizer, corpus):
    first, second = corpus.iloc[:25], corpus.iloc[25:]
    paths = {"first": tmp_path / "first.parquet", "second": tmp_path / "second.parquet"}
    first.to_parquet(paths["first"], row_group_size=4)
    second.to_parquet(paths["second"])
    texts = corpus["text"].tolist()
    train_ids, heldout_ids = heldout_split(len(texts), 6, 0, "key")
    assert heldout_ids.min() < 25 <= heldout_ids.max()  # held-out documents in both corpora
    cut = pretraining.cut_corpora(
        paths, {"first": 25, "second": len(second)}, heldout_ids, tokenizer, 32, False
    )
    for windows, ids in ((cut.train, train_ids), (cut.heldout, heldout_ids)):
        expected = token_windows([texts[i] for i in ids], tokenizer, 32)
        assert len(windows) == len(expected)
        assert all(
            np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(windows, expected, strict=True)
        )
    assert (cut.training_documents, cut.heldout_documents) == (len(texts) - 6, 6)
    changed = second.assign(text=second["text"].str.replace("a", "b", n=1))
    changed.to_parquet(paths["second"])
    again = pretraining.cut_corpora(
        paths, {"first": 25, "second": len(second)}, heldout_ids, tokenizer, 32, False
    )
    assert again.digest != cut.digest  # a changed text is a different run: no resuming into it


def test_a_missing_text_or_column_names_the_file_and_row(tmp_path, tiny_model_dir, corpus):
    settings = PretrainSettings(**{**SETTINGS, "steps": 1})
    path = tmp_path / "corpus.parquet"
    corpus.assign(text=[*corpus["text"][:13], None, *corpus["text"][14:]]).to_parquet(path, row_group_size=5)
    with pytest.raises(EmbaugError, match=rf"^{path}: row 13: the text is missing"):
        pretrain(str(tiny_model_dir), {"corpus": path}, settings, tmp_path / "out")
    corpus.rename(columns={"text": "body"}).to_parquet(path)
    with pytest.raises(EmbaugError, match=rf"^{path}: no column text \(it has doc_id, body"):
        pretrain(str(tiny_model_dir), {"corpus": path}, settings, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_long_texts_continue_in_the_next_window(tokenizer):
    text = " ".join(["match goal team season"] * 60)
    windows = token_windows([text], tokenizer, 32)
    assert len(windows) > 3 and all(len(w["input_ids"]) <= 32 for w in windows)
    body = [i for w in windows for i, special in zip(w["input_ids"], w["special_tokens_mask"]) if not special]
    assert body == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_batch_order_resumes_anywhere():
    whole = [batch.tolist() for _, batch in zip(range(25), micro_batch_order(30, 7, seed=1))]
    assert sorted(sum(whole[:5], [])) == list(range(30))  # an epoch is a permutation
    for done in (0, 3, 5, 11):
        resumed = [batch.tolist() for _, batch in zip(range(25 - done), micro_batch_order(30, 7, 1, done))]
        assert resumed == whole[done:]


def test_a_held_out_set_leaving_nothing_to_train_names_the_key():
    with pytest.raises(EmbaugError, match=r"^models.m.pretraining.heldout_docs: 10 held-out documents"):
        heldout_split(10, 10, 0, "models.m.pretraining.heldout_docs")
    train, heldout = heldout_split(10, 3, 0, "key")
    assert len(heldout) == 3 and sorted([*train, *heldout]) == list(range(10))


# --- the pretrained base ------------------------------------------------------------------------


def test_the_pretrained_base_loads_with_both_auto_classes(uninterrupted, tiny_model_dir):
    mlm, info = AutoModelForMaskedLM.from_pretrained(uninterrupted, output_loading_info=True)
    assert not info["missing_keys"] and type(mlm).__name__ == "BertForMaskedLM"
    encoder, info = AutoModel.from_pretrained(uninterrupted, output_loading_info=True)
    assert not info["missing_keys"]  # the pooler is the base's, nothing newly initialised
    base = AutoModel.from_pretrained(tiny_model_dir)
    assert torch.equal(encoder.pooler.dense.weight, base.pooler.dense.weight)
    assert not torch.equal(
        encoder.encoder.layer[0].output.dense.weight, base.encoder.layer[0].output.dense.weight
    )
    assert torch.equal(mlm.bert.embeddings.word_embeddings.weight, encoder.embeddings.word_embeddings.weight)
    model, _ = load_encoder(str(uninterrupted))  # as the fine-tuning and embedding stages load it
    assert type(model).__name__ == "BertModel"


def test_the_log_and_held_out_scores(uninterrupted):
    log = pd.read_csv(uninterrupted / "train_log.csv")
    assert log["step"].tolist() == list(range(1, 11))
    assert log["heldout_loss"].notna().sum() == 3  # steps 4, 8 and the last
    assert log["lr"].iloc[0] == 0.0 and log["lr"].max() == pytest.approx(1.0e-3)  # warm-up of 2 steps
    record = json.loads((uninterrupted / "run.json").read_text())
    before, after = record["initial_scores"], record["final_scores"]
    assert after["heldout_loss"] < before["heldout_loss"]
    assert 0 <= after["heldout_accuracy"] <= 1
    assert record["heldout_documents"] == 8 and record["training_documents"] == 32


def test_the_same_settings_give_the_same_model(tmp_path, run, uninterrupted):
    run(tmp_path / "again")
    assert_same_run(tmp_path / "again", uninterrupted)


def assert_same_run(out: Path, expected: Path) -> None:
    """Same weights (bit for bit), head included, and the same log but for the timings."""
    trained, reference = (AutoModelForMaskedLM.from_pretrained(path).state_dict() for path in (out, expected))
    assert trained.keys() == reference.keys()
    assert all(torch.equal(trained[name], reference[name]) for name in reference)
    log, reference_log = (pd.read_csv(path / "train_log.csv") for path in (out, expected))
    pd.testing.assert_frame_equal(log.drop(columns=TIMINGS), reference_log.drop(columns=TIMINGS))


def interrupt_at(monkeypatch, micro_batch: int) -> None:
    """Make the run fail while collating micro-batch number ``micro_batch`` (counted from its start)."""
    collate_batch, calls = pretraining.collate, iter(range(1, 10**6))

    def failing(*args, **kwargs):
        if next(calls) == micro_batch:
            raise Interrupted
        return collate_batch(*args, **kwargs)

    monkeypatch.setattr(pretraining, "collate", failing)


@pytest.mark.parametrize(("every", "failures", "resumed_after"), [(3, [8], [3]), (2, [6, 5], [2, 4])])
def test_an_interrupted_run_resumes_to_the_same_model(
    monkeypatch, tmp_path, run, uninterrupted, every, failures, resumed_after
):
    out, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    for micro_batch in failures:  # two micro-batches a step: 8 is in step 4, after the checkpoint at 3
        with monkeypatch.context() as patch:
            interrupt_at(patch, micro_batch)
            with pytest.raises(Interrupted):
                run(out, checkpoints, every)
        assert (checkpoints / CHECKPOINT_FILE).exists() and not out.exists()
    run(out, checkpoints, every)
    assert_same_run(out, uninterrupted)
    assert json.loads((out / "run.json").read_text())["resumed_after_steps"] == resumed_after
    assert not checkpoints.exists()


def test_the_head_on_the_chosen_tokens_gives_the_models_own_loss(tiny_model_dir, tokenizer, corpus):
    model, _ = pretraining.load_masked_lm(str(tiny_model_dir), torch.device("cpu"))
    model.eval()
    windows = token_windows(corpus["text"].tolist()[:16], tokenizer, 64)
    batch = collate(masking_collator(tokenizer, 0), windows)
    scores, labels = masked_predictions(model, batch)
    assert scores.shape == (int((batch["labels"] != -100).sum()), len(tokenizer))
    with torch.no_grad():
        expected = model(**batch).loss
    assert torch.allclose(torch.nn.functional.cross_entropy(scores, labels), expected, atol=1e-6)


def test_the_stage_saves_the_base_and_fails_in_one_line_naming_the_key(
    tmp_path, capsys, tiny_model_dir, corpus
):
    from embaug.cli import main

    corpus_path = tmp_path / "corpus.parquet"
    corpus.to_parquet(corpus_path)
    settings = json.dumps({**SETTINGS, "steps": 2, "eval_every": 0})
    args = ["pretrain", "--model", str(tiny_model_dir), "--corpus", str(corpus_path), "--name", "tiny_mlm"]
    assert main([*args, "--settings", settings, "--threads", "1", "--out", str(tmp_path / "out")]) == 0
    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "out").config.architectures == ["BertForMaskedLM"]
    too_many = json.dumps({**SETTINGS, "heldout_docs": 40})
    assert main([*args, "--settings", too_many, "--out", str(tmp_path / "bad")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("embaug pretrain: error: models.tiny_mlm.pretraining.heldout_docs: 40 held-out")
    assert not (tmp_path / "bad").exists()
