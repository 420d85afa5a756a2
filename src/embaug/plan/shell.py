"""Shell words of the workflow's commands: every config value quoted, none reaches a shell bare."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any


def quoted(*words: Any) -> str:
    """Words as shell arguments, each quoted."""
    return " ".join(shlex.quote(str(word)) for word in words)


def repeated(flag: str, rows: Iterable[Iterable[Any]]) -> str:
    """`FLAG A B .. FLAG C D ..`: the flag once per row, every word of every row quoted."""
    return " ".join(f"{flag} {quoted(*row)}" for row in rows)
