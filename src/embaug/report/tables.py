"""Paper tables from per-model score files, written as CSV and Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import EmbaugError
from ..io import write_csv, write_text


@dataclass(frozen=True)
class Cell:
    """Where one table cell comes from: a score file, and the row and column it fills."""

    row: str
    column: str
    scores: str


def last_layer_score(path: str | Path, metric: str) -> float:
    """Accuracy (in %) of the last layer for ``metric`` in one per-layer score file."""
    scores = pd.read_csv(path)
    chosen = scores[scores["metric"] == metric]
    if chosen.empty:
        raise EmbaugError(f"{path}: no rows for metric '{metric}'")
    return 100.0 * float(chosen.loc[chosen["layer"].idxmax(), "accuracy"])


def score_table(cells: Sequence[Cell], metric: str) -> pd.DataFrame:
    """Rows x columns of last-layer accuracies, in first-seen order, plus an ``average`` row."""
    values = pd.DataFrame(
        [(c.row, c.column, last_layer_score(c.scores, metric)) for c in cells],
        columns=["row", "column", "value"],
    )
    rows, columns = values["row"].unique(), values["column"].unique()
    table = values.pivot(index="row", columns="column", values="value").loc[rows, columns]
    table.loc["average"] = table.mean(axis=0)
    table.index.name, table.columns.name = "dataset", None
    return table


def write_table(
    table: pd.DataFrame,
    csv_path: str | Path,
    md_path: str | Path,
    title: str,
    shown: pd.DataFrame | None = None,
) -> None:
    """Write a table as CSV (2 decimals) and as a Markdown file with a title line (1 decimal).

    ``shown`` replaces the table in the Markdown file (e.g. cells formatted as text). Empty cells
    (a model a table has no score for) read as a dash there, empty in the CSV.
    """
    write_csv(table.round(2).reset_index(), csv_path)
    markdown_table = (table if shown is None else shown).reset_index()
    markdown_table = markdown_table.astype(object).where(markdown_table.notna(), None)
    markdown = markdown_table.to_markdown(index=False, floatfmt=".1f", missingval="—")
    write_text(f"# {title}\n\n{markdown}\n", md_path)
