"""The paper's reference tables (workflow/reference) and the ours-beside-paper companion tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from embaug.cli import main
from embaug.errors import EmbaugError
from embaug.report.paper import compare_to_paper, read_table, write_comparison

REFERENCE = Path(__file__).resolve().parents[1] / "workflow" / "reference"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def tiny(tmp_path):
    ours = write(
        tmp_path / "table2_knn.csv",
        "dataset,base,crops,embedding_layer + crops (epochs 10),tfidf\n"
        "iclr,38.0,57.9,55.3,59.2\narxiv,37.8,44.2,40.0,41.0\ntoy,10.0,20.0,30.0,40.0\n",
    )
    paper = write(
        tmp_path / "paper.csv",
        "# a comment line\ndataset,base,crops,embedding_layer + crops,sbert\niclr,37.4,58.9,57.3,63.3\n"
        "arxiv,37.8,44.2,43.4,46.2\n",
    )
    return ours, paper


def test_cells_ours_paper_difference(tiny):
    ours, paper = tiny
    cells = compare_to_paper(read_table(ours), read_table(paper)).set_index(["dataset", "column"])
    assert cells.loc[("iclr", "base")].tolist() == pytest.approx([38.0, 37.4, 0.6])
    assert cells.loc[("iclr", "crops"), "difference"] == pytest.approx(-1.0)
    # a label's "(settings)" is ignored when matching the paper's column
    assert cells.loc[("arxiv", "embedding_layer + crops (epochs 10)"), "paper"] == pytest.approx(43.4)
    # cells the paper lacks (a column, a row) stay empty; paper-only columns (sbert) are not added
    assert cells.loc[("iclr", "tfidf"), ["paper", "difference"]].isna().all()
    assert cells.loc[("toy", "base"), ["paper", "difference"]].isna().all()
    assert "sbert" not in cells.index.get_level_values("column")
    assert len(cells) == 12


def test_written_files(tiny, tmp_path):
    ours, paper = tiny
    csv, md = tmp_path / "out.csv", tmp_path / "out.md"
    write_comparison(ours, paper, csv, md, "Table 2 beside the paper")
    cells = pd.read_csv(csv)
    assert cells.columns.tolist() == ["dataset", "column", "ours", "paper", "difference"]
    text = md.read_text()
    assert text.startswith("# Table 2 beside the paper")
    assert "38.0 / 37.4 (+0.6)" in text and "59.2 / —" in text
    # 6 cells with a paper value, |differences| 0.6, 1.0, 2.0, 0, 0, 3.4
    assert "6 of 12 cells have a paper value; mean |difference| 1.2, largest 3.4" in text


def test_cli_stage(tiny, tmp_path, capsys):
    ours, paper = tiny
    out = tmp_path / "o.csv"
    args = ["vs-paper", "--ours", str(ours), "--paper", str(paper), "--out-csv", str(out)]
    assert main([*args, "--out-md", str(tmp_path / "o.md")]) == 0
    assert pd.read_csv(out)["paper"].notna().sum() == 6


def test_different_row_keys_are_an_error(tmp_path):
    ours = write(tmp_path / "s3.csv", "dataset,model,raw_euclidean\niclr,mpnet,37.0\n")
    paper = write(tmp_path / "p.csv", "dataset,raw_euclidean\niclr,37.4\n")
    with pytest.raises(EmbaugError, match=r"keyed by \['dataset'\], ours by \['dataset', 'model'\]"):
        compare_to_paper(read_table(ours), read_table(paper))


@pytest.mark.parametrize("name", ["table2_knn", "tableS4", "tableS6"])
def test_reference_averages_are_the_paper_row_means(name):
    """A transcription check: each printed average is the mean of the six datasets (to rounding)."""
    table = read_table(REFERENCE / f"paper_{name}.csv")
    assert table.index.tolist()[-1] == "average" and len(table) == 7
    means = table.drop(index="average").mean()
    assert (means - table.loc["average"]).abs().max() <= 0.051


def test_reference_table1_block_means():
    """Table S1's block means agree with Table 1's tasks; the block average is their mean."""
    table = read_table(REFERENCE / "paper_table1_mteb.csv")
    blocks = [c for c in table.columns if c.endswith("(mean)")]
    assert len(blocks) == 5 and table.shape[1] == 19 + 5 + 1
    tasks = table.columns.get_loc
    for row in ("mpnet", "mpnet + dropout", "mpnet + crops"):
        start = 0
        for block in blocks:
            members = table.columns[start : tasks(block)]
            assert abs(table.loc[row, members].mean() - table.loc[row, block]) <= 0.06, (row, block)
            start = tasks(block) + 1
        assert abs(table.loc[row, blocks].mean() - table.loc[row, "block average"]) <= 0.06


def test_every_reference_has_a_source_comment():
    for path in REFERENCE.glob("paper_*.csv"):
        assert path.read_text().startswith("# Paper Table"), path
        read_table(path)
