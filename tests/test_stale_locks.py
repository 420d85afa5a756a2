"""A lock left by a killed snakemake is released by the next run; a live one's is kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from embaug.stale_locks import OWNERS, release_stale_locks

OWNER = """
import sys, time
from pathlib import Path
from embaug.stale_locks import release_stale_locks
release_stale_locks(Path(sys.argv[1]))
(Path(sys.argv[1]) / "locks").mkdir(exist_ok=True)
(Path(sys.argv[1]) / "locks" / "0.output.lock").write_text("results/x")
print("locked", flush=True)
time.sleep(120)
"""


def start_owner(state: Path) -> subprocess.Popen:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(state)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "locked"
    return owner


def test_lock_of_a_running_snakemake_is_kept(tmp_path):
    owner = start_owner(tmp_path)
    try:
        assert release_stale_locks(tmp_path) == []
        assert (tmp_path / "locks" / "0.output.lock").exists()
        assert len(list((tmp_path / OWNERS).iterdir())) == 2  # the owner and this process
    finally:
        owner.kill()
        owner.wait()


def test_lock_of_a_killed_snakemake_is_released(tmp_path):
    owner = start_owner(tmp_path)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert release_stale_locks(tmp_path) == [tmp_path / "locks" / "0.output.lock"]
    assert not (tmp_path / "locks" / "0.output.lock").exists()
    records = [record.name for record in (tmp_path / OWNERS).iterdir()]
    assert records and all(f"-{owner.pid}-" not in name for name in records)  # the dead one is gone


def test_owner_record_is_removed_when_the_process_ends(tmp_path):
    owner = subprocess.run(
        [sys.executable, "-c", f"from pathlib import Path; from embaug.stale_locks import "
         f"release_stale_locks; release_stale_locks(Path({str(tmp_path)!r}))"],
        check=True, timeout=60,
    )  # fmt: skip
    assert owner.returncode == 0
    assert list((tmp_path / OWNERS).iterdir()) == []


def test_record_of_another_host_counts_as_live(tmp_path):
    """A snakemake on another login node (shared file system) cannot be checked: its lock stays."""
    (tmp_path / OWNERS).mkdir()
    (tmp_path / OWNERS / f"otherhost-1-{int(time.time())}").touch()
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "0.input.lock").touch()
    assert release_stale_locks(tmp_path) == []
    assert (tmp_path / "locks" / "0.input.lock").exists()
