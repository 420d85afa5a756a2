"""Errors reach the console: a damaged intermediate file gives one line naming it and how to rebuild it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from test_shell_safety import tiny_config, write_data
from test_workflow import output, snakemake

from embaug.cli import main
from embaug.errors import EmbaugError
from embaug.models import load_encoder


def truncated_copy(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target


def test_truncated_parquet_is_one_line(tmp_path, corpus, capsys):
    whole = tmp_path / "whole.parquet"
    corpus.to_parquet(whole)
    broken = truncated_copy(whole, tmp_path / "data" / "test" / "raw" / "docs.parquet")
    assert (
        main(["chunk", "--corpus", str(broken), "--dataset", "docs", "--out", str(tmp_path / "c.parquet")])
        == 1
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"embaug chunk: error: {broken}: ")
    assert f"delete it and rebuild it (snakemake {broken} --force)" in lines[0]
    assert not (tmp_path / "c.parquet").exists()


def test_missing_parquet_is_one_line(tmp_path, capsys):
    assert main(["chunk", "--corpus", "nowhere.parquet", "--dataset", "d", "--out", str(tmp_path / "c")]) == 1
    assert capsys.readouterr().err.strip() == "embaug chunk: error: nowhere.parquet: no such file"


@pytest.mark.parametrize("damage", ["truncated weights", "no weights", "garbage config"])
def test_damaged_model_folder_names_the_folder(tmp_path, tiny_model_dir, monkeypatch, damage):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "models" / "run"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    if damage == "truncated weights":
        truncated_copy(tiny_model_dir / "model.safetensors", weights)
    elif damage == "no weights":
        weights.unlink()
    else:
        (folder / "config.json").write_text("{not json")
    with pytest.raises(EmbaugError) as error:
        load_encoder("results/models/run", "cpu", "run")
    message = str(error.value)
    assert "\n" not in message and message.startswith("results/models/run: cannot load model 'run'")
    assert message.endswith("delete it and rebuild it (snakemake results/models/run --force)")


def test_damaged_user_model_folder_is_not_offered_a_rebuild(tmp_path, tiny_model_dir):
    folder = tmp_path / "my_model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(EmbaugError, match=r"my_model: cannot load model 'mine'") as error:
        load_encoder(str(folder), "cpu", "mine")
    assert "--force" not in str(error.value)


def test_unexpected_error_still_ends_with_the_one_line(tmp_path):
    """A bug (here: a score file that is not a CSV) keeps its traceback, then the usual last line."""
    scores = tmp_path / "scores.csv"
    scores.write_bytes(b"\xff\xfe\x00garbage")
    command = [sys.executable, "-m", "embaug.cli", "table", "--cell", "docs", "base", str(scores),
               "--out-csv", str(tmp_path / "t.csv"), "--out-md", str(tmp_path / "t.md")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" in result.stderr
    assert lines[-1].startswith("embaug table: error: unexpected ") and lines[-1].endswith(
        "(traceback above)"
    )


def test_console_shows_the_failed_jobs_message(tmp_path):
    """show-failed-logs (profiles/default): the job's own line on the console, not only in logs/."""
    files = write_data(tmp_path / "data")
    config = tiny_config(files)
    # a raw file damaged after it was made (e.g. a full disk): chunking it fails
    truncated_copy(files["corpus"], tmp_path / "data" / "test" / "raw" / "docs.parquet")
    result = snakemake(tmp_path, config, "data/test/chunks/docs/n2.parquet")
    assert result.returncode != 0
    expected = "embaug chunk: error: data/test/raw/docs.parquet: "
    assert expected in output(result), output(result)[-3000:]
    assert "snakemake data/test/raw/docs.parquet --force" in output(result)
