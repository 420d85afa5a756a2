"""Sweeps (the paper's Figure S1 and Figure 4a): last-layer score against one setting's value."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..errors import EmbaugError
from .figures import AUGMENTATION_COLORS, panels_legend, plt, save_figure
from .tables import last_layer_score

Point = tuple[str, str, str, str]
"""``(setting, value, column, scores)``: one run's score file at one value of a swept setting."""
Reference = tuple[str, str, str]
"""``(label, column, scores)``: a score drawn as a horizontal line (e.g. the base model)."""


def sweep_scores(points: Sequence[Point], references: Sequence[Reference], metric: str) -> pd.DataFrame:
    """``setting, value, column, accuracy`` (%, last layer); references get setting ``reference``
    and their label as value."""
    rows = [(s, str(v), c, last_layer_score(path, metric)) for s, v, c, path in points]
    rows += [("reference", label, c, last_layer_score(path, metric)) for label, c, path in references]
    return pd.DataFrame(rows, columns=["setting", "value", "column", "accuracy"])


def sweep_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, value) in sweep order, one column per line, references as constant
    columns (the same value in every row)."""
    points = scores[scores["setting"] != "reference"]
    if points.empty:
        raise EmbaugError("sweep: no swept runs to tabulate")
    order = pd.MultiIndex.from_frame(points[["setting", "value"]].drop_duplicates())
    table = points.pivot_table(index=["setting", "value"], columns="column", values="accuracy", sort=False)
    table = table.reindex(order)[list(points["column"].unique())]
    for _, reference in scores[scores["setting"] == "reference"].iterrows():
        table[reference["value"]] = reference["accuracy"]
    table.columns.name = None
    return table


SETTING_LABELS = {
    "learning_rate": "learning rate",
    "temperature": "temperature τ",
    "mask_fraction": "masked fraction of tokens",
    "sentences": "sentences per crop n",
    "pooling": "pooling",
    "freeze_layers": "frozen: embedding layer + first k blocks",
    "epochs": "epochs",
    "seed": "training seed",
}


def _numeric(values: Sequence[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return None


def sweep_figure(scores: pd.DataFrame, png: str | Path, title: str, ylabel: str = "kNN accuracy (%)") -> None:
    """One panel per swept setting: a line per column (augmentation) against the value, and each
    reference as a horizontal line (the base model grey dashed, others dotted in their colour).

    Numeric values are placed on a numeric axis (logarithmic for a learning rate spanning 10x or
    more), others (pooling) side by side in sweep order. Data CSV: ``scores``.
    """
    points = scores[scores["setting"] != "reference"]
    references = scores[scores["setting"] == "reference"]
    settings = list(dict.fromkeys(points["setting"]))
    if not settings:
        raise EmbaugError(f"{png}: no swept runs to draw")
    width = max(7.0, 3.6 * len(settings) + 1)
    fig, axes = plt.subplots(1, len(settings), figsize=(width, 3.8), layout="constrained", squeeze=False)
    for ax, setting in zip(axes[0], settings):
        part = points[points["setting"] == setting]
        values = list(dict.fromkeys(part["value"]))
        numeric = _numeric(values)
        where = dict(zip(values, numeric if numeric is not None else range(len(values))))
        for column, line in part.groupby("column", sort=False):
            x = np.array([where[v] for v in line["value"]])
            order = np.argsort(x, kind="stable")
            color = AUGMENTATION_COLORS.get(str(column).split(",")[0])  # "base, same pooling": grey
            ax.plot(x[order], line["accuracy"].to_numpy()[order], marker="o", color=color, label=column)
        for _, reference in references.iterrows():
            base = reference["column"] == "base"
            ax.axhline(
                reference["accuracy"],
                color=AUGMENTATION_COLORS.get(reference["column"], "#444444"),
                linestyle="--" if base else ":",
                label=reference["value"],
            )
        if numeric is None:
            ax.set_xticks(range(len(values)), values)
        elif setting == "learning_rate" and numeric.min() > 0 and numeric.max() >= 10 * numeric.min():
            ax.set_xscale("log")
        elif np.array_equal(numeric, np.round(numeric)):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(SETTING_LABELS.get(setting, setting))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    panels_legend(fig, axes[0], max_columns=4)
    fig.suptitle(textwrap.fill(title, int(width * 12)), fontsize=10)
    save_figure(fig, png, scores)
