"""Sentence splitting and n-sentence chunks ("crops"), exactly as in docs/method.md."""

from __future__ import annotations

import pandas as pd

from ..errors import EmbaugError


def kept_sentences(text: str, min_chars: int = 100, max_chars: int = 250) -> list[str]:
    """Split ``text`` on '.', keep pieces of ``min_chars..max_chars`` characters, stripped.

    The length is measured before stripping, surrounding whitespace included, as in the
    authors' code (text_embeddings_src/data_stuff.py).
    """
    return [piece.strip() for piece in text.split(".") if min_chars <= len(piece) <= max_chars]


def chunks_of(sentences: list[str], n: int) -> list[str]:
    """Overlapping windows of ``n`` consecutive kept sentences, each re-terminated with '. '."""
    if n < 1:
        raise ValueError(f"sentences per chunk must be >= 1, got {n}")
    return ["".join(f"{s}. " for s in sentences[i : i + n]) for i in range(len(sentences) - n + 1)]


def chunk_corpus(
    corpus: pd.DataFrame, n: int = 2, min_chars: int = 100, max_chars: int = 250, dataset: str = ""
) -> pd.DataFrame:
    """Chunk every document of a raw corpus into ``doc_id, chunk_id, text`` rows.

    Raises if not one document yields two chunks, since then no positive pair can be made.
    """
    rows = [
        (doc_id, chunk_id, chunk)
        for doc_id, text in zip(corpus["doc_id"], corpus["text"])
        for chunk_id, chunk in enumerate(chunks_of(kept_sentences(text, min_chars, max_chars), n))
    ]
    chunks = pd.DataFrame(rows, columns=["doc_id", "chunk_id", "text"])
    if chunks.empty or chunks["doc_id"].value_counts().max() < 2:
        raise EmbaugError(
            f"dataset '{dataset}': no usable chunks: no document has two chunks of {n} sentences "
            f"of {min_chars}-{max_chars} characters (keys chunking.sentences, chunking.min_chars, "
            "chunking.max_chars)"
        )
    return chunks
