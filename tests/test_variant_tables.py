"""Seed tables (mean, sd, n, paired difference with a t interval) and sweep tables / figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from embaug.cli import main
from embaug.errors import EmbaugError
from embaug.report.seeds import SeedCell, seed_display, seed_table, seed_values, t_interval
from embaug.report.sweeps import sweep_scores, sweep_table


def score_file(path, last: float, layers: int = 2) -> str:
    """A per-layer kNN score file whose last layer scores ``last`` (Euclidean)."""
    rows = [(layer, "euclidean", 10, last if layer == layers else 0.1, 90, 10) for layer in range(layers + 1)]
    rows += [(layers, "cosine", 10, 0.99, 90, 10)]
    pd.DataFrame(rows, columns=["layer", "metric", "k", "accuracy", "n_train", "n_test"]).to_csv(
        path, index=False
    )
    return str(path)


SEED_SCORES = {  # (dataset, column, seed) -> last-layer accuracy
    ("a", "base", "-"): 0.40,
    ("a", "dropout", "42"): 0.50,
    ("a", "dropout", "1"): 0.54,
    ("a", "dropout", "2"): 0.49,
    ("a", "crops", "42"): 0.60,
    ("a", "crops", "1"): 0.66,
    ("a", "crops", "2"): 0.61,
    ("b", "base", "-"): 0.30,
    ("b", "dropout", "42"): 0.20,
    ("b", "dropout", "1"): 0.22,
    ("b", "dropout", "2"): 0.27,
    ("b", "crops", "42"): 0.35,
    ("b", "crops", "1"): 0.31,
    ("b", "crops", "2"): 0.40,
}


@pytest.fixture
def seed_cells(tmp_path) -> list[SeedCell]:
    return [
        SeedCell(row, column, seed, score_file(tmp_path / f"{row}-{column}-{seed}.csv", value))
        for (row, column, seed), value in SEED_SCORES.items()
    ]


def test_seed_table_mean_sd_n_and_paired_difference(seed_cells):
    table = seed_table(seed_values(seed_cells, "euclidean"), ("crops", "dropout"))
    assert table.index.tolist() == ["a", "b", "average"]
    assert list(table.columns) == [
        *[f"{c} {s}" for c in ("base", "dropout", "crops") for s in ("mean", "sd", "n")],
        *[f"crops - dropout {s}" for s in ("mean", "ci low", "ci high", "n")],
    ]
    for row in ("a", "b"):
        for column in ("dropout", "crops"):
            values = 100 * np.array([SEED_SCORES[(row, column, s)] for s in ("42", "1", "2")])
            assert table.loc[row, f"{column} mean"] == pytest.approx(values.mean())
            assert table.loc[row, f"{column} sd"] == pytest.approx(values.std(ddof=1))
            assert table.loc[row, f"{column} n"] == 3
        assert table.loc[row, "base n"] == 1 and np.isnan(table.loc[row, "base sd"])
    # the average row: the per-seed averages over datasets, then their mean and spread
    per_seed = {
        s: 50 * (SEED_SCORES[("a", "crops", s)] + SEED_SCORES[("b", "crops", s)]) for s in ("42", "1", "2")
    }
    assert table.loc["average", "crops mean"] == pytest.approx(np.mean(list(per_seed.values())))
    assert table.loc["average", "crops sd"] == pytest.approx(np.std(list(per_seed.values()), ddof=1))
    # paired by seed: the interval is scipy's t interval of the per-seed differences
    diffs = 100 * np.array(
        [SEED_SCORES[("a", "crops", s)] - SEED_SCORES[("a", "dropout", s)] for s in ("42", "1", "2")]
    )
    low, high = stats.t.interval(0.95, 2, loc=diffs.mean(), scale=diffs.std(ddof=1) / np.sqrt(3))
    assert table.loc["a", "crops - dropout mean"] == pytest.approx(diffs.mean())
    assert (
        table.loc["a", "crops - dropout ci low"],
        table.loc["a", "crops - dropout ci high"],
    ) == pytest.approx((low, high))
    assert table.loc["a", "crops - dropout n"] == 3


def test_seed_display_and_single_seed(seed_cells):
    shown = seed_display(seed_table(seed_values(seed_cells, "euclidean"), ("crops", "dropout")))
    assert list(shown.columns) == ["base", "dropout", "crops", "crops - dropout [95% CI]"]
    assert shown.loc["a", "base"] == "40.0 (n=1)"
    assert shown.loc["a", "crops"] == "62.3 ± 3.2 (n=3)"
    assert shown.loc["a", "crops - dropout [95% CI]"].startswith("+11.3 [")
    one = [c for c in seed_cells if c.seed in ("-", "42")]
    table = seed_table(seed_values(one, "euclidean"), ("crops", "dropout"))
    assert table.loc["a", "crops - dropout n"] == 1 and np.isnan(table.loc["a", "crops - dropout ci low"])
    assert t_interval(np.array([1.0]))[0] != t_interval(np.array([1.0]))[0]  # NaN


def test_seed_cell_given_twice_is_an_error(seed_cells):
    with pytest.raises(EmbaugError, match="given twice"):
        seed_values([*seed_cells, seed_cells[1]], "euclidean")


def test_seeds_table_command_writes_csv_and_markdown(tmp_path, seed_cells):
    args = [x for c in seed_cells for x in ("--cell", c.row, c.column, c.seed, c.scores)]
    out_csv, out_md = tmp_path / "seeds.csv", tmp_path / "seeds.md"
    code = main(["seeds-table", *args, "--difference", "crops", "dropout", "--title", "T",
                 "--out-csv", str(out_csv), "--out-md", str(out_md)])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out_csv).set_index("dataset")
    assert table.loc["b", "dropout mean"] == pytest.approx(23.0)
    assert out_md.read_text().startswith("# T\n\n| dataset")


def test_sweep_table_rows_per_value_and_reference_columns(tmp_path):
    points = [
        ("learning_rate", "1e-05", "crops", score_file(tmp_path / "1.csv", 0.5)),
        ("learning_rate", "2e-05", "crops", score_file(tmp_path / "2.csv", 0.6)),
        ("learning_rate", "1e-05", "dropout", score_file(tmp_path / "3.csv", 0.4)),
        ("learning_rate", "2e-05", "dropout", score_file(tmp_path / "4.csv", 0.45)),
        ("pooling", "mean", "crops", str(tmp_path / "2.csv")),
        ("pooling", "cls", "crops", score_file(tmp_path / "5.csv", 0.55)),
    ]
    references = [("base (not fine-tuned)", "base", score_file(tmp_path / "b.csv", 0.3))]
    scores = sweep_scores(points, references, "euclidean")
    table = sweep_table(scores)
    assert table.index.tolist() == [
        ("learning_rate", "1e-05"), ("learning_rate", "2e-05"), ("pooling", "mean"), ("pooling", "cls")
    ]  # fmt: skip
    assert list(table.columns) == ["crops", "dropout", "base (not fine-tuned)"]
    assert table["crops"].tolist() == pytest.approx([50, 60, 60, 55])
    assert table.loc[("learning_rate", "2e-05"), "dropout"] == pytest.approx(45)
    assert np.isnan(table.loc[("pooling", "cls"), "dropout"])
    assert table["base (not fine-tuned)"].tolist() == pytest.approx([30] * 4)


def test_figure_sweeps_command(tmp_path):
    args = []
    for i, (setting, value) in enumerate(
        [("temperature", "0.05"), ("temperature", "0.1"), ("pooling", "cls")]
    ):
        args += ["--point", setting, value, "crops", score_file(tmp_path / f"{i}.csv", 0.5 + i / 10)]
    args += ["--reference", "base", "base", score_file(tmp_path / "b.csv", 0.3)]
    png, table = tmp_path / "fig.png", tmp_path / "table.csv"
    code = main(
        [
            "figure-sweeps",
            *args,
            "--out",
            str(png),
            "--out-csv",
            str(table),
            "--out-md",
            str(tmp_path / "t.md"),
        ]
    )
    assert code == 0 and png.stat().st_size > 1000
    data = pd.read_csv(tmp_path / "fig.csv")
    assert data["setting"].tolist() == ["temperature", "temperature", "pooling", "reference"]
    assert data["accuracy"].tolist() == pytest.approx([50, 60, 70, 30])
    assert pd.read_csv(table).columns.tolist() == ["setting", "value", "crops", "base"]
