"""MTEB stage: local task data in real mteb tasks, distinct cache entries, Table 1, offline errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mteb")

from embaug.errors import EmbaugError  # noqa: E402
from embaug.evaluate import mteb as em  # noqa: E402

WORDS = [
    *("model", "data", "train", "layer", "token", "crop", "dropout", "text"),
    *("vector", "score", "cluster", "query", "answer", "bank", "card", "money"),
]


def _sentence(rng: np.random.Generator, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS, size=n))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two tiny from-scratch BERTs (different seeds) with one shared tokenizer corpus."""
    from embaug.models import build_scratch_model

    rng = np.random.default_rng(0)
    texts = [_sentence(rng) for _ in range(200)]
    arch = {"vocab_size": 200, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 64}  # fmt: skip
    paths = []
    for seed in (1, 2):
        out = tmp_path_factory.mktemp(f"tiny{seed}") / "model"
        build_scratch_model(texts, out, arch, seed=seed)
        paths.append(str(out))
    return paths


@pytest.fixture(scope="module")
def sts_file(tmp_path_factory):
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(60):
        a = _sentence(rng)
        keep = rng.integers(0, 8)  # never identical: exact ties would rank by float noise
        b = " ".join(a.split()[:keep] + list(rng.choice(WORDS, size=8 - keep)))
        pairs.append((a, b, 5.0 * keep / 7, "test"))
    path = tmp_path_factory.mktemp("sts") / "sts.parquet"
    pd.DataFrame(pairs, columns=["sentence1", "sentence2", "score", "split"]).to_parquet(path)
    return path


def test_local_sts_matches_direct_spearman(tiny_models, sts_file, tmp_path):
    """mteb's main score on a local STS file = Spearman of cosine similarities on our embeddings."""
    from scipy.stats import spearmanr

    from embaug.encode import embed_layers
    from embaug.models import load_encoder

    result = em.evaluate_task("tiny", tiny_models[0], "STS15", cache_dir=tmp_path, local_path=sts_file,
                              device="cpu", batch_size=16)  # fmt: skip
    table = pd.read_parquet(sts_file)
    model, tokenizer = load_encoder(tiny_models[0])
    e1, e2 = (embed_layers(model, tokenizer, table[c].tolist(), 16, 512, "mean", [-1], False)[0]
              for c in ("sentence1", "sentence2"))  # fmt: skip
    cosine = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    expected = spearmanr(cosine, table["score"]).statistic
    assert em.main_score(result) == pytest.approx(expected, abs=1e-4)
    assert result.task_name == "STS15" and list(result.scores) == ["test"]


def test_training_score_equals_cached_evaluation(tiny_models, sts_file, tmp_path):
    """The in-training MTEB score (Figure 1) is the task's main score, and keeps the train mode."""
    from embaug.models import load_encoder

    model, tokenizer = load_encoder(tiny_models[0])
    model.train()
    score = em.TrainingScore("STS15", sts_file, tokenizer, batch_size=16)(model)
    assert model.training
    result = em.evaluate_task("tiny", tiny_models[0], "STS15", cache_dir=tmp_path, local_path=sts_file,
                              device="cpu", batch_size=16)  # fmt: skip
    assert score == pytest.approx(em.main_score(result), abs=1e-6)


def test_two_models_one_cache_keep_distinct_scores(tiny_models, sts_file, tmp_path):
    scores, metas = {}, {}
    for name, path in zip(("a", "b"), tiny_models, strict=True):
        encoder = em.make_encoder(name, path, device="cpu")
        metas[name] = encoder.mteb_model_meta
        result = em.evaluate_task(
            name, path, "STS15", cache_dir=tmp_path, local_path=sts_file, encoder=encoder
        )
        scores[name] = em.main_score(result)
    assert scores["a"] != scores["b"]
    assert metas["a"].name != metas["b"].name and metas["a"].revision != metas["b"].revision
    import mteb

    cache = mteb.ResultCache(cache_path=tmp_path)
    for name in scores:  # each cached entry holds its own model's score
        assert em.main_score(cache.load_task_result("STS15", metas[name])) == pytest.approx(scores[name])
    # Same weights under another layer: another name and revision.
    layer0 = em.make_encoder("a", tiny_models[0], layer=0, device="cpu").mteb_model_meta
    assert (layer0.name, layer0.revision) != (metas["a"].name, metas["a"].revision)
    assert layer0.name == "embaug/a__layer0"


def test_revision_changes_with_weights_and_settings(tiny_models):
    fp = [em.model_fingerprint(p) for p in tiny_models]
    assert fp[0] != fp[1] and fp[0] == em.model_fingerprint(tiny_models[0])
    base = {"layer": None, "pooling": "mean", "max_length": 512, "normalize": True}
    assert em.model_revision(fp[0], base) != em.model_revision(fp[0], {**base, "max_length": 128})


def test_local_classification_task(tiny_models, tmp_path):
    rng = np.random.default_rng(2)
    rows = [(f"{label} " + _sentence(rng, 5), label, split)
            for split, n in (("train", 40), ("test", 20)) for label in ("bank", "card", "money")
            for _ in range(n // 3)]  # fmt: skip
    path = tmp_path / "banking.csv"
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    result = em.evaluate_task("tiny", tiny_models[0], "Banking77Classification", cache_dir=tmp_path,
                              local_path=path, device="cpu")  # fmt: skip
    assert 0.0 <= em.main_score(result) <= 1.0


def test_local_file_errors(tmp_path):
    task = em.get_task("STS15")
    with pytest.raises(EmbaugError, match="does not exist"):
        em.load_local_task(task, tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"sentence1": ["a"], "score": [1.0]}).to_parquet(bad)
    with pytest.raises(EmbaugError, match="missing"):
        em.load_local_task(task, bad)
    with pytest.raises(EmbaugError, match="unknown MTEB task"):
        em.get_task("NoSuchTaskAnywhere")


def test_offline_task_error_names_task_and_config_key(tiny_models, tmp_path, monkeypatch, capsys):
    """No network and no local file: one line naming the task and mteb_tasks.<TASK>.path."""
    from mteb.abstasks.abstask import AbsTask

    from embaug.cli import main

    def offline(self, *args, **kwargs):
        raise ConnectionError("Couldn't reach 'mteb/sts16-sts' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(AbsTask, "load_data", offline)
    rc = main(["mteb", "--model", tiny_models[0], "--name", "tiny", "--task", "STS16", "--device", "cpu",
               "--cache-dir", str(tmp_path), "--out", str(tmp_path / "out.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "MTEB task 'STS16'" in err and "mteb_tasks: {STS16: {path:" in err
    assert not (tmp_path / "out.json").exists()


def test_cli_writes_result_and_table(tiny_models, sts_file, tmp_path):
    from embaug.cli import main
    from embaug.report.mteb_table import BLOCK_AVERAGE, block_column

    for name, path in zip(("a", "b"), tiny_models, strict=True):
        for task in ("STS15", "STS16"):
            out = tmp_path / name / f"{task}.json"
            cache = str(tmp_path / "cache")
            rc = main(["mteb", "--model", path, "--name", name, "--task", task, "--local-path", str(sts_file),
                       "--device", "cpu", "--cache-dir", cache, "--out", str(out)])  # fmt: skip
            assert rc == 0
    data = json.loads((tmp_path / "a" / "STS15.json").read_text())
    assert data["task_name"] == "STS15" and data["embaug"]["model"] == "a"
    blocks = {"sts": ["STS15"], "other": ["STS16"]}
    rc = main(["mteb-table", "--row", "a", str(tmp_path / "a"), "--row", "b + crops", str(tmp_path / "b"),
               "--blocks", json.dumps(blocks), "--out-csv", str(tmp_path / "t.csv"),
               "--out-md", str(tmp_path / "t.md")])  # fmt: skip
    assert rc == 0
    table = pd.read_csv(tmp_path / "t.csv").set_index("model")
    assert list(table.index) == ["a", "b + crops"]
    row = table.loc["a"]
    assert row[block_column("sts")] == pytest.approx(row["STS15"], abs=0.01)
    expected = (row[block_column("sts")] + row[block_column("other")]) / 2
    assert row[BLOCK_AVERAGE] == pytest.approx(expected, abs=0.02)
    assert row["STS15"] == pytest.approx(100 * data["embaug"]["main_score"], abs=0.01)
    markdown = (tmp_path / "t.md").read_text()
    assert "| task " in markdown and "block average" in markdown


def test_base_models_unnormalised_runs_normalised(tiny_models):
    """The authors' encodings: SentenceTransformer(hub id) of a base model has no Normalize module;
    their exported fine-tuned models do. The revision tells the two apart."""
    from embaug.models import load_encoder

    model, tokenizer = load_encoder(tiny_models[0])
    texts = ["model data train layer", "bank card money"]
    encoders = {
        normalize: em.wrap_encoder(model, tokenizer, "tiny", "fp", normalize=normalize)
        for normalize in (False, True)
    }
    raw, unit = (
        encoders[n].encode([{"text": texts}], task_metadata=None, hf_split="test", hf_subset="default")
        for n in (False, True)
    )
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    assert encoders[False].mteb_model_meta.revision != encoders[True].mteb_model_meta.revision


def test_hub_model_fingerprint_changes_with_the_resolved_revision():
    one, other = (em.model_fingerprint("org/model", revision) for revision in ("a" * 40, "b" * 40))
    assert one != other and one == em.model_fingerprint("org/model", "a" * 40)
    assert em.model_fingerprint("org/model") != one  # unresolved is its own identity


def test_layers_from_one_encoding_equal_one_layer_per_run(tiny_models, sts_file, tmp_path, monkeypatch):
    """Per-layer scores (Figure 4c) from one encoding of the task's texts equal the scores of one
    evaluation per layer, under the same cache names and revisions; texts pass through the model
    once, not once per layer."""
    import embaug.encode

    layers = [0, 1, 2]
    single = {}
    for layer in layers:
        result = em.evaluate_task("tiny", tiny_models[0], "STS15", cache_dir=tmp_path / "single", layer=layer,
                                  local_path=sts_file, device="cpu", batch_size=16)  # fmt: skip
        single[layer] = em.main_score(result)
    assert len(set(single.values())) > 1  # layers differ, so a mix-up would show

    encoded = []
    original = embaug.encode.embed_to_store

    def counting(model, tokenizer, texts, writer, *args, **kwargs):
        encoded.append(writer.n_docs)
        assert writer.path.parent.parent == tmp_path / "all"  # spilled beside the results
        return original(model, tokenizer, texts, writer, *args, **kwargs)

    monkeypatch.setattr(embaug.encode, "embed_to_store", counting)
    results, cache = em.evaluate_layers("tiny", tiny_models[0], "STS15", layers, cache_dir=tmp_path / "all",
                                        local_path=sts_file, device="cpu", batch_size=16)  # fmt: skip
    assert {k: em.main_score(r) for k, r in results.items()} == single
    table = pd.read_parquet(sts_file)
    unique_texts = len(set(table["sentence1"]) | set(table["sentence2"]))
    assert cache.n_encoded == sum(encoded) == unique_texts  # 1x, not len(layers) x
    assert not list((tmp_path / "all").glob(".layer-cache-*"))  # the spilled layers are removed
    import mteb

    stored = mteb.ResultCache(cache_path=tmp_path / "all")
    for layer in layers:  # each layer under the name and revision a single-layer run uses
        meta = em.make_encoder("tiny", tiny_models[0], layer=layer, device="cpu").mteb_model_meta
        assert em.main_score(stored.load_task_result("STS15", meta)) == pytest.approx(single[layer], abs=1e-6)


def test_cli_writes_one_result_per_layer(tiny_models, sts_file, tmp_path, capfd, bars_shown):
    """One result file per layer, and progress on stderr (a job's log): the texts' encoding and
    the layers scored."""
    from embaug.cli import main

    outs = [str(tmp_path / f"layer{k}" / "STS15.json") for k in (0, 2)]
    rc = main(["mteb", "--model", tiny_models[0], "--name", "tiny", "--task", "STS15", "--layer", "0", "2",
               "--local-path", str(sts_file), "--device", "cpu", "--cache-dir", str(tmp_path / "c"),
               "--out", *outs])  # fmt: skip
    assert rc == 0
    written = [json.loads(Path(path).read_text())["embaug"] for path in outs]
    assert [w["layer"] for w in written] == [0, 2] and written[0]["main_score"] != written[1]["main_score"]
    progress = capfd.readouterr().err
    assert "mteb STS15: 100%" in progress and "2/2 [" in progress  # both layers
    assert "embed: 100%" in progress
    rc = main(["mteb", "--model", tiny_models[0], "--name", "tiny", "--task", "STS15", "--layer", "0", "2",
               "--device", "cpu", "--out", outs[0]])  # fmt: skip
    assert rc == 1
