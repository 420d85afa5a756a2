"""Figures: PNG + data CSV written, the expected panels and series, deterministic bytes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embaug.errors import EmbaugError
from embaug.report.figures import (
    UNLABELED_COLOR,
    curves_figure,
    data_path,
    label_colors,
    layers_figure,
    loss_figure,
    read_curves,
    tsne_figure,
    tsne_panels_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def coords(n_classes: int = 45, per_class: int = 3, unlabeled: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = [f"class{c:02d}" for c in range(n_classes) for _ in range(per_class)] + ["unlabeled"] * unlabeled
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(len(labels))],
            "x": rng.normal(size=len(labels)),
            "y": rng.normal(size=len(labels)),
            "label": labels,
        }
    )


def is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


def test_label_colors_distinct_for_45_classes_and_grey_unlabeled():
    colors = label_colors([f"c{i}" for i in range(45)] + ["unlabeled"])
    labelled = [color for name, color in colors.items() if name != "unlabeled"]
    assert len(labelled) == 45 and len(set(labelled)) == 45
    assert colors["unlabeled"] == UNLABELED_COLOR and UNLABELED_COLOR not in labelled


def test_tsne_figure_and_data(tmp_path):
    png = tmp_path / "map.png"
    tsne_figure(coords(), png, "title")
    assert is_png(png)
    data = pd.read_csv(data_path(png))
    assert list(data.columns) == ["doc_id", "x", "y", "label"] and len(data) == 45 * 3 + 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.csv", "map.png"]  # no temporaries left


def test_figure2_panels_share_one_legend(tmp_path):
    png = tmp_path / "figure2.png"
    panels = {name: coords(seed=i) for i, name in enumerate(["base", "dropout", "crops"])}
    tsne_panels_figure(panels, png, "Figure 2")
    data = pd.read_csv(data_path(png))
    assert list(data["panel"].unique()) == ["base", "dropout", "crops"]
    assert data.groupby("panel")["label"].nunique().eq(46).all()


def test_figures_are_deterministic(tmp_path):
    panels = {"base": coords(), "crops": coords(seed=1)}
    tsne_panels_figure(panels, tmp_path / "a.png", "t")
    tsne_panels_figure(panels, tmp_path / "b.png", "t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_no_panels_raises(tmp_path):
    with pytest.raises(EmbaugError):
        tsne_panels_figure({}, tmp_path / "x.png", "t")


def scores(values) -> pd.DataFrame:
    rows = [(layer, metric, v) for layer, v in enumerate(values) for metric in ("euclidean", "cosine")]
    return pd.DataFrame(rows, columns=["layer", "metric", "accuracy"])


def test_layers_figure_one_series_per_model(tmp_path):
    png = tmp_path / "layers.png"
    models = {
        "m": scores([0.3, 0.4, 0.5]),
        "m__d__dropout": scores([0.3, 0.5, 0.6]),
        "m__d__crops": scores([0.3, 0.6, 0.8]),
    }
    layers_figure(models, png, "euclidean", "per layer")
    data = pd.read_csv(data_path(png))
    assert is_png(png)
    assert list(data["model"].unique()) == list(models)
    assert set(data["metric"]) == {"euclidean"} and len(data) == 9
    assert data.loc[data["model"] == "m__d__crops", "accuracy"].tolist() == [0.3, 0.6, 0.8]


def test_figure_s3_one_panel_per_mteb_block(tmp_path):
    """Per-layer MTEB tables (one row per layer) -> a panel per block, its block mean per layer."""
    from embaug.cli import main

    table = pd.DataFrame(
        {"model": [0, 1, 2], "sts (mean)": [60.0, 70.0, 65.0], "clustering (mean)": [20.0, 25.0, 30.0]}
    ).assign(**{"block average": lambda t: (t["sts (mean)"] + t["clustering (mean)"]) / 2})
    table.to_csv(tmp_path / "base.csv", index=False)
    table.assign(**{"sts (mean)": [61.0, 72.0, 80.0]}).to_csv(tmp_path / "run.csv", index=False)
    png = tmp_path / "s3.png"
    argv = ["figure-layers", "--model", "m", str(tmp_path / "base.csv"), "--model", "m__d__crops"]
    assert main([*argv, str(tmp_path / "run.csv"), "--metric", "mteb-blocks", "--out", str(png)]) == 0
    data = pd.read_csv(data_path(png))
    assert is_png(png) and list(dict.fromkeys(data["metric"])) == ["sts (mean)", "clustering (mean)"]
    run_sts = data[(data["model"] == "m__d__crops") & (data["metric"] == "sts (mean)")]
    assert run_sts["accuracy"].tolist() == pytest.approx([0.61, 0.72, 0.80])
    figure_4c = tmp_path / "4c.png"
    assert main([*argv, str(tmp_path / "run.csv"), "--metric", "mteb", "--out", str(figure_4c)]) == 0
    assert set(pd.read_csv(data_path(figure_4c))["metric"]) == {"mteb"}


def test_layers_figure_missing_metric_raises(tmp_path):
    with pytest.raises(EmbaugError, match="no 'logistic'"):
        layers_figure({"m": scores([0.1])}, tmp_path / "x.png", "logistic", "t")


def test_loss_figure(tmp_path):
    log = pd.DataFrame(
        {
            "step": range(1, 41),
            "loss": np.linspace(3, 1, 40),
            "lr": np.linspace(0, 1e-5, 40),
            "seconds": range(40),
        }
    )
    png = tmp_path / "loss.png"
    loss_figure(log, png, "run")
    data = pd.read_csv(data_path(png))
    assert is_png(png)
    assert list(data.columns) == ["step", "loss", "lr", "loss_smoothed"] and len(data) == 40


def fake_run(tmp_path, name, values, initial=0.2):
    run = tmp_path / name
    run.mkdir()
    log = pd.DataFrame(
        {"step": [1, 2, 3, 4], "loss": [3.0, 2.5, 2.0, 1.5], "lr": 0.0, "seconds": [1, 2, 3, 4]}
    )
    log["knn_accuracy"] = [np.nan, values[0], np.nan, values[1]]
    log.to_csv(run / "train_log.csv", index=False)
    (run / "run.json").write_text(json.dumps({"initial_scores": {"knn_accuracy": initial}}))
    return run


def test_training_curves_from_run_folders(tmp_path):
    crops = fake_run(tmp_path, "m__d__crops", [0.5, 0.7])
    dropout = fake_run(tmp_path, "m__d__dropout", [0.3, 0.4])
    curves = read_curves(
        [
            ("on d", "m__d__crops", str(crops), "knn_accuracy"),
            ("on d", "m__d__dropout", str(dropout), "knn_accuracy"),
        ]
    )
    assert curves.groupby("run")["step"].apply(list).to_dict() == {
        "m__d__crops": [0, 2, 4],
        "m__d__dropout": [0, 2, 4],
    }
    png = tmp_path / "figure1.png"
    curves_figure(curves, png, "Figure 1")
    data = pd.read_csv(data_path(png))
    assert is_png(png) and list(data["run"].unique()) == ["m__d__crops", "m__d__dropout"]
    assert data.loc[data["run"] == "m__d__crops", "value"].tolist() == [0.2, 0.5, 0.7]


def test_training_curves_missing_column_says_what_to_do(tmp_path):
    run = fake_run(tmp_path, "r", [0.1, 0.2])
    with pytest.raises(EmbaugError, match="eval_every"):
        read_curves([("p", "r", str(run), "knn_accuracy_other")])


def test_figure1_mteb_block_average_and_blocks():
    """The paper's Figure 1: per run and step, each block's mean of its tasks, and their average."""
    from embaug.report.figures import block_curves, mteb_task_panel

    rows = []
    for step, scores in ((0, {"A": 0.2, "B": 0.4, "S": 0.6}), (50, {"A": 0.4, "B": 0.6, "S": 0.9})):
        rows += [(mteb_task_panel(task), "run", step, value) for task, value in scores.items()]
    rows.append(("trained and scored on iclr", "run", 50, 0.5))
    curves = pd.DataFrame(rows, columns=["panel", "run", "step", "value"])
    result = block_curves(curves, {"clustering": ["A", "B"], "sts": ["S"]})
    values = result.set_index(["panel", "step"])["value"]
    assert list(dict.fromkeys(result["panel"])) == [
        "MTEB block average", "MTEB clustering (mean)", "MTEB sts (mean)", "trained and scored on iclr"
    ]  # fmt: skip
    assert values[("MTEB clustering (mean)", 50)] == pytest.approx(0.5)
    assert values[("MTEB block average", 0)] == pytest.approx((0.3 + 0.6) / 2)
    assert values[("MTEB block average", 50)] == pytest.approx((0.5 + 0.9) / 2)
    assert values[("trained and scored on iclr", 50)] == 0.5
    assert block_curves(curves.iloc[-1:], {"sts": ["S"]}).equals(curves.iloc[-1:])  # no MTEB curve


def test_figure1_cli_blocks_from_run_logs(tmp_path):
    """`embaug figure-curves --blocks`: the MTEB columns of a run's log become block panels."""
    from embaug.cli import main

    run = fake_run(tmp_path, "m__iclr__crops", [0.5, 0.7])
    log = pd.read_csv(run / "train_log.csv")
    log["mteb_STS16"] = [np.nan, 0.6, np.nan, 0.8]
    log.to_csv(run / "train_log.csv", index=False)
    curves = [("trained and scored on iclr", "knn_accuracy"), ("MTEB STS16 (main score)", "mteb_STS16")]
    args = [arg for panel, column in curves for arg in ("--curve", panel, "m__iclr__crops", str(run), column)]
    png = tmp_path / "figure1.png"
    assert main(["figure-curves", *args, "--blocks", '{"sts": ["STS16"]}', "--out", str(png)]) == 0
    data = pd.read_csv(data_path(png))
    assert list(dict.fromkeys(data["panel"])) == [
        "MTEB block average", "MTEB sts (mean)", "trained and scored on iclr"
    ]  # fmt: skip
    assert data.loc[data["panel"] == "MTEB block average", "value"].tolist() == [0.6, 0.8]
