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
    values = cells.loc[("iclr", "base"), ["ours", "paper", "difference"]].tolist()
    assert values == pytest.approx([38.0, 37.4, 0.6])
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
    assert cells.columns.tolist() == ["dataset", "column", "ours", "paper", "difference", "note"]
    assert cells["note"].isna().all()  # the reference has no note
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


def test_average_row_compares_only_over_the_same_datasets(tmp_path):
    paper = write(tmp_path / "p.csv", "dataset,crops\niclr,58.9\narxiv,44.2\naverage,51.6\n")
    same = write(tmp_path / "same.csv", "dataset,crops\narxiv,44.0\niclr,59.0\naverage,51.5\n")
    fewer = write(tmp_path / "fewer.csv", "dataset,crops\niclr,59.0\naverage,59.0\n")
    cells = compare_to_paper(read_table(same), read_table(paper)).set_index("dataset")
    assert cells.loc["average", "difference"] == pytest.approx(-0.1)
    cells = compare_to_paper(read_table(fewer), read_table(paper)).set_index("dataset")
    assert cells.loc["iclr", "paper"] == pytest.approx(58.9)
    assert cells.loc["average", ["paper", "difference"]].isna().all()  # not the paper's six datasets


def test_reference_notes_are_written_beside_the_cells(tmp_path):
    paper = write(
        tmp_path / "p.csv",
        "# Paper Table S3\n# note centred_euclidean, whitened_euclidean: other splits than raw.\n"
        "dataset,model,raw_euclidean,centred_euclidean,whitened_euclidean\niclr,mpnet,37.4,37.0,5.5\n",
    )
    ours = write(
        tmp_path / "s3.csv",
        "dataset,model,raw_euclidean,centred_euclidean,whitened_euclidean\niclr,mpnet,37.4,37.4,17.6\n",
    )
    csv, md = tmp_path / "o.csv", tmp_path / "o.md"
    cells = write_comparison(ours, paper, csv, md, "Table S3").set_index("column")
    assert cells.loc["raw_euclidean", "note"] == ""
    assert cells.loc["whitened_euclidean", "note"] == "other splits than raw."
    assert pd.read_csv(csv).set_index("column").loc["centred_euclidean", "note"] == "other splits than raw."
    text = md.read_text()
    assert "37.4 / 37.0 (+0.4) [1]" in text and "37.4 / 37.4 (+0.0) |" in text
    assert "\n[1] other splits than raw.\n" in text


def test_table_s3_and_s7_references_say_which_cells_cannot_match():
    from embaug.report.paper import read_notes

    s3 = read_notes(REFERENCE / "paper_tableS3.csv")
    assert set(s3) == {"centred_euclidean", "centred_cosine", "whitened_euclidean", "whitened_cosine"}
    assert "np.random.seed" in s3["centred_euclidean"]
    assert set(read_notes(REFERENCE / "paper_tableS7.csv")) == {"cls", "sep"}


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
