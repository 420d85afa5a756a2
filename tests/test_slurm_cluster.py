"""The workflow on a real one-node SLURM cluster (tests/cluster/start_slurm.sh), through the shipped
profile `profiles/slurm`: `python -m pytest -m slurm` (needs root: it installs and starts SLURM).

The test cluster's account and partitions are given as the flags a user of another cluster would
pass (docs/cluster.md); the shipped profile is not edited. Where SLURM cannot start, the tests
fail with the start script's message: they are never skipped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter

import pandas as pd
import pytest
from test_workflow import REPO_ROOT, output, snakemake, test_config

pytestmark = pytest.mark.slurm

PROFILE = REPO_ROOT / "profiles" / "slurm"
START = REPO_ROOT / "tests" / "cluster" / "start_slurm.sh"
ACCOUNT = "embaug"
# the test cluster's account and CPU partition (its GPU partition is `gpu`, as in the profile)
CLUSTER = [
    "--profile", str(PROFILE),
    "--default-resources", f"slurm_account={ACCOUNT}", "slurm_partition=cpu", "mem_mb=4000", "runtime=60",
    # jobs of seconds: check their state every 5 s (the defaults suit jobs of hours)
    "--slurm-init-seconds-before-status-checks", "5", "--seconds-between-status-checks", "5",
]  # fmt: skip
TABLE = "results/test/tables/table2_knn.csv"
MTEB_TARGETS = ["results/test/tables/table1_mteb.csv", "results/test/figures/figure4c_mteb_layers.png"]
RUN = "tiny__bbc__crops"


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The running test cluster (started, or found running, by the repository's script)."""
    result = subprocess.run(["bash", str(START), "--env"], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"SLURM did not start ({START.name}): {(result.stderr or result.stdout)[-3000:]}")
    saved = dict(os.environ)
    os.environ.update(dict(re.findall(r"export (\w+)=(\S+)", result.stdout)))
    yield
    os.environ.clear()
    os.environ.update(saved)


def submitted_jobs(text: str) -> dict[str, str]:
    """SLURM job id -> the rule (or group) it runs, from the plugin's submission lines."""
    jobs = {}
    for job_id, log in re.findall(r"SLURM jobid (\d+) \(log: (\S+?)\)", text):
        jobs[job_id] = re.search(r"slurm_logs/(?:rule|group)_([^/]+)", log).group(1)
    return jobs


def accounting(job_ids) -> pd.DataFrame:
    """sacct's record of the jobs (allocations only): state and the requested CPUs, memory, time."""
    fields = ["JobID", "State", "Partition", "ReqCPUS", "ReqMem", "Timelimit", "ReqTRES"]
    result = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rows = [line.split("|") for line in result.stdout.strip().splitlines()]
    return pd.DataFrame(rows, columns=fields).set_index("JobID")


def mem_mb(value: str) -> int:
    """sacct's ReqMem (e.g. `4000M`, `2G`) in MB."""
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?)n?", value).groups()
    return round(float(number) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[unit])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The .test study with its MTEB table and per-layer figure, on the cluster."""
    workdir = tmp_path_factory.mktemp("cluster_study")
    started = time.monotonic()
    result = snakemake(workdir, test_config(), *CLUSTER, TABLE, *MTEB_TARGETS, timeout=2400)
    assert result.returncode == 0, output(result)[-6000:]
    return workdir, output(result), time.monotonic() - started


def test_every_job_is_an_sbatch_job_that_completed(study):
    workdir, text, seconds = study
    jobs = submitted_jobs(text)
    print(f"cluster run: {len(jobs)} sbatch jobs in {seconds:.0f} s")
    assert Counter(jobs.values()) == Counter(
        download=1, check_dataset=1, chunk=1, init_model=1, finetune=2, embed=3, knn=3,
        # one group job per model: its group (mteb_{model}) and the rules inside (mteb, mteb_layers)
        mteb_tiny_mteb_mteb_layers=1, mteb_tiny__bbc__dropout_mteb_mteb_layers=1,
        mteb_tiny__bbc__crops_mteb_mteb_layers=1,
    )  # fmt: skip
    sacct = accounting(jobs)
    assert set(sacct.index) == set(jobs)
    assert (sacct["State"] == "COMPLETED").all(), sacct
    gpu = sacct.loc[[j for j, rule in jobs.items() if rule in {"finetune", "embed", "knn"} or "mteb" in rule]]
    assert (gpu["Partition"] == "gpu").all() and gpu["ReqTRES"].str.contains("gres/gpu=1").all(), gpu
    cpu = sacct.loc[[j for j, rule in jobs.items() if rule in {"download", "chunk", "check_dataset"}]]
    assert (cpu["Partition"] == "cpu").all() and not cpu["ReqTRES"].str.contains("gpu").any(), cpu


def test_tables_and_figures_ran_on_the_submitting_host(study):
    workdir, text, _ = study
    assert not {"score_table", "mteb_table", "figure4c_mteb_layers"} & set(submitted_jobs(text).values())
    assert "localrule score_table:" in text and "localrule mteb_table:" in text
    assert (workdir / TABLE).exists() and (workdir / MTEB_TARGETS[1]).exists()


def test_mteb_jobs_of_a_model_share_one_sbatch_job(study):
    """mteb (Table 1) and mteb_layers (Figure 4c) of one model: one group job, one allocation."""
    workdir, text, _ = study
    groups = sorted(rule for rule in submitted_jobs(text).values() if rule.startswith("mteb"))
    models = ["tiny", "tiny__bbc__crops", "tiny__bbc__dropout"]
    assert groups == sorted(f"mteb_{model}_mteb_mteb_layers" for model in models)
    assert text.count("localrule mteb_table:") == 1
    assert (workdir / "results/test/mteb/tiny/STS16.json").exists()
    assert (workdir / "results/test/mteb/tiny/layer2/STS16.json").exists()


def test_cluster_results_equal_a_local_run(study, tmp_path):
    workdir, _, _ = study
    local = snakemake(tmp_path, test_config(), TABLE)
    assert local.returncode == 0, output(local)[-4000:]
    pd.testing.assert_frame_equal(pd.read_csv(workdir / TABLE), pd.read_csv(tmp_path / TABLE))


def test_a_job_killed_for_memory_is_resubmitted_with_more(tmp_path):
    """init_model asks for 300 MB on its first attempt (too little for torch and the snakemake that
    runs it on the node): SLURM kills it, the profile's retry asks for 8 times as much, and the job
    completes."""
    result = snakemake(
        tmp_path, test_config(), *CLUSTER, "results/test/base_models/tiny",
        "--set-resources", "init_model:mem_mb=300*attempt**3", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, output(result)[-4000:]
    jobs = {job: rule for job, rule in submitted_jobs(output(result)).items() if rule == "init_model"}
    sacct = accounting(jobs).sort_index(key=lambda ids: ids.astype(int))
    print(sacct.to_string())
    # without cgroups SLURM's memory watchdog (jobacct_gather) kills the job: FAILED, not OUT_OF_MEMORY
    assert list(sacct["State"]) == ["FAILED", "COMPLETED"], sacct
    assert [mem_mb(value) for value in sacct["ReqMem"]] == [300, 2400]


def running_jobs() -> list[str]:
    result = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_cancelled_finetuning_resumes_from_its_checkpoint(tmp_path):
    """scancel the fine-tuning job and SIGKILL the snakemake that submitted it; the same command
    again needs no --unlock, resumes from the checkpoint and makes the model an uninterrupted run
    makes."""
    config = test_config()
    config["training"].update(epochs=60, checkpoint_every=5)
    target = f"results/test/models/{RUN}"
    first = tmp_path / "interrupted"
    first.mkdir()
    snakemake(first, config, "-n", target)  # writes config.yaml, which the command below reads
    command = ["python3", "-m", "snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--directory", str(first),
               "--configfile", str(first / "config.yaml"), "--cores", "2", *CLUSTER, target]  # fmt: skip
    controller = subprocess.Popen(command, cwd=first, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoint = first / "results/test/checkpoints" / RUN / "checkpoint.pt"
    deadline = time.monotonic() + 900
    while not checkpoint.exists() and time.monotonic() < deadline and controller.poll() is None:
        time.sleep(1)
    assert checkpoint.exists(), "no checkpoint was written"
    controller.send_signal(signal.SIGKILL)  # the controlling snakemake dies without cleaning up
    controller.wait()
    jobs = running_jobs()
    assert jobs, "the fine-tuning job is not running"
    subprocess.run(["scancel", *jobs], check=True)
    again = snakemake(first, config, *CLUSTER, target, timeout=900)
    assert again.returncode == 0, output(again)[-4000:]
    log = (first / "logs/test/finetune" / f"{RUN}.log").read_text()
    assert "resuming after batch" in log, log[-2000:]
    whole = tmp_path / "uninterrupted"
    whole.mkdir()
    local = snakemake(whole, config, target)
    assert local.returncode == 0, output(local)[-4000:]
    name = "model.safetensors"
    assert (first / target / name).read_bytes() == (whole / target / name).read_bytes()
