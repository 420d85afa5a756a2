"""Release the working-directory lock that a killed snakemake left behind.

Snakemake locks the files it is making (``.snakemake/locks/``) and removes the lock when it ends,
on Ctrl-C and SIGTERM too. A SIGKILL (``kill -9``, the out-of-memory killer, a closed login
session on a cluster) leaves the lock, and the next run stops with "Directory cannot be locked"
until ``snakemake --unlock``. Snakemake's lock files record no owner, so the workflow keeps a
record per running snakemake process (``.snakemake/embaug-owners/<host>-<pid>-<start>``): locks
found while no recorded process is alive are stale, and are removed before Snakemake locks again.
Hand-written: Snakemake has no owner check of its own, and psutil is not a dependency.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path

OWNERS = "embaug-owners"


def _start_time(pid: int) -> str:
    """The start time of a process (clock ticks since boot, Linux), "" where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19]  # field 22 of stat; the first two (pid, comm) are cut off above


def _alive(pid: int, start: str) -> bool:
    """Whether the process ``pid`` that started at ``start`` is still running (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return not start or _start_time(pid) in ("", start)


def _record_is_live(record: Path, host: str) -> bool:
    """A record of another host is taken as live: its process cannot be checked from here."""
    parts = record.name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return True
    owner_host, pid, start = parts
    return owner_host != host or _alive(int(pid), start)


def release_stale_locks(state_dir: Path = Path(".snakemake")) -> list[Path]:
    """Record this process as a snakemake owner of ``state_dir``; first remove locks that no
    recorded owner holds any more (their snakemake was killed). Returns the removed lock files."""
    host = socket.gethostname().replace("-", "_")
    owners = state_dir / OWNERS
    owners.mkdir(parents=True, exist_ok=True)
    records = list(owners.iterdir())
    live = [record for record in records if _record_is_live(record, host)]
    for record in set(records) - set(live):
        record.unlink(missing_ok=True)
    removed = []
    if not live:
        for lock in sorted((state_dir / "locks").glob("*.lock")):
            lock.unlink(missing_ok=True)
            removed.append(lock)
    pid = os.getpid()
    mine = owners / f"{host}-{pid}-{_start_time(pid)}"
    mine.touch()
    atexit.register(mine.unlink, missing_ok=True)
    return removed
