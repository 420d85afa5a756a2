"""No orphans: a job whose snakemake is killed (SIGKILL) stops too (Linux parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_shell_safety import tiny_config, write_data
from test_workflow import REPO_ROOT

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal: Linux only"
)


def embaug_processes(workdir: Path) -> list[int]:
    """Pids of `embaug` processes running in ``workdir``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if cwd == str(workdir) and any(part.endswith(b"/embaug") for part in command[:2]):
            found.append(int(proc.name))
    return found


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_killed_snakemake_takes_its_job_along(tmp_path):
    """The tiny study with a fine-tuning of 1000 epochs: SIGKILL snakemake while it trains (~40 s)."""
    files = write_data(tmp_path / "data")
    config = tiny_config(files, training={"batch_size": 4, "max_length": 32, "epochs": 1000, "eval_every": 0})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "results/test/models/tiny__docs__crops", "-s",
               str(REPO_ROOT / "Snakefile"), "--cores", "1", "--configfile", "config.yaml"]  # fmt: skip
    snakemake = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = tmp_path / "logs" / "test" / "finetune" / "tiny__docs__crops.log"
    try:
        assert wait_for(lambda: log.exists() or snakemake.poll() is not None, 180)
        assert snakemake.poll() is None, "snakemake stopped before fine-tuning"
        assert wait_for(lambda: embaug_processes(tmp_path), 10)
        time.sleep(3)  # into training
        os.kill(snakemake.pid, signal.SIGKILL)
        snakemake.wait()
        assert wait_for(lambda: not embaug_processes(tmp_path), 15), "the job outlived snakemake"
    finally:
        for pid in embaug_processes(tmp_path):
            os.kill(pid, signal.SIGKILL)
    assert not (tmp_path / "results" / "test" / "models" / "tiny__docs__crops").exists()
    # what docs/troubleshooting.md says to run next: unlock, then the rerun finishes the job
    unlock = subprocess.run([*command, "--unlock"], cwd=tmp_path, env=env, capture_output=True, check=False)
    assert unlock.returncode == 0
