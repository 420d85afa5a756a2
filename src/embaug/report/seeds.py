"""Tables over training seeds: mean, standard deviation and n per cell, and a paired difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import EmbaugError
from .tables import last_layer_score

AVERAGE = "average"
NO_SEED = "-"
"""The seed of a cell that no training seed changes (the base model)."""


@dataclass(frozen=True)
class SeedCell:
    """One score file of a seed table: its row, column, training seed and per-layer scores."""

    row: str
    column: str
    seed: str
    scores: str


def seed_values(cells: Sequence[SeedCell], metric: str) -> pd.DataFrame:
    """``row, column, seed, value``: last-layer accuracies (%), plus an ``average`` row per seed.

    The average over rows is taken per (column, seed), so its spread is the spread of the
    per-seed averages; it needs every row to have the column's seeds.
    """
    values = pd.DataFrame(
        [(c.row, c.column, str(c.seed), last_layer_score(c.scores, metric)) for c in cells],
        columns=["row", "column", "seed", "value"],
    )
    if values.duplicated(["row", "column", "seed"]).any():
        raise EmbaugError("seed table: a (row, column, seed) cell is given twice")
    rows = values["row"].nunique()
    grouped = values.groupby(["column", "seed"], sort=False)["value"]
    complete = grouped.transform("size") == rows
    average = values[complete].groupby(["column", "seed"], sort=False)["value"].mean().reset_index()
    return pd.concat([values, average.assign(row=AVERAGE)], ignore_index=True)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN for fewer than two values)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    low, high = stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(low), float(high)


def seed_table(values: pd.DataFrame, difference: tuple[str, str] | None = None) -> pd.DataFrame:
    """Rows x (``{column} mean``, ``{column} sd``, ``{column} n``) from :func:`seed_values`.

    With ``difference = (a, b)`` (both columns present) the seed-paired ``a - b`` follows:
    its mean, the 95% t interval (``ci low``, ``ci high``) and the number of pairs.
    """
    rows, columns = values["row"].unique(), values["column"].unique()
    summary = values.groupby(["row", "column"], sort=False)["value"].agg(["mean", "std", "count"])
    table = pd.DataFrame(index=pd.Index(rows, name="dataset"))
    for column in columns:
        part = summary.xs(column, level="column").reindex(rows)
        table[f"{column} mean"] = part["mean"]
        table[f"{column} sd"] = part["std"]
        table[f"{column} n"] = part["count"].fillna(0).astype(int)
    if difference and set(difference) <= set(columns):
        first, second = difference
        name = f"{first} - {second}"
        paired = values[values["column"].isin(difference)].pivot_table(
            index=["row", "seed"], columns="column", values="value"
        )
        paired = (paired[first] - paired[second]).dropna()
        for row in rows:
            diffs = paired.xs(row, level="row").to_numpy() if row in paired.index.get_level_values(0) else []
            diffs = np.asarray(diffs, dtype=float)
            low, high = t_interval(diffs)
            table.loc[row, f"{name} mean"] = diffs.mean() if len(diffs) else np.nan
            table.loc[row, f"{name} ci low"] = low
            table.loc[row, f"{name} ci high"] = high
            table.loc[row, f"{name} n"] = len(diffs)
        table[f"{name} n"] = table[f"{name} n"].astype(int)
    return table


def seed_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text: ``mean ± sd (n=N)`` per column, ``+d [low, high] (n=N)`` for a difference."""
    shown = pd.DataFrame(index=table.index)
    for name in dict.fromkeys(c.rsplit(" ", 1)[0] for c in table.columns if c.endswith(" mean")):
        mean, n = table[f"{name} mean"], table[f"{name} n"]
        if f"{name} sd" in table:
            sd = table[f"{name} sd"]
            shown[name] = [
                f"{m:.1f} ± {s:.1f} (n={k})" if k > 1 else f"{m:.1f} (n={k})" for m, s, k in zip(mean, sd, n)
            ]
        else:
            low, high = table[f"{name} ci low"], table[f"{name} ci high"]
            shown[f"{name} [95% CI]"] = [
                f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}] (n={k})" if k > 1 else f"{m:+.1f} (n={k})"
                for m, lo, hi, k in zip(mean, low, high, n)
            ]
    return shown
