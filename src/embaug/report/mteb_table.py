"""The paper's Table 1 (and Table S1): MTEB main scores per model, block means, block average."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import EmbaugError
from ..io import write_csv, write_text

BLOCK_AVERAGE = "block average"


def block_column(block: str) -> str:
    """Column name of a block's mean, e.g. ``STS (mean)``."""
    return f"{block} (mean)"


def mteb_table(
    rows: Sequence[tuple[str, str | Path]],
    blocks: Mapping[str, Sequence[str]],
    splits: Sequence[str] | None = ("test",),
) -> pd.DataFrame:
    """Rows = models (label, folder of ``{task}.json`` result files); columns = tasks, block means, average.

    Scores are main scores in %; a block's mean is over its tasks, the block average over
    the blocks that have tasks (the paper's "block average": mean of block means).
    """
    from ..evaluate.mteb import read_main_score

    blocks = {block: list(tasks) for block, tasks in blocks.items() if tasks}
    if not blocks:
        raise EmbaugError("mteb.blocks lists no task: nothing to tabulate")
    records = []
    for label, folder in rows:
        record: dict[str, float | str] = {"model": label}
        for block, tasks in blocks.items():
            for task in tasks:
                path = Path(folder) / f"{task}.json"
                if not path.exists():
                    raise EmbaugError(f"{path}: no MTEB result for row '{label}', task '{task}'")
                record[task] = 100.0 * read_main_score(path, splits)
            record[block_column(block)] = sum(record[t] for t in tasks) / len(tasks)
        record[BLOCK_AVERAGE] = sum(record[block_column(b)] for b in blocks) / len(blocks)
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("model")


def paper_layout(table: pd.DataFrame, blocks: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Transposed like the paper: tasks grouped by block, each block's mean after its tasks."""
    order = []
    for block, tasks in blocks.items():
        if tasks:
            order += [*tasks, block_column(block)]
    transposed = table[[*order, BLOCK_AVERAGE]].T
    transposed.index.name, transposed.columns.name = "task", None
    return transposed


def write_mteb_table(
    table: pd.DataFrame,
    blocks: Mapping[str, Sequence[str]],
    csv_path: str | Path,
    md_path: str | Path,
    title: str,
) -> None:
    """CSV: one row per model (2 decimals); Markdown: the paper's layout (tasks x models, 1 decimal)."""
    write_csv(table.round(2).reset_index(), csv_path)
    markdown = paper_layout(table, blocks).reset_index().to_markdown(index=False, floatfmt=".1f")
    write_text(f"# {title}\n\n{markdown}\n", md_path)
