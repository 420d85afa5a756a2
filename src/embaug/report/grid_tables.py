"""Tables with one row per (dataset, model) and one column per evaluation variant (Tables S3, S7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .tables import last_layer_score


@dataclass(frozen=True)
class GridCell:
    """One cell: the last-layer ``metric`` of a score file, at (dataset, model) x column."""

    dataset: str
    model: str
    column: str
    metric: str
    scores: str


def grid_table(cells: Sequence[GridCell]) -> pd.DataFrame:
    """Last-layer accuracies (%) indexed by (dataset, model), columns in first-seen order.

    A (row, column) without a cell stays empty (NaN), e.g. the centred / whitened columns of the
    sparse TF-IDF baseline.
    """
    values = pd.DataFrame(
        [(c.dataset, c.model, c.column, last_layer_score(c.scores, c.metric)) for c in cells],
        columns=["dataset", "model", "column", "value"],
    )
    rows = list(dict.fromkeys(zip(values["dataset"], values["model"])))
    columns = list(dict.fromkeys(values["column"]))
    table = values.pivot(index=["dataset", "model"], columns="column", values="value")
    table = table.reindex(index=pd.MultiIndex.from_tuples(rows, names=["dataset", "model"]), columns=columns)
    table.columns.name = None
    return table
