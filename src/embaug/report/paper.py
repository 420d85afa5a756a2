"""A table of this project beside the paper's own numbers: ours, paper and difference per cell."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import EmbaugError
from ..io import write_csv, write_text

#: Training settings a column label carries, e.g. "embedding_layer + crops (epochs 10)".
SETTINGS_SUFFIX = re.compile(r"\s*\([^()]*\)$")
#: A reference file's note on some of its columns: ``# note col_a, col_b: why they cannot match``.
NOTE_LINE = re.compile(r"^#\s*note\s+([^:]+):\s*(.+?)\s*$")
#: The row of the mean over datasets; it compares only over the same datasets.
AVERAGE = "average"


def read_table(path: str | Path) -> pd.DataFrame:
    """A table CSV (``#`` lines are comments) indexed by its text columns, values as floats."""
    table = pd.read_csv(path, comment="#")
    keys = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if not keys:
        raise EmbaugError(f"{path}: no text column to identify the rows (e.g. dataset, model)")
    if len(keys) == len(table.columns):
        raise EmbaugError(f"{path}: no numeric column")
    return table.astype({key: str for key in keys}).set_index(keys).astype(float)


def read_notes(path: str | Path) -> dict[str, str]:
    """The notes of a reference file (``# note col_a, col_b: text`` lines): column -> text."""
    notes = {}
    for line in Path(path).read_text().splitlines():
        found = NOTE_LINE.match(line)
        if found:
            notes.update({column.strip(): found[2] for column in found[1].split(",") if column.strip()})
    return notes


def _datasets(table: pd.DataFrame) -> set[str]:
    """The first row key of every row but the average (the datasets of a table keyed by dataset)."""
    return {key[0] if isinstance(key, tuple) else key for key in table.index} - {AVERAGE}


def compare_to_paper(
    ours: pd.DataFrame, paper: pd.DataFrame, notes: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per cell of ``ours``: its row keys, ``column``, ``ours``, ``paper``, ``difference``,
    ``note``.

    Rows match by their keys, columns by name with a trailing "(settings)" of ours ignored; a cell
    the paper lacks has an empty ``paper`` and ``difference`` (ours - paper, percentage points).
    The ``average`` row has a paper value only where both tables average the same datasets. ``note``
    is the reference file's note on the cell's column (:func:`read_notes`), else empty.
    """
    if list(ours.index.names) != list(paper.index.names):
        raise EmbaugError(
            f"the paper's table is keyed by {list(paper.index.names)}, ours by {list(ours.index.names)}"
        )
    notes = notes or {}
    same_datasets = _datasets(ours) == _datasets(paper)
    records = []
    for key, row in ours.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        comparable = key in paper.index and (same_datasets or keys[0] != AVERAGE)
        for column, value in row.items():
            paper_column = SETTINGS_SUFFIX.sub("", str(column))
            reference = (
                paper.at[key, paper_column] if comparable and paper_column in paper.columns else float("nan")
            )
            records.append((*keys, column, value, reference, notes.get(paper_column, "")))
    cells = pd.DataFrame.from_records(records, columns=[*ours.index.names, "column", "ours", "paper", "note"])
    cells.insert(len(cells.columns) - 1, "difference", cells["ours"] - cells["paper"])
    return cells


def side_by_side(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells in ours' layout, each as text "ours / paper (difference)" ("ours / —" without paper);
    a cell with a note ends in its mark, ``[1]``, ``[2]``, ... in the order of :func:`note_marks`."""
    keys = [c for c in cells.columns if c not in ("column", "ours", "paper", "difference", "note")]
    marks = note_marks(cells)

    def text(cell: pd.Series) -> str:
        ours = "—" if pd.isna(cell["ours"]) else f"{cell['ours']:.1f}"
        mark = f" [{marks[cell['note']]}]" if cell.get("note") else ""
        if pd.isna(cell["paper"]):
            return f"{ours} / —{mark}"
        difference = "" if pd.isna(cell["difference"]) else f" ({cell['difference']:+.1f})"
        return f"{ours} / {cell['paper']:.1f}{difference}{mark}"

    shown = cells.assign(text=cells.apply(text, axis=1))
    wide = shown.pivot(index=keys, columns="column", values="text")
    rows = shown[keys].drop_duplicates().set_index(keys).index  # ours' order, not sorted
    return wide.reindex(index=rows, columns=shown["column"].unique())


def note_marks(cells: pd.DataFrame) -> dict[str, int]:
    """Each distinct note of the cells -> its number, in first-seen order."""
    notes = cells["note"] if "note" in cells else pd.Series(dtype=str)
    return {note: number for number, note in enumerate(dict.fromkeys(n for n in notes if n), start=1)}


def write_comparison(
    ours_path: str | Path, paper_path: str | Path, csv_path: str | Path, md_path: str | Path, title: str
) -> pd.DataFrame:
    """Compare a table file with the paper's; write the cells (CSV) and the side-by-side view (Markdown)."""
    cells = compare_to_paper(read_table(ours_path), read_table(paper_path), read_notes(paper_path))
    write_csv(cells.round(2), csv_path)
    wide = side_by_side(cells).reset_index()
    wide.columns.name = None
    summary = cells["difference"].abs().dropna()
    note = (
        f"{len(summary)} of {len(cells)} cells have a paper value; mean |difference| "
        f"{summary.mean():.1f}, largest {summary.max():.1f} percentage points."
        if len(summary)
        else f"None of the {len(cells)} cells has a paper value."
    )
    markdown = wide.to_markdown(index=False)
    remarks = "".join(f"\n[{number}] {text}\n" for text, number in note_marks(cells).items())
    write_text(
        f"# {title}\n\nEach cell: ours / paper (ours - paper).\n{note}\n\n{markdown}\n{remarks}", md_path
    )
    return cells
