"""Write the .test study's data: a synthetic news corpus and a tiny STS16-shaped MTEB task.

    python .test/make_data.py            # rewrites .test/data/{bbc,sts16}.parquet

Both files are committed, so the test study runs on a fresh clone with no downloads; this script
is how they were made (standard library + pandas, deterministic), and tests/test_test_data.py
checks that it still makes exactly the committed tables.

* ``bbc.parquet`` (``id, text, label``): a synthetic stand-in for the BBC News corpus (no BBC
  text): 200 documents, 40 in each of its five topics (business, entertainment, politics, sport,
  tech). A document is a title line, a blank line and
  4-8 sentences of 100-250 characters (so every document yields crops of 2 sentences). About a
  third of a sentence's words come from its topic's vocabulary, some from another topic's, the
  rest from shared news words: enough signal that kNN beats chance, not so much that it is trivial.
* ``sts16.parquet`` (``sentence1, sentence2, score, split``): 60 sentence pairs (split ``test``):
  a sentence and a copy with a random share of its words replaced, scored 0-5 by the share kept.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "data"
SEED = 2026

TOPICS = {
    "business": "market shares profit bank investor growth inflation quarter revenue price debt fund "
    "economy sales firm deal merger tax exports oil dollar budget retail stock chief",
    "entertainment": "film album band concert singer song tour studio chart festival award actor "
    "director comedy drama star theatre show music oscar box office premiere series",
    "politics": "minister election party vote government labour tory parliament campaign leader "
    "policy reform mps council poll law bill opposition commons cabinet voters spokesman",
    "sport": "match team goal coach season player league score final stadium cup injury victory "
    "champion race club striker squad tennis rugby cricket title win",
    "tech": "software computer phone internet network users digital mobile game broadband chip "
    "online website virus data device service search security gadget console apple",
}
SHARED = str.split(  # word lists read best as text
    "year people new said would also could time last first week told may two three report "
    "according plans world country said group public news month people million number"
)
FILLER = str.split("the a of and in on with for to from by at its their this that has was is will as")
N_PER_TOPIC = 40
N_PAIRS = 60


def sentence(rng: random.Random, topic: str, low: int = 100, high: int = 250) -> str:
    """One sentence (no '.') of ``low..high`` characters mixing topic, other-topic and shared words."""
    own, others = TOPICS[topic].split(), [t for t in TOPICS if t != topic]
    target = rng.randint(low + 10, high - 30)
    words: list[str] = []
    while len(" ".join(words)) < target:
        draw = rng.random()
        if draw < 0.3:
            words.append(rng.choice(own))
        elif draw < 0.4:
            words.append(rng.choice(TOPICS[rng.choice(others)].split()))
        elif draw < 0.65:
            words.append(rng.choice(SHARED))
        else:
            words.append(rng.choice(FILLER))
    text = " ".join(words)
    return text[0].upper() + text[1:]


def news_corpus(seed: int = SEED) -> pd.DataFrame:
    """``id, text, label``: ``N_PER_TOPIC`` synthetic articles per topic, ids ``topic/NNN``."""
    rng = random.Random(seed)
    rows = []
    for topic in TOPICS:
        for i in range(1, N_PER_TOPIC + 1):
            title = " ".join(rng.choice(TOPICS[topic].split()) for _ in range(4)).capitalize()
            body = ". ".join(sentence(rng, topic) for _ in range(rng.randint(4, 8))) + "."
            rows.append((f"{topic}/{i:03d}", f"{title}\n\n{body}", topic))
    return pd.DataFrame(rows, columns=["id", "text", "label"])


def sts_pairs(seed: int = SEED) -> pd.DataFrame:
    """``sentence1, sentence2, score, split``: a sentence and a copy with a random share of its
    words replaced, scored 5 x the share of words kept (0-5, as STS gold scores)."""
    rng = random.Random(seed + 1)
    vocabulary = sorted({w for words in TOPICS.values() for w in words.split()} | set(SHARED))
    rows = []
    for _ in range(N_PAIRS):
        words = sentence(rng, rng.choice(list(TOPICS)), 40, 120).lower().split()
        share = rng.random()
        changed = [rng.choice(vocabulary) if rng.random() < share else w for w in words]
        kept = sum(a == b for a, b in zip(words, changed)) / len(words)
        pair = (" ".join(words).capitalize(), " ".join(changed).capitalize())
        rows.append((*pair, round(5 * kept, 2), "test"))
    return pd.DataFrame(rows, columns=["sentence1", "sentence2", "score", "split"])


def main() -> None:
    OUT.mkdir(exist_ok=True)
    news_corpus().to_parquet(OUT / "bbc.parquet", index=False)
    sts_pairs().to_parquet(OUT / "sts16.parquet", index=False)


if __name__ == "__main__":
    main()
