"""The .test study's committed data: what .test/make_data.py makes, with signal for kNN and STS."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.neighbors import KNeighborsClassifier

DATA = REPO_ROOT / ".test" / "data"


@pytest.fixture(scope="module")
def make_data():
    spec = importlib.util.spec_from_file_location("make_data", REPO_ROOT / ".test" / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_are_what_the_generator_makes(make_data):
    pd.testing.assert_frame_equal(pd.read_parquet(DATA / "bbc.parquet"), make_data.news_corpus())
    pd.testing.assert_frame_equal(pd.read_parquet(DATA / "sts16.parquet"), make_data.sts_pairs())


def test_news_corpus_shape_and_crops():
    news = pd.read_parquet(DATA / "bbc.parquet")
    assert list(news.columns) == ["id", "text", "label"] and news["id"].is_unique
    assert news["label"].value_counts().to_dict() == {
        topic: 40 for topic in ("business", "entertainment", "politics", "sport", "tech")
    }
    bodies = news["text"].str.split("\n\n", n=1).str[1]
    sentences = bodies.str.rstrip(".").str.split(". ", regex=False)
    assert sentences.map(len).between(4, 8).all()
    assert sentences.map(lambda parts: all(100 <= len(s) <= 250 for s in parts)).all()


def test_topics_are_learnable_but_not_trivial():
    """Bag-of-words 10-NN on a 90/10 split: well above chance (20%), below perfect on harder words."""
    news = pd.read_parquet(DATA / "bbc.parquet")
    counts = CountVectorizer().fit_transform(news["text"]).toarray().astype(float)
    counts /= np.linalg.norm(counts, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    test = rng.permutation(len(news))[:40]
    train = np.setdiff1d(np.arange(len(news)), test)
    knn = KNeighborsClassifier(10).fit(counts[train], news["label"].to_numpy()[train])
    assert knn.score(counts[test], news["label"].to_numpy()[test]) >= 0.6


def test_sts_scores_follow_the_share_of_words_kept():
    pairs = pd.read_parquet(DATA / "sts16.parquet")
    assert list(pairs.columns) == ["sentence1", "sentence2", "score", "split"] and len(pairs) == 60
    assert (pairs["split"] == "test").all() and pairs["score"].between(0, 5).all()
    assert pairs["score"].min() < 1 and pairs["score"].max() > 4
    same = [
        len(set(a.lower().split()) & set(b.lower().split())) / len(set(a.lower().split()))
        for a, b in zip(pairs["sentence1"], pairs["sentence2"])
    ]
    assert spearmanr(same, pairs["score"]).statistic > 0.8
