"""An interrupted run stops at once: SIGINT or SIGTERM to snakemake alone also stops its jobs.

Snakemake's local executor waits for running jobs when it is interrupted (SIGTERM: "Will exit
after finishing currently running jobs"; SIGINT: its thread pool waits for them), so a signal sent
to the snakemake process alone (``kill PID``, a supervisor, a closed SSH session's SIGHUP aside)
would leave a fine-tuning run going for hours. :func:`stop_jobs_first` makes each of the two
signals first send SIGTERM to the running jobs (the snakemake process's children: each job's
shell ``exec``s its ``embaug`` command), then do what snakemake does with it. The jobs end in
seconds through :func:`embaug.cli.stop_with_parent`'s handler (temporaries removed, a fine-tuning
run's last checkpoint kept), snakemake marks their outputs incomplete and removes its lock, and
the same command continues the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def child_processes(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (Linux ``/proc``; none elsewhere)."""
    children = []
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children += [int(child) for child in tasks.read_text().split()]
    return sorted(set(children))


def stop_jobs_first() -> None:
    """Make SIGINT and SIGTERM to this (snakemake) process send SIGTERM to its running jobs before
    the handler it had (snakemake's, or Python's KeyboardInterrupt) runs."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, partial(_stop_jobs_then, signal.getsignal(signum)))


def _stop_jobs_then(previous: Callable | int | None, signum: int, frame: FrameType | None) -> None:
    """SIGTERM to every child process, then the signal's previous handler."""
    for child in child_processes(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:  # end as the signal would have ended the process
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
