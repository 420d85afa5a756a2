"""The reproducible WordPiece vocabulary: upstream's algorithm with a fixed tie-break."""

from __future__ import annotations

import random
from collections import Counter

from tokenizers import normalizers, pre_tokenizers

from embaug.wordpiece import count_words, train_vocabulary

SPECIALS = ["[PAD]", "[UNK]"]


def test_ties_go_to_the_earlier_created_pieces():
    # (a, ##b) and (a, ##c) both occur 3 times: ##b was created first, so ab is merged first
    vocab = train_vocabulary(Counter({"ac": 3, "ab": 3}), 100, SPECIALS)
    assert vocab == [*SPECIALS, "a", "b", "c", "##b", "##c", "ab", "ac"]


def test_the_most_frequent_pair_first_and_the_size_limit():
    # (##w, ##e): 2 + 6 = 8, then (l, ##o): 7, then three pairs of 6 of which (n, ##e) is oldest
    vocab = train_vocabulary(Counter({"low": 5, "lowest": 2, "newer": 6}), 19, SPECIALS)
    assert vocab[:10] == [*SPECIALS, "e", "l", "n", "o", "r", "s", "t", "w"]
    assert vocab[-3:] == ["##we", "lo", "ne"] and len(vocab) == 19


def test_independent_of_the_order_words_are_counted(corpus):
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = count_words(corpus["text"], normalizer, pre_tokenizer)
    assert counts["the"] > 10 and "." in counts
    shuffled = list(counts.items())
    random.Random(1).shuffle(shuffled)
    assert train_vocabulary(Counter(dict(shuffled)), 300, SPECIALS) == train_vocabulary(counts, 300, SPECIALS)
