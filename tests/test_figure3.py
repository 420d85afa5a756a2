"""Figure 3: training subsets matched by batches, and kNN on a dataset's whole split while training."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from test_shell_safety import commands
from test_workflow import REPO_ROOT, output, snakemake

from embaug.data.batch_matched import batch_matched_subset, pair_documents
from embaug.data.chunking import chunk_corpus
from embaug.data.split import labelled_split
from embaug.encode import embed_layers
from embaug.evaluate.knn import knn_accuracy
from embaug.models import load_encoder
from embaug.train import SplitKnn, TrainSettings, finetune


@pytest.fixture(scope="module")
def chunked(corpus):
    return chunk_corpus(corpus, n=2)


def corpus_with_short_documents(corpus: pd.DataFrame) -> pd.DataFrame:
    """The corpus plus 20 one-sentence documents, which give no crop pair."""
    short = pd.DataFrame(
        {"doc_id": [f"short-{i}" for i in range(20)], "text": ["A single sentence."] * 20, "label": "x"}
    )
    return pd.concat([corpus, short], ignore_index=True)


def test_pair_documents_counts_documents_with_two_chunks(corpus, chunked):
    mixed = corpus_with_short_documents(corpus)
    gives_pair = pair_documents(mixed, chunked)
    assert gives_pair[: len(corpus)].all() and not gives_pair[len(corpus) :].any()
    assert pair_documents(mixed, chunked, whole_documents=True).all()


@pytest.mark.parametrize("n_training", [1, 7, 25])
def test_subset_has_exactly_the_matched_training_documents(corpus, chunked, n_training):
    mixed = corpus_with_short_documents(corpus)
    subset = batch_matched_subset(mixed, chunked, n_training, seed=42)
    assert pair_documents(subset, chunked).sum() == n_training
    # a random sample of the corpus, short documents included, kept in corpus order
    positions = mixed.reset_index().merge(subset, on="doc_id")["index"].tolist()
    assert positions == sorted(positions) and len(positions) == len(subset)
    assert subset.equals(batch_matched_subset(mixed, chunked, n_training, seed=42))
    assert not subset.equals(batch_matched_subset(mixed, chunked, n_training, seed=1))


def test_subset_draws_in_the_authors_order(corpus, chunked):
    """All documents give pairs: the subset is np.random.seed(42); choice(n, size, replace=False)."""
    subset = batch_matched_subset(corpus, chunked, 12, seed=42)
    np.random.seed(42)
    drawn = np.random.choice(len(corpus), size=12, replace=False)
    assert subset["doc_id"].tolist() == corpus["doc_id"].iloc[np.sort(drawn)].tolist()


def test_a_smaller_corpus_is_used_whole(corpus, chunked):
    assert batch_matched_subset(corpus, chunked, len(corpus) + 5, seed=42).equals(corpus)


def test_split_knn_is_the_knn_stage_score_of_the_last_layer(tiny_model_dir, corpus):
    """SplitKnn scores the evaluation split exactly as the kNN stage scores the model's last layer."""
    settings = TrainSettings(max_length=48, eval_k=3, eval_test_fraction=0.25, eval_split_seed=3)
    model, tokenizer = load_encoder(str(tiny_model_dir), "cpu")
    labelled = corpus.assign(label=corpus["label"].where(corpus.index % 9 != 0, "unlabeled"))
    score = SplitKnn(labelled, tokenizer, settings)(model)
    embeddings = embed_layers(model, tokenizer, labelled["text"].tolist(), max_length=48, layers=[-1])[0]
    train, test = labelled_split(labelled["label"].to_numpy(str), 0.25, 3)
    assert score == knn_accuracy(embeddings, labelled["label"].to_numpy(str), train, test, k=3)
    assert len(test) == 9  # a quarter of the 36 labelled documents, never the unlabelled ones


def test_figure3_run_scores_the_evaluation_split_only(tmp_path, tiny_model_dir, corpus, chunked):
    """eval_docs 0: no held-out kNN of the training corpus; the eval corpus every 2 batches and at 0."""
    settings = TrainSettings(
        batch_size=8, learning_rate=1e-3, max_length=48, device="cpu", eval_every=2, eval_docs=0, eval_k=3
    )
    log = finetune(str(tiny_model_dir), corpus, chunked, settings, tmp_path / "run", "r", {"iclr": corpus})
    assert "knn_accuracy" not in log and log["knn_accuracy_iclr"].notna().sum() == 3  # 5 batches
    initial = json.loads((tmp_path / "run" / "run.json").read_text())["initial_scores"]
    assert set(initial) == {"knn_accuracy_iclr"} and 0 < initial["knn_accuracy_iclr"] <= 1


def dry_run_commands(tmp_path, config: dict) -> list[str]:
    result = snakemake(tmp_path, config, "--dry-run", "--printshellcmds")
    assert result.returncode == 0, output(result)[-3000:]
    return commands(result.stdout)


def two_dataset_study(tmp_path) -> dict:
    config = yaml.safe_load((REPO_ROOT / ".test" / "config.yaml").read_text())
    source = str(REPO_ROOT / ".test" / "data" / "bbc.parquet")
    config["datasets"] = {
        "news": {"source": source, "id": "id", "subsample": {"n": 100, "seed": 1}},
        "wire": {"source": source, "id": "id", "training": {"batch_size": 4}},
    }
    config["models"]["tiny"]["tokenizer_corpus"] = ["news"]
    config["study"]["train_on"] = ["news", "wire"]
    config["figure3"] = {"enabled": True, "evaluate_on": "news", "eval_every": 3}
    return config


def test_dry_run_adds_batch_matched_runs_and_the_figure(tmp_path):
    commands = dry_run_commands(tmp_path, two_dataset_study(tmp_path))
    subsets = [c for c in commands if c.startswith("embaug batch-subset")]
    assert len(subsets) == 2 and all("--match-corpus data/test/raw/news.parquet" in c for c in subsets)
    finetunes = {re.search(r"--run (\S+)", c)[1]: c for c in commands if c.startswith("embaug finetune")}
    run = finetunes["tiny__wire.match-news__crops"]
    assert "--corpus data/test/raw/wire.match-news.parquet" in run
    assert "--eval-corpus news=data/test/raw/news.parquet" in run
    settings = json.loads(re.search(r"--settings '([^']+)'", run)[1])
    # the evaluation dataset's batch size (the same batches), the kNN stage's split and k
    assert settings["batch_size"] == 16 and settings["eval_every"] == 3 and settings["eval_docs"] == 0
    assert (settings["eval_test_fraction"], settings["eval_split_seed"], settings["eval_k"]) == (0.1, 42, 10)
    assert "tiny__news.match-news__crops" in finetunes
    # the Table 2 runs are as before: no eval corpus
    assert "--eval-corpus" not in finetunes["tiny__wire__crops"]
    figure = [c for c in commands if c.startswith("embaug figure-curves") and "figure3" in c]
    assert len(figure) == 1 and "knn_accuracy_news" in figure[0] and "'trained on wire'" in figure[0]


def test_unknown_figure3_dataset_is_named(tmp_path):
    config = two_dataset_study(tmp_path)
    config["figure3"]["train_on"] = ["news", "wiree"]
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert "figure3.train_on names 'wiree', which is not under datasets" in output(result)


def test_workflow_makes_figure3_from_batch_matched_runs(tmp_path):
    """The two-dataset study end to end: subsets, runs scored on `news` every 3 batches, the figure."""
    result = snakemake(tmp_path, two_dataset_study(tmp_path), "results/test/figures/figure3_curves.png")
    assert result.returncode == 0, output(result)[-3000:]
    news = pd.read_parquet(tmp_path / "data/test/raw/news.parquet")
    subset = pd.read_parquet(tmp_path / "data/test/raw/wire.match-news.parquet")
    wire = pd.read_parquet(tmp_path / "data/test/raw/wire.parquet")
    assert len(news) == 100 and set(subset["doc_id"]) < set(wire["doc_id"])
    chunks = {n: pd.read_parquet(tmp_path / f"data/test/chunks/{n}/n2.parquet") for n in ("news", "wire")}
    assert pair_documents(subset, chunks["wire"]).sum() == pair_documents(news, chunks["news"]).sum()
    curves = pd.read_csv(tmp_path / "results/test/figures/figure3_curves.csv")
    assert list(dict.fromkeys(curves["run"])) == ["trained on news", "trained on wire"]
    steps = {run: group["step"].tolist() for run, group in curves.groupby("run")}
    assert steps["trained on news"] == steps["trained on wire"]  # the same number of batches
    assert steps["trained on news"][:3] == [0, 3, 6] and curves["value"].between(0, 1).all()


def test_deltas_as_the_paper_defines_them():
    """Δ_S: the Reddit curve after batch 61 minus before training; Δ_D: ICLR's last minus each other's."""
    from embaug.report.figures import adaptation_deltas

    steps = [0, 1, 11, 21, 31, 41, 51, 61, 71, 80]
    rows = [("p", "trained on reddit", s, 0.374 + 0.002 * s) for s in steps]
    rows += [("p", "trained on iclr", s, 0.374 + 0.003 * s) for s in steps]
    rows += [("p", "trained on arxiv", s, 0.374 + 0.0025 * s) for s in steps]
    curves = pd.DataFrame(rows, columns=["panel", "run", "step", "value"])
    deltas = adaptation_deltas(curves, "trained on reddit", 61, "trained on iclr").set_index("run")
    sentence = deltas[deltas["quantity"] == "Δ_S"]["percentage_points"]
    assert sentence.to_dict() == pytest.approx({"trained on reddit": 12.2})
    domain = deltas[deltas["quantity"] == "Δ_D"]["percentage_points"]
    assert domain.to_dict() == pytest.approx({"trained on reddit": 8.0, "trained on arxiv": 4.0})
    with pytest.raises(Exception, match="not scored after batch 60"):
        adaptation_deltas(curves, "trained on reddit", 60, "trained on iclr")


def test_scores_at_the_authors_positions():
    """The authors' loops score after 0-based batch i when i % 10 == 0: after batches 1, 11, 21."""
    from embaug.train import scored_after

    offset = TrainSettings(eval_every=10, eval_offset=1)
    assert [s for s in range(1, 40) if scored_after(s, offset)] == [1, 11, 21, 31]
    assert [s for s in range(1, 40) if scored_after(s, TrainSettings(eval_every=10))] == [10, 20, 30]
    listed = TrainSettings(eval_every=50, eval_steps=(1, 11, 151))
    assert [s for s in range(1, 400) if scored_after(s, listed)] == [1, 11, 151]


def test_dry_run_paper_figure3_deltas_and_figure1_schedule(tmp_path):
    """config.yaml: Figure 3's deltas at the authors' positions; Figure 1's runs scored after the
    paper's batches and encoded like exported runs (384 tokens, normalised)."""
    command = ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-n", "-p", "--cores", "1"]
    command += [
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
        "--",
        "results/paper/figures/figure3_curves.png",
    ]
    import subprocess

    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    [figure] = [line for line in text.splitlines() if "embaug figure-curves" in line]
    assert "--deltas 'trained on reddit' 61 'trained on iclr'" in figure
    assert "results/paper/figures/figure3_deltas.csv" in figure
    settings = [json.loads(m) for m in re.findall(r"--settings '([^']+)'", text)]
    assert settings and all(s["eval_offset"] == 1 and s["eval_every"] == 10 for s in settings)
