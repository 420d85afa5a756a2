"""Models trained from scratch (Table S6): a random BERT or its bare word embeddings, and a vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .downloads import hub_unreachable
from .io import write_json
from .models import build_scratch_model, save_encoder

KINDS = ("bert", "embedding_only")


def init_scratch_model(
    texts: list[str],
    out_dir: str | Path,
    architecture: dict[str, Any],
    seed: int = 42,
    kind: str = "bert",
    tokenizer: str | None = None,
    tokenizer_revision: str | None = None,
) -> str:
    """Save a randomly initialised model of ``kind`` to ``out_dir``; return its vocabulary's origin.

    The vocabulary is the hub ``tokenizer``'s (the authors: ``bert-base-uncased``; at commit
    ``tokenizer_revision`` where given) where the hub is reachable, else a WordPiece fitted on
    ``texts``; ``scratch.json`` in the folder says which (``vocabulary``), for the tables' captions.
    ``embedding_only`` keeps the BERT's word embeddings alone (:mod:`embaug.embedding_model`), as
    the authors did.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    from .embedding_model import bert_word_embeddings_only

    if kind not in KINDS:
        raise ValueError(f"unknown scratch model kind '{kind}' (one of {', '.join(KINDS)})")
    out_dir = Path(out_dir)
    if tokenizer and hub_unreachable() is None:
        hub_tokenizer = AutoTokenizer.from_pretrained(tokenizer, revision=tokenizer_revision)
        fields = {key: value for key, value in architecture.items() if key != "vocab_size"}
        config = BertConfig(vocab_size=len(hub_tokenizer), pad_token_id=hub_tokenizer.pad_token_id, **fields)
        torch.manual_seed(seed)
        save_encoder(BertModel(config), hub_tokenizer, out_dir)
        vocabulary = f"the {tokenizer} vocabulary"
    else:
        build_scratch_model(texts, out_dir, architecture, seed)
        vocabulary = "a WordPiece vocabulary fitted on the training datasets" + (
            f" ({tokenizer} unreachable: offline)" if tokenizer else ""
        )
    if kind == "embedding_only":
        save_encoder(bert_word_embeddings_only(out_dir), AutoTokenizer.from_pretrained(out_dir), out_dir)
    write_json({"kind": kind, "vocabulary": vocabulary}, out_dir / "scratch.json")
    return vocabulary
