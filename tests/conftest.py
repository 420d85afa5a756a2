"""Shared fixtures: a deterministic synthetic corpus and a tiny BERT built from it on the fly."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import random  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # the machine is shared; one thread also keeps CPU results reproducible

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY_ARCHITECTURE = {
    "vocab_size": 500,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}

TOPICS = {
    "sport": [
        "match",
        "team",
        "goal",
        "coach",
        "season",
        "player",
        "league",
        "score",
        "final",
        "stadium",
        "cup",
        "injury",
        "victory",
    ],
    "finance": [
        "market",
        "shares",
        "profit",
        "bank",
        "investor",
        "growth",
        "inflation",
        "quarter",
        "revenue",
        "price",
        "debt",
        "fund",
    ],
    "science": [
        "cell",
        "protein",
        "experiment",
        "theory",
        "energy",
        "particle",
        "climate",
        "sample",
        "genome",
        "physics",
        "lab",
        "data",
    ],
    "music": [
        "album",
        "band",
        "concert",
        "guitar",
        "singer",
        "song",
        "tour",
        "studio",
        "chart",
        "festival",
        "rhythm",
        "melody",
    ],
}
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "in",
    "on",
    "with",
    "for",
    "to",
    "from",
    "by",
    "at",
    "its",
    "their",
    "this",
    "that",
]


def make_sentence(rng: random.Random, words: list[str], low: int = 100, high: int = 250) -> str:
    """A sentence without '.' whose length lies in ``low..high`` characters."""
    target = rng.randint(low + 10, high - 30)
    parts: list[str] = []
    while len(" ".join(parts)) < target:
        parts.append(rng.choice(words) if rng.random() < 0.6 else rng.choice(FILLER))
    sentence = " ".join(parts)
    assert low <= len(sentence) <= high, sentence
    return sentence[0].upper() + sentence[1:]


def make_corpus(n_per_topic: int = 10, seed: int = 0) -> pd.DataFrame:
    """``doc_id, text, label``: documents of 4-8 sentences of 100-250 characters each."""
    rng = random.Random(seed)
    rows = []
    for topic, words in TOPICS.items():
        for i in range(n_per_topic):
            sentences = [make_sentence(rng, words) for _ in range(rng.randint(4, 8))]
            rows.append((f"{topic}-{i:02d}", ". ".join(sentences) + ".", topic))
    return pd.DataFrame(rows, columns=["doc_id", "text", "label"])


@pytest.fixture(scope="session")
def corpus() -> pd.DataFrame:
    return make_corpus()


@pytest.fixture(scope="session")
def tiny_architecture() -> dict:
    return dict(TINY_ARCHITECTURE)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, corpus: pd.DataFrame) -> Path:
    from embaug.models import build_scratch_model

    out = tmp_path_factory.mktemp("tiny") / "model"
    build_scratch_model(corpus["text"].tolist(), out, TINY_ARCHITECTURE)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    """``(model, tokenizer)`` in eval mode on CPU (shared: tests must not train it)."""
    from embaug.models import load_encoder

    model, tokenizer = load_encoder(str(tiny_model_dir), "cpu")
    model.eval()
    return model, tokenizer


@pytest.fixture
def bars_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """tqdm bars as a job sees them: on, to a stderr that is not a terminal (tqdm reads
    ``TQDM_DISABLE``, set above to keep the other tests quiet, when it is imported)."""
    import tqdm.std

    init = vars(tqdm.std.tqdm)["__init__"]
    monkeypatch.setattr(tqdm.std.tqdm, "__init__", getattr(init, "func", init))


@pytest.fixture(autouse=True)
def no_wait_for_a_slurm_controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the `slurm` tests, an `scontrol` that fails at once comes first on PATH. Snakemake's
    SLURM executor plugin runs `scontrol show config` whenever snakemake starts (for its help text);
    where SLURM's client is installed but no controller runs (here, after the slurm tests) that waits
    for its timeout, about 9 s per snakemake call. No default test talks to SLURM (test_slurm's
    stand-in commands come before this one where a test uses them)."""
    if request.node.get_closest_marker("slurm") or shutil.which("scontrol") is None:
        return
    folder = tmp_path_factory.getbasetemp() / "no_slurm_controller"
    if not folder.exists():
        folder.mkdir()
        (folder / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (folder / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
