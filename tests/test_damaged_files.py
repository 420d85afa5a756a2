"""Errors reach the console: a damaged intermediate file gives one line naming it and how to rebuild it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


# --- damaged files met while the workflow sizes its jobs (DAG time, before any job) ---------------


def test_sizing_a_truncated_parquet_is_one_line(tmp_path, corpus, monkeypatch):
    from embaug import resources

    monkeypatch.chdir(tmp_path)
    whole = tmp_path / "whole.parquet"
    corpus.to_parquet(whole)
    broken = truncated_copy(whole, tmp_path / "data" / "raw" / "docs.parquet")
    for size in (resources.corpus_size, resources.table_text_size, resources.label_count):
        with pytest.raises(EmbaugError) as error:
            size(broken.relative_to(tmp_path))
        message = str(error.value)
        assert "\n" not in message and message.startswith("data/raw/docs.parquet: Parquet magic bytes")
        assert message.endswith(
            "the Parquet file is incomplete or corrupt: delete it and rebuild it "
            "(snakemake data/raw/docs.parquet --force)"
        )


def test_sizing_an_unreadable_model_config_names_the_folder(tmp_path, monkeypatch):
    from embaug import resources

    monkeypatch.chdir(tmp_path)
    for folder in (Path("results/models/run"), tmp_path / "mine"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{not json")
        with pytest.raises(EmbaugError) as error:
            resources.model_shape(folder)
        assert str(error.value).startswith(
            f"{folder}: cannot read {folder / 'config.json'} (JSONDecodeError: "
        )
    assert str(error.value).endswith(")")  # the user's own folder: no rebuild offered
    (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    assert resources.model_shape(folder) is None  # no BERT-style fields: the default shape


def test_workflow_stops_before_any_job_on_a_damaged_input_it_sizes(tmp_path):
    """Sizing the embed job reads the raw table's footer: a truncated one stops the dry run (in a real
    run, the first job that reads it fails with the same line, test_console_shows_the_failed_jobs_message)."""
    files = write_data(tmp_path / "data")
    broken = truncated_copy(files["corpus"], tmp_path / "data" / "test" / "raw" / "docs.parquet")
    damaged_bytes = broken.read_bytes()
    earlier = tmp_path / "results" / "test" / "scores" / "knn" / "earlier.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("layer,accuracy\n0,50\n")
    result = snakemake(tmp_path, tiny_config(files), "results/test/embeddings/tiny/docs", "--dry-run")
    text = output(result)
    assert result.returncode != 0
    expected = (
        "EmbaugError: data/test/raw/docs.parquet: Parquet magic bytes not found in footer. Either the file "
        "is corrupted or this is not a parquet file; the Parquet file is incomplete or corrupt: delete it "
        "and rebuild it (snakemake data/test/raw/docs.parquet --force)"
    )
    assert expected in text, text[-3000:]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "results" / "test" / "base_models").exists()
    assert broken.read_bytes() == damaged_bytes and earlier.read_text() == "layer,accuracy\n0,50\n"


# --- a full disk, a folder that cannot be written -------------------------------------------------


def _failing(code: int, library_message: bool = False):
    """A writer that fails as a full or read-only file system makes it fail (as an OSError with its
    errno, or as a library's RuntimeError whose message carries it, like safetensors')."""

    def write(*args, **kwargs):
        if library_message:
            raise RuntimeError(
                f"Error while serializing: IoError(Os {{ code: {code}, message: ... }}) (os error {code})"
            )
        raise OSError(code, os.strerror(code))

    return write


@pytest.mark.parametrize(
    ("code", "library_message", "message"),
    [
        (errno.ENOSPC, False, "cannot write it (no space left on the device, in {folder}); free space there "
         "and rerun (nothing was written: the earlier outputs are as they were)"),
        (errno.ENOSPC, True, "cannot write it (no space left on the device, in {folder}); free space"),
        (errno.EROFS, False, "cannot write it (read-only file system, in {folder}); make it writable"),
        (errno.EACCES, False, "cannot write it (permission denied, in {folder}); make it writable"),
    ],
)  # fmt: skip
def test_full_disk_or_read_only_folder_is_one_line_naming_path_and_stage(
    tmp_path, corpus, capsys, monkeypatch, code, library_message, message
):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    out = tmp_path / "data" / "chunks" / "docs" / "n2.parquet"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"the earlier chunks")
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq.ParquetWriter, "write_table", _failing(code, library_message))
    assert main(["chunk", "--corpus", str(raw), "--dataset", "docs", "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    expected = f"embaug chunk: error: {out}: " + message.format(folder=out.parent.resolve())
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert out.read_bytes() == b"the earlier chunks"
    assert sorted(p.name for p in out.parent.iterdir()) == ["n2.parquet"]  # no temporary left


def test_a_results_folder_that_cannot_be_created_is_one_line(tmp_path, capsys, monkeypatch, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    real_mkdir = Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if "results" in self.parts:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "results"))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_mkdir)
    out = tmp_path / "results" / "chunks.parquet"
    assert main(["chunk", "--corpus", str(raw), "--dataset", "docs", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"embaug chunk: error: {out}: cannot write it (read-only file system, in {out.parent.resolve()}); "
        "make it writable and rerun (nothing was written: the earlier outputs are as they were)"
    )


def test_an_unreadable_input_is_not_reported_as_a_write_error(tmp_path):
    from embaug.io import cannot_write

    error = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "inputs" / "raw.parquet"))
    assert cannot_write(tmp_path / "results" / "x.csv", error) is None
    assert cannot_write(tmp_path / "results" / "x.csv", ValueError("bad value")) is None


def test_embed_on_a_full_disk_fails_before_writing_naming_the_store(
    tmp_path, corpus, capsys, monkeypatch, tiny_model_dir
):
    """The store's layer files are reserved up front: a full disk is one line, not a SIGBUS mid-write."""
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    store = tmp_path / "results" / "embeddings" / "tiny" / "docs"
    store.mkdir(parents=True)
    (store / "meta.json").write_text("the earlier store")
    monkeypatch.setattr(os, "posix_fallocate", _failing(errno.ENOSPC))
    args = [
        "embed",
        "--model",
        str(tiny_model_dir),
        "--corpus",
        str(raw),
        "--device",
        "cpu",
        "--out",
        str(store),
    ]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == (
        f"embaug embed: error: {store}: cannot write it (no space left on the device, in "
        f"{store.parent.resolve()}); free space there and rerun (nothing was written: the earlier outputs "
        "are as they were)"
    )
    assert (store / "meta.json").read_text() == "the earlier store"
    assert sorted(p.name for p in store.parent.iterdir()) == ["docs"]
