"""The paper's figures as PNGs, each with the data behind it in a CSV of the same name.

Every figure is drawn with matplotlib's Agg backend, written atomically, and is a pure function
of its inputs (fixed draw order, no timestamps in the file), so a fixed seed gives the same file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..data.sources import UNLABELED  # noqa: E402
from ..errors import EmbaugError  # noqa: E402
from ..io import atomic_path, write_csv  # noqa: E402

DPI = 150
UNLABELED_COLOR = "#d3d3d3"
AUGMENTATION_COLORS = {"base": "#444444", "dropout": "#1f77b4", "crops": "#d62728"}


def data_path(png: str | Path) -> Path:
    """Where the data behind a figure lives: the PNG's path with ``.csv``."""
    return Path(png).with_suffix(".csv")


def save_figure(fig: plt.Figure, png: str | Path, data: pd.DataFrame) -> None:
    """Write ``fig`` as PNG and ``data`` as the CSV beside it, both atomically; close ``fig``."""
    write_csv(data, data_path(png))
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """One distinct colour per label (sorted, ``unlabeled`` light grey); up to 60 from tab20/b/c."""
    names = sorted(set(labels) - {UNLABELED})
    if len(names) <= 10:
        palette = list(plt.get_cmap("tab10").colors)
    elif len(names) <= 20:
        palette = list(plt.get_cmap("tab20").colors)
    else:
        palette = [c for m in ("tab20", "tab20b", "tab20c") for c in plt.get_cmap(m).colors]
    if len(names) > len(palette):
        palette = [plt.get_cmap("hsv")(i / len(names)) for i in range(len(names))]
    colors = {name: matplotlib.colors.to_hex(palette[i]) for i, name in enumerate(names)}
    colors[UNLABELED] = UNLABELED_COLOR
    return colors


def point_size(n_points: int) -> float:
    """Marker area that keeps small maps readable and large ones from turning into blobs."""
    return float(np.clip(3000 / max(n_points, 1), 0.5, 20))


def _scatter(ax: plt.Axes, coords: pd.DataFrame, colors: Mapping[str, str]) -> None:
    """``unlabeled`` points first in grey, then the labelled ones in a fixed shuffled order."""
    size = point_size(len(coords))
    grey = coords[coords["label"] == UNLABELED]
    ax.scatter(grey["x"], grey["y"], s=size, c=UNLABELED_COLOR, linewidths=0, rasterized=True)
    labelled = coords[coords["label"] != UNLABELED]
    order = np.random.default_rng(0).permutation(len(labelled))
    labelled = labelled.iloc[order]
    ax.scatter(
        labelled["x"],
        labelled["y"],
        s=size,
        c=[colors[label] for label in labelled["label"]],
        linewidths=0,
        rasterized=True,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")


def _legend(fig: plt.Figure, colors: Mapping[str, str], labels: Sequence[str], where: str) -> None:
    present = set(labels)
    names = [name for name in colors if name in present and name != UNLABELED]
    if UNLABELED in present:
        names.append(UNLABELED)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", markersize=5, color=colors[name]) for name in names
    ]
    if where == "right":
        ncol = math.ceil(len(names) / 25)
        fig.legend(handles, names, loc="outside right upper", ncol=ncol, fontsize=7, frameon=False)
    else:
        ncol = max(1, min(len(names), int(fig.get_figwidth() / 1.6)))  # ~1.6 inch per column
        fig.legend(handles, names, loc="outside lower center", ncol=ncol, fontsize=7, frameon=False)


def tsne_figure(coords: pd.DataFrame, png: str | Path, title: str) -> None:
    """One t-SNE map coloured by label, legend below; data CSV: doc_id, x, y, label."""
    fig, ax = plt.subplots(figsize=(8, 8), layout="constrained")
    colors = label_colors(coords["label"])
    _scatter(ax, coords, colors)
    fig.suptitle(title, fontsize=9)
    _legend(fig, colors, coords["label"], "below")
    save_figure(fig, png, coords[["doc_id", "x", "y", "label"]])


def tsne_panels_figure(panels: Mapping[str, pd.DataFrame], png: str | Path, suptitle: str) -> None:
    """Figure 2: t-SNE maps side by side (one per model) with one shared legend below.

    The panel names are the keys of ``panels``; the data CSV has a ``panel`` column.
    """
    if not panels:
        raise EmbaugError(f"{png}: no t-SNE maps to draw")
    all_labels = pd.concat([coords["label"] for coords in panels.values()])
    colors = label_colors(all_labels)
    n_classes = len(colors) - 1
    legend_rows = math.ceil(n_classes / min(n_classes, 8))
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(4.2 * len(panels), 4.4 + 0.16 * legend_rows),
        layout="constrained",
        squeeze=False,
    )
    for ax, (name, coords) in zip(axes[0], panels.items()):
        _scatter(ax, coords, colors)
        ax.set_title(name, fontsize=9)
    fig.suptitle(suptitle, fontsize=10)
    _legend(fig, colors, all_labels, "below")
    data = pd.concat(
        [coords[["doc_id", "x", "y", "label"]].assign(panel=name) for name, coords in panels.items()],
        ignore_index=True,
    )
    save_figure(fig, png, data[["panel", "doc_id", "x", "y", "label"]])


def _line_style(name: str, reference: bool = False) -> dict:
    """Colour by augmentation (the last ``__`` part of a run name), base models dashed grey;
    references (models as they are, runs from scratch) dotted with square markers."""
    parts = name.split("__")
    if len(parts) == 1:
        if reference:  # no augmentation colour: matplotlib's next colour
            return {"linestyle": ":", "marker": "s"}
        return {"color": AUGMENTATION_COLORS["base"], "linestyle": "--", "marker": "o"}
    color = AUGMENTATION_COLORS.get(parts[-1])
    return {"color": color, "linestyle": ":" if reference else "-", "marker": "s" if reference else "o"}


def layers_figure(
    scores: Mapping[str, pd.DataFrame],
    png: str | Path,
    metric: str | Sequence[str],
    title: str,
    ylabel: str = "kNN accuracy (%)",
    references: Sequence[str] = (),
) -> None:
    """Figure 4b-c (and S3): accuracy per layer, one line per model (base dashed, fine-tuned solid).

    ``scores`` maps a model name to its per-layer score table (``layer, metric, accuracy``);
    several ``metric`` give one panel each (titled by the metric), side by side. The models in
    ``references`` (e.g. a sentence-tuned model as it is, runs trained from scratch) are dotted.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(7 + 4 * (len(metrics) - 1), 4), layout="constrained", squeeze=False
    )
    rows = []
    for ax, shown in zip(axes[0], metrics):
        layers: set[int] = set()
        for name, table in scores.items():
            chosen = table[table["metric"] == shown].sort_values("layer")
            if chosen.empty:
                raise EmbaugError(f"{png}: model '{name}' has no '{shown}' scores")
            style = _line_style(name, name in references)
            ax.plot(chosen["layer"], 100 * chosen["accuracy"], label=name, markersize=4, **style)
            rows.append(chosen.assign(model=name)[["model", "layer", "metric", "accuracy"]])
            layers.update(int(layer) for layer in chosen["layer"])
        ticks = sorted(layers)
        ax.set_xticks(ticks, ["emb." if layer == 0 else str(layer) for layer in ticks])
        ax.set_xlabel("layer (emb. = embedding layer, i = output of transformer block i)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(metrics) > 1:
            ax.set_title(shown, fontsize=9)
    fig.suptitle(title, fontsize=10)
    panels_legend(fig, axes[0], max_columns=3)
    save_figure(fig, png, pd.concat(rows, ignore_index=True))


def mteb_layer_scores(table: pd.DataFrame, by_block: bool = False) -> pd.DataFrame:
    """A per-layer MTEB table (one row per layer, written by ``embaug mteb-table``) in the
    ``layer, metric, accuracy`` shape :func:`layers_figure` reads, 0..1: the block average
    (metric ``mteb``), or with ``by_block`` each block's mean (metric: the block's column name,
    e.g. ``sts (mean)``; Figure S3)."""
    from .mteb_table import BLOCK_AVERAGE

    columns = [c for c in table.columns if c.endswith(" (mean)")] if by_block else [BLOCK_AVERAGE]
    return pd.concat(
        pd.DataFrame(
            {
                "layer": table["model"].astype(int),
                "metric": column if by_block else "mteb",
                "accuracy": table[column] / 100,
            }
        )
        for column in columns
    )


def loss_figure(train_log: pd.DataFrame, png: str | Path, title: str, ylabel: str = "InfoNCE loss") -> None:
    """Training loss (per batch and a running mean) and learning rate against the batch number;
    a log with a ``heldout_loss`` column (pretraining) also shows it at the steps it was scored."""
    window = max(1, len(train_log) // 20)
    data = train_log[["step", "loss", "lr", *[c for c in ["heldout_loss"] if c in train_log]]].copy()
    data["loss_smoothed"] = data["loss"].rolling(window, min_periods=1).mean()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, layout="constrained")
    top.plot(data["step"], data["loss"], color="#9ecae1" if window > 1 else "#08519c", label="per batch")
    if window > 1:
        top.plot(
            data["step"], data["loss_smoothed"], color="#08519c", label=f"running mean ({window} batches)"
        )
    if "heldout_loss" in data:
        held = data.dropna(subset=["heldout_loss"])
        top.plot(held["step"], held["heldout_loss"], "o-", color="#d94801", markersize=3, label="held out")
    top.set_ylabel(ylabel)
    top.legend(fontsize=8, loc="upper right", frameon=False)
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=10)
    bottom.plot(data["step"], data["lr"], color="#444444")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("batch (optimizer step)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))  # batches are whole numbers
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    bottom.grid(alpha=0.3)
    save_figure(fig, png, data)


def curves_figure(
    curves: pd.DataFrame,
    png: str | Path,
    title: str,
    ylabel: str = "kNN accuracy (%)",
) -> None:
    """Scores over training (Figures 1 and 3): one panel per ``panel``, one line per ``run`` (a run
    name, or any label).

    ``curves`` has columns ``panel, run, step, value`` (value a fraction, shown in %).
    """
    if curves.empty:
        raise EmbaugError(f"{png}: no evaluation during training; set training.eval_every > 0")
    panels = list(dict.fromkeys(curves["panel"]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels) + 2, 4), layout="constrained", squeeze=False
    )
    for ax, panel in zip(axes[0], panels):
        for run, curve in curves[curves["panel"] == panel].groupby("run", sort=False):
            curve = curve.sort_values("step")
            # run names: coloured by augmentation; other labels (Figure 3's datasets): one colour each
            style = _line_style(str(run)) if "__" in str(run) else {"marker": "o"}
            ax.plot(curve["step"], 100 * curve["value"], label=run, markersize=3, **style)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("batches of training")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("MTEB main score (%)" if panel.startswith("MTEB") else ylabel)
        ax.grid(alpha=0.3)
    panels_legend(fig, axes[0], max_columns=3)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, png, curves[["panel", "run", "step", "value"]])


def panels_legend(fig: plt.Figure, axes: Sequence[plt.Axes], max_columns: int) -> None:
    """One legend below the figure for the lines of every panel, each label once (first seen)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center",
        ncol=min(max_columns, len(handles)), fontsize=8, frameon=False,
    )  # fmt: skip


def mteb_task_panel(task: str) -> str:
    """The panel of one MTEB task's training curve in :func:`read_curves` entries."""
    return f"MTEB {task} (main score)"


def block_curves(curves: pd.DataFrame, blocks: dict[str, list[str]]) -> pd.DataFrame:
    """Replace MTEB task curves by the paper's Figure 1 panels: block average, then each block's mean.

    Per run and step, a block's value is the mean of its tasks' main scores and the block average
    the mean of the blocks' values (as Table 1). Tasks in no block keep their own panel; other
    panels (kNN) are kept, after the MTEB ones.
    """
    task_of = {mteb_task_panel(task): task for tasks in blocks.values() for task in tasks}
    tasks = curves[curves["panel"].isin(task_of)]
    if tasks.empty:
        return curves
    block_of = {task: block for block, members in blocks.items() for task in members}
    tasks = tasks.assign(block=tasks["panel"].map(task_of).map(block_of))
    means = tasks.groupby(["block", "run", "step"], sort=False)["value"].mean().reset_index()
    average = means.groupby(["run", "step"], sort=False)["value"].mean().reset_index()
    panels = [
        average.assign(panel="MTEB block average"),
        means.assign(panel=means["block"].map(lambda block: f"MTEB {block} (mean)")).drop(columns="block"),
        curves[~curves["panel"].isin(task_of)],
    ]
    return pd.concat(panels, ignore_index=True)[["panel", "run", "step", "value"]]


def adaptation_deltas(
    curves: pd.DataFrame, sentence_run: str, sentence_step: int, in_domain_run: str
) -> pd.DataFrame:
    """Figure 3's Δ_S and Δ_D as the paper defines them (percentage points of kNN accuracy).

    Δ_S (sentence adaptation): ``sentence_run``'s score after ``sentence_step`` batches minus the
    score before training (step 0: the base model; the authors: the Reddit curve's 7th point,
    after batch 61, minus base MPNet). Δ_D (domain adaptation), one per other run: the in-domain
    run's last score minus that run's last score (the authors' Δ_D1..3 for bioRxiv, arXiv, Reddit).
    """
    value = curves.set_index(["run", "step"])["value"]
    runs = list(dict.fromkeys(curves["run"]))
    for run in (sentence_run, in_domain_run):
        if run not in runs:
            raise EmbaugError(f"Figure 3 deltas: no curve '{run}' (curves: {', '.join(runs)})")
    if (sentence_run, sentence_step) not in value.index or (sentence_run, 0) not in value.index:
        scored = ", ".join(str(s) for s in curves.loc[curves["run"] == sentence_run, "step"])
        raise EmbaugError(
            f"Figure 3 deltas: '{sentence_run}' was not scored after batch {sentence_step} and before "
            f"training (scored after: {scored}); set figure3.sentence_delta.step to one of them"
        )
    last = curves.sort_values("step").groupby("run")["value"].last()
    rows = [
        (
            "Δ_S",
            sentence_run,
            100 * (value[(sentence_run, sentence_step)] - value[(sentence_run, 0)]),
            f"{sentence_run} after batch {sentence_step} minus before training",
        )
    ]
    rows += [
        ("Δ_D", run, 100 * (last[in_domain_run] - last[run]), f"{in_domain_run} minus {run}, last scores")
        for run in runs
        if run != in_domain_run
    ]
    return pd.DataFrame(rows, columns=["quantity", "run", "percentage_points", "definition"])


def read_curves(entries: Sequence[tuple[str, str, str, str]]) -> pd.DataFrame:
    """``panel, run, step, value`` from runs' ``train_log.csv`` (+ step 0 from ``run.json``).

    Each entry is ``(panel, run, run_dir, column)``: the score column of that run's log to plot.
    """
    import json

    frames = []
    for panel, run, run_dir, column in entries:
        log = pd.read_csv(Path(run_dir) / "train_log.csv")
        if column not in log:
            raise EmbaugError(
                f"{run_dir}/train_log.csv has no column '{column}': the run was trained without "
                "training.eval_every (or without that evaluation dataset); re-run it"
            )
        scored = log.loc[log[column].notna(), ["step", column]].rename(columns={column: "value"})
        initial = json.loads((Path(run_dir) / "run.json").read_text()).get("initial_scores", {})
        if column in initial:
            scored = pd.concat([pd.DataFrame({"step": [0], "value": [initial[column]]}), scored])
        frames.append(scored.assign(panel=panel, run=run))
    return pd.concat(frames, ignore_index=True)[["panel", "run", "step", "value"]]
