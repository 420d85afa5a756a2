"""Table 2 from per-layer score files."""

from __future__ import annotations

import pandas as pd
import pytest

from embaug.errors import EmbaugError
from embaug.report.tables import Cell, last_layer_score, score_table, write_table


def scores_file(path, rows):
    pd.DataFrame(rows, columns=["layer", "metric", "accuracy"]).to_csv(path, index=False)
    return str(path)


def test_last_layer_is_the_highest_layer_not_the_last_row(tmp_path):
    path = scores_file(
        tmp_path / "s.csv", [(12, "euclidean", 0.4), (0, "euclidean", 0.9), (5, "euclidean", 0.7)]
    )
    assert last_layer_score(path, "euclidean") == pytest.approx(40.0)


def test_missing_metric_names_file_and_metric(tmp_path):
    path = scores_file(tmp_path / "s.csv", [(0, "cosine", 0.4)])
    with pytest.raises(EmbaugError, match=r"s\.csv: no rows for metric 'euclidean'"):
        last_layer_score(path, "euclidean")


def test_score_table_order_and_average(tmp_path):
    cells = []
    values = {("iclr", "base"): 0.4, ("iclr", "dropout"): 0.5, ("iclr", "crops"): 0.6, ("arxiv", "base"): 0.2}
    values |= {("arxiv", "dropout"): 0.3, ("arxiv", "crops"): 0.5}
    for i, ((row, column), value) in enumerate(values.items()):
        path = scores_file(tmp_path / f"{i}.csv", [(0, "euclidean", 0.0), (1, "euclidean", value)])
        cells.append(Cell(row, column, path))
    table = score_table(cells, "euclidean")
    assert table.index.tolist() == ["iclr", "arxiv", "average"]  # first-seen order, not sorted
    assert table.columns.tolist() == ["base", "dropout", "crops"]
    assert table.index.name == "dataset"
    assert table.loc["average"].tolist() == pytest.approx([30.0, 40.0, 55.0])
    assert table.loc["arxiv", "crops"] == pytest.approx(50.0)

    write_table(table, tmp_path / "t.csv", tmp_path / "t.md", "kNN accuracy (%)")
    written = pd.read_csv(tmp_path / "t.csv")
    assert list(written.columns) == ["dataset", "base", "dropout", "crops"]
    assert written["dataset"].tolist() == ["iclr", "arxiv", "average"]
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[0] == "# kNN accuracy (%)" and md[1] == ""
    assert md[2].replace(" ", "") == "|dataset|base|dropout|crops|"
    assert md[-1].replace(" ", "") == "|average|30.0|40.0|55.0|"
