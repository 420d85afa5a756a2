"""The default configs measure what the authors measured (docs/fidelity.md)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_seventh_token_is_token_7_in_figure_s1_and_table_s7():
    """The authors' seventh token is token_embeds[:, 7] (text_embeddings_src/embeddings.py)."""
    assert "token:7" in load("config/sweeps.yaml")["study"]["sweeps"]["pooling"]
    assert "token:7" in load("config/tableS7.yaml")["table_s7"]["poolings"]
