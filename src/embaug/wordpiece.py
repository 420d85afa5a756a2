"""A reproducible WordPiece vocabulary: the BPE-style training of HF tokenizers, ties broken by name.

HF tokenizers' ``WordPieceTrainer`` numbers continuing-subword pieces in hash-map order, and that
order decides which merge wins a tie of counts, so the same texts can give different
vocabularies from one process to the next (huggingface/tokenizers#1794). This module runs the
same algorithm by hand, because no option of the trainer makes it deterministic: start from every
character (``##``-prefixed inside a word), then repeatedly add the most frequent adjacent pair of
pieces (counts weighted by word frequency). Ties go, as upstream, to the pair of earlier-created
pieces (specials, characters in code-point order, ``##`` pieces as first met in the sorted words,
merges in merge order): the same rule, with the hash-map order replaced by a sorted one.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

PREFIX = "##"


def count_words(texts: Iterable[str], normalizer: Any, pre_tokenizer: Any) -> Counter[str]:
    """How often each word occurs, after a tokenizer's normalizer and pre-tokenizer."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def _merge(pieces: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    """``pieces`` with every occurrence of ``pair`` (left to right) replaced by ``merged``."""
    out, i = [], 0
    while i < len(pieces):
        if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return out


def train_vocabulary(word_counts: Counter[str], vocab_size: int, specials: list[str]) -> list[str]:
    """Specials, characters, ``##`` characters, then merged pieces in merge order, up to vocab_size."""
    words = [[word[0], *(PREFIX + c for c in word[1:])] for word in sorted(word_counts)]
    counts = [word_counts[word] for word in sorted(word_counts)]
    ids: dict[str, int] = {}  # piece -> creation order (the tie-breaker)
    for piece in [*specials, *sorted({c for word in word_counts for c in word})]:
        ids.setdefault(piece, len(ids))
    for pieces in words:
        for piece in pieces:
            ids.setdefault(piece, len(ids))
    pair_counts: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, pieces in enumerate(words):
        for pair in zip(pieces, pieces[1:]):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    heap = [(-count, ids[a], ids[b], (a, b)) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)  # a heap with stale entries skipped: the max of a dict per merge is too slow
    while len(ids) < vocab_size and heap:
        negative_count, _, _, pair = heapq.heappop(heap)
        if pair_counts.get(pair) != -negative_count:
            continue  # stale: the pair's count changed after this entry was pushed
        merged = pair[0] + pair[1].removeprefix(PREFIX)
        ids.setdefault(merged, len(ids))
        touched = set()
        for i in sorted(where.pop(pair)):
            old = words[i]
            new = _merge(old, pair, merged)
            for stale in zip(old, old[1:]):
                pair_counts[stale] -= counts[i]
                touched.add(stale)
            for fresh in zip(new, new[1:]):
                pair_counts[fresh] += counts[i]
                where[fresh].add(i)
                touched.add(fresh)
            words[i] = new
        del pair_counts[pair]
        for other in sorted(touched - {pair}):
            if pair_counts[other] > 0:
                heapq.heappush(heap, (-pair_counts[other], ids[other[0]], ids[other[1]], other))
            else:
                del pair_counts[other]
    return list(ids)
