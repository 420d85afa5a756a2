"""`snakemake --profile profiles/slurm` against stand-ins for the SLURM commands.

The stand-ins (`sbatch`, `srun`, `sacct`, `squeue`, `scancel`, `sinfo`, `sacctmgr`, `sshare`,
`scontrol`) record their command lines; `sbatch` runs the submitted job script on this machine
and `sacct`/`squeue` report how it ended, so the SLURM executor plugin drives the whole .test
study as it would on a cluster. The tests check what each job asked SLURM for: GPU rules a GPU
on the GPU partition, CPU rules CPUs only, each the memory, time and CPUs computed from its
inputs (embaug.resources); tables and figures are never submitted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import REPO_ROOT, output, snakemake, test_config

from embaug import resources as rs

pytest.importorskip("snakemake_executor_plugin_slurm", reason='pip install -e ".[slurm]"')
PROFILE = REPO_ROOT / "profiles" / "slurm"
TABLE = "results/test/tables/table2_knn.csv"
# the rules with `resources: gpu=1` (and their use-rule variants)
GPU_RULES = {
    "finetune",
    "embed",
    "embed_pooled",
    "knn",
    "knn_preprocessed",
    "knn_pooled",
    "mteb",
    "mteb_layers",
}
SIZED_RULES = GPU_RULES | {"linear", "tsne"}  # memory, time and threads computed from the inputs
# every job the table needs but the table itself (a local rule)
SUBMITTED = Counter(download=1, check_dataset=1, chunk=1, init_model=1, finetune=2, embed=3, knn=3)

STUB = r'''#!{python}
"""A stand-in for the SLURM command this file is named after (see tests/test_slurm.py)."""
import json, os, re, subprocess, sys, time

STATE = {state!r}
ACCOUNT = {account!r}
command, args = os.path.basename(sys.argv[0]), sys.argv[1:]


def record(**extra):
    with open(os.path.join(STATE, "calls.jsonl"), "a") as log:
        log.write(json.dumps({{"command": command, "args": args, "time": time.time(), **extra}}) + "\n")


def option(name):
    """The value of `--name=value` or `--name value` (or `-X value`)."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def jobs():
    """(job id, job name, state) of every job submitted so far."""
    folder = os.path.join(STATE, "jobs")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name)) as handle:
            yield name, *handle.read().split("|")


if command == "sbatch":
    script = option("--wrap") or sys.stdin.read()
    os.makedirs(os.path.join(STATE, "jobs"), exist_ok=True)
    job_id = 1000
    while True:
        try:
            os.close(os.open(os.path.join(STATE, "jobs", str(job_id)), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            job_id += 1
    state_file = os.path.join(STATE, "jobs", str(job_id))
    with open(state_file, "w") as handle:
        handle.write(f"{{option('--job-name')}}|RUNNING")
    env = {{**os.environ, "SLURM_JOB_ID": str(job_id)}}
    if option("--gpus"):
        env["SLURM_GPUS"] = option("--gpus").split(":")[-1]
    started = time.time()
    with open(option("--output").replace("%j", str(job_id)), "w") as log:
        code = subprocess.call(["/bin/sh", "-c", script], cwd=option("-D"), env=env, stdout=log, stderr=log)
    with open(state_file, "w") as handle:
        handle.write(f"{{option('--job-name')}}|{{'COMPLETED' if code == 0 else 'FAILED'}}")
    record(job_id=job_id, started=started, exit_code=code)
    print(job_id)
elif command == "srun":
    record()
    program = args[next(i for i, arg in enumerate(args) if not arg.startswith("-")) :]  # after the options
    os.execvp(program[0], program)
elif command in ("sacct", "squeue"):
    record()
    name = option("--name")
    if name:  # status query of this run's jobs: "<id>|<state>"
        print("\n".join(f"{{i}}|{{state}}" for i, job_name, state in jobs() if job_name == name))
elif command == "sinfo":
    record()
    print("PARTITION\ncpu*\ngpu")
elif command in ("sacctmgr", "sshare"):
    record()
    print(ACCOUNT)
elif command == "scontrol":
    record()
    print("MinJobAge = 300 sec\nMaxArraySize = 1001")
else:  # scancel
    record()
'''
COMMANDS = ["sbatch", "srun", "sacct", "squeue", "scancel", "sinfo", "sacctmgr", "sshare", "scontrol"]


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture
def slurm(tmp_path, monkeypatch) -> Path:
    """Stand-in SLURM commands first on PATH; returns the folder their records go to."""
    state = tmp_path / "slurm"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    account = profile()["default-resources"]["slurm_account"]
    source = STUB.format(python=sys.executable, state=str(state), account=account)
    for command in COMMANDS:
        (bin_dir / command).write_text(source)
        (bin_dir / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


def calls(state: Path, command: str) -> list[dict]:
    lines = (state / "calls.jsonl").read_text().splitlines() if (state / "calls.jsonl").exists() else []
    return [call for call in map(json.loads, lines) if call["command"] == command]


def submitted_rule(sbatch: dict) -> str:
    """The rule of an sbatch call, from the plugin's `--comment rule_<rule>[_wildcards_<...>]`."""
    comment = sbatch["args"][sbatch["args"].index("--comment") + 1]
    return re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment).group(1)


def sbatch_line(sbatch: dict) -> str:
    """The sbatch options as one string, without the job script."""
    return " ".join(arg for arg in sbatch["args"] if not arg.startswith("--wrap"))


def run_on_stub_cluster(workdir: Path, *args: str):
    return snakemake(
        workdir,
        test_config(),
        "--profile",
        str(PROFILE),
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "5",
        *args,
        timeout=900,
    )


def test_profile_sets_no_gpu_default_and_gives_gpu_rules_a_gpu():
    spec = profile()
    assert spec["executor"] == "slurm"
    assert "gpu" not in spec["default-resources"]
    for rule in GPU_RULES:
        resources = spec["set-resources"][rule]
        assert resources["gpu"] == 1 and resources["slurm_partition"] == "gpu"
        # the callables size memory, time and CPUs (threads -> --cpus-per-task): no fixed values
        assert not {"mem_mb", "runtime", "cpus_per_gpu", "cpus_per_task"} & set(resources)
    cpu_rules = set(spec["set-resources"]) - GPU_RULES
    assert cpu_rules and not any("gpu" in key for rule in cpu_rules for key in spec["set-resources"][rule])
    assert not SIZED_RULES & cpu_rules
    assert spec["group-components"] == ["mteb_{model}=100"] and spec["retries"] == 1


def test_dry_run_with_the_profile_plans_the_study(slurm, tmp_path):
    result = run_on_stub_cluster(tmp_path, "-n", TABLE)
    assert result.returncode == 0, output(result)[-4000:]
    assert "Using profile" in output(result) and "workflow specific profile" in output(result)
    assert not calls(slurm, "sbatch")  # a dry run submits nothing


def assert_requests_fit_the_rules(sbatches: list[dict]) -> None:
    """GPU rules asked for a GPU on the GPU partition, CPU rules for CPUs only; all on the account;
    every job its CPUs as --cpus-per-task and a memory and time limit."""
    spec = profile()
    account = spec["default-resources"]["slurm_account"]
    for sbatch in sbatches:
        rule, line = submitted_rule(sbatch), sbatch_line(sbatch)
        assert f"-A {account}" in line, line
        assert re.search(r"--mem \d+ ", line) and re.search(r"-t \d+ ", line) and "--cpus-per-task=" in line
        if rule in GPU_RULES:
            assert "--gpus=1" in line or "--gres=gpu" in line, line
            assert f"-p {spec['set-resources'][rule]['slurm_partition']}" in line
        else:
            assert "--gpus" not in line and "--gres" not in line, line
            assert f"-p {spec['default-resources']['slurm_partition']}" in line


def test_profile_submits_gpu_jobs_with_a_gpu_and_cpu_jobs_without(slurm, tmp_path):
    result = run_on_stub_cluster(tmp_path, "results/test/embeddings/tiny/bbc")
    assert result.returncode == 0, output(result)[-6000:]
    sbatches = calls(slurm, "sbatch")
    assert Counter(map(submitted_rule, sbatches)) == Counter(download=1, init_model=1, embed=1)
    assert_requests_fit_the_rules(sbatches)
    gpu_steps = [call for call in calls(slurm, "srun") if "--gpus=1" in call["args"]]
    assert len(gpu_steps) == 1  # inside the job, the GPU job step got the GPU too
    assert (tmp_path / "results/test/embeddings/tiny/bbc/meta.json").exists()
    # The embed job asked for what embaug.resources computes from its corpus and model.
    (embed,) = [call for call in sbatches if submitted_rule(call) == "embed"]
    config = test_config()
    request = rs.embed_request(
        rs.corpus_size(tmp_path / "data/test/raw/bbc.parquet"),
        rs.ModelShape.from_config(config["models"]["tiny"]["architecture"]),
        max_length=config["embedding"]["max_length"],
        gpu=False,  # .test runs on the CPU (device: cpu)
    )
    line = sbatch_line(embed)
    assert f"--mem {request.mem_mb} " in line and f"-t {request.runtime} " in line
    assert f"--cpus-per-task={request.threads}" in line


@pytest.mark.slow
def test_profile_runs_table2_on_the_stub_cluster(slurm, tmp_path):
    result = run_on_stub_cluster(tmp_path, TABLE)
    assert result.returncode == 0, output(result)[-6000:]
    table = pd.read_csv(tmp_path / TABLE)
    assert {"dropout", "crops", "base"} <= set(table.columns)
    sbatches = calls(slurm, "sbatch")
    assert Counter(map(submitted_rule, sbatches)) == SUBMITTED
    assert_requests_fit_the_rules(sbatches)
    # The default profile's `gpu: 1` counts per job on a cluster: the two fine-tuning runs overlap.
    (start_a, end_a), (start_b, end_b) = [
        (call["started"], call["time"]) for call in sbatches if submitted_rule(call) == "finetune"
    ]
    assert start_a < end_b and start_b < end_a, "GPU jobs were serialised on the cluster"


def job_resources(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run prints."""
    jobs = []
    for rule, block in re.findall(r"\n\s*(?:local)?rule (\w+):\n((?:\s{4,}.*\n)+)", text):
        match = re.search(r"resources: (.*)", block)
        pairs = [item.split("=", 1) for item in match.group(1).split(", ")] if match else []
        jobs.append((rule, dict(pairs)))
    return jobs


def test_dry_run_shows_each_jobs_resources_from_its_inputs(tmp_path):
    """With the corpus in place, the dry run of the .test study shows each job's memory, time and
    threads, computed from the corpus and the model; a job whose input is not made yet shows <TBD>
    (Snakemake sizes it once the input exists, before submitting it)."""
    config = test_config()
    documents = pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(3000)],
            "label": [f"c{i % 5}" for i in range(3000)],
            "text": [f"document {i} " + "words " * (50 + i % 300) for i in range(3000)],
        }
    )
    source = tmp_path / "source.parquet"
    documents.to_parquet(source)
    config["datasets"]["bbc"] = {"source": str(source), "id": "id"}
    (tmp_path / "data/test/raw").mkdir(parents=True)
    corpus = tmp_path / "data/test/raw/bbc.parquet"  # newer than its source: up to date
    documents.rename(columns={"id": "doc_id"}).to_parquet(corpus)
    targets = [TABLE, "results/test/scores/linear/tiny/bbc.csv", "results/test/tsne/tiny/bbc.png"]
    result = snakemake(tmp_path, config, "--profile", str(PROFILE), "-n", *targets)
    assert result.returncode == 0, output(result)[-4000:]
    jobs = job_resources(output(result))
    assert {rule for rule, _ in jobs} >= {"embed", "knn", "linear", "tsne", "finetune", "score_table"}
    size, shape = rs.corpus_size(corpus), rs.ModelShape.from_config(config["models"]["tiny"]["architecture"])
    expected = {
        "embed": rs.embed_request(size, shape, max_length=config["embedding"]["max_length"], gpu=False),
        "knn": rs.knn_request(size.documents, shape.layers + 1, shape.dim, test_fraction=0.1, gpu=False),
        "linear": rs.linear_request(size.documents, shape.layers + 1, shape.dim, 5, test_fraction=0.1,
                                    max_train=None),
        "tsne": rs.tsne_request(size.documents, shape.dim, perplexity=30, iterations=500),
    }  # fmt: skip
    sized = [(rule, res) for rule, res in jobs if rule in expected]
    assert len(sized) == 3 + 3 + 1 + 1  # embed and knn of the base model and both runs; linear, t-SNE
    for rule, resources in sized:  # a run has its base model's shape, so it is sized before it exists
        assert int(resources["mem_mb"]) == expected[rule].mem_mb, (rule, resources)
        assert int(resources["runtime"]) == expected[rule].runtime, (rule, resources)
    finetune = [res for rule, res in jobs if rule == "finetune"]
    assert finetune and all(res["mem_mb"] == "<TBD>" for res in finetune)  # its chunks are not made yet
    gpu_jobs = [res for rule, res in jobs if rule in GPU_RULES]
    assert gpu_jobs and all(res["slurm_partition"] == "gpu" and res["gpu"] == "1" for res in gpu_jobs)


def job_requests(workdir: Path, *args: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, threads / mem_mb / runtime) of every job of a dry run of the paper's study."""
    command = [
        "snakemake",
        "-s",
        str(REPO_ROOT / "Snakefile"),
        "-n",
        "--configfile",
        str(REPO_ROOT / "config.yaml"),
    ]
    result = subprocess.run(
        [*command, *args], cwd=workdir, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    requests = []
    for rule, block in re.findall(r"\n\s*(?:local)?rule (\w+):\n((?:\s{4,}.*\n)+)", text):
        threads = re.search(r"threads: (\d+)", block)
        resources = dict(re.findall(r"\b(mem_mb|runtime)=([^,\s]+)", block))
        requests.append((rule, {"threads": threads.group(1) if threads else "1", **resources}))
    return sorted(requests, key=lambda job: (job[0], sorted(job[1].items())))


def test_cluster_jobs_are_sized_from_their_inputs_not_from_the_submitting_host(tmp_path):
    """Through the SLURM profile, `--cores 2` and `--cores 64` on the login node give every job the
    same threads, memory and time (GPU jobs their 8 host threads); a local run still caps threads
    at the cores it is given."""
    on_two = job_requests(tmp_path, "--profile", str(PROFILE), "--cores", "2")
    on_many = job_requests(tmp_path, "--profile", str(PROFILE), "--cores", "64")
    assert on_two == on_many
    threads = {rule: int(request["threads"]) for rule, request in on_two}
    assert threads["finetune"] == threads["embed"] == threads["mteb"] == rs.GPU_HOST_THREADS
    local = job_requests(tmp_path, "--cores", "2")
    assert max(int(request["threads"]) for _, request in local) == 2
    assert {rule for rule, _ in local} == {rule for rule, _ in on_two}


LOCAL_RULES = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings

with SnakemakeApi() as api:
    workflow = api.workflow(
        snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2]), resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(sys.argv[3])]), storage_settings=StorageSettings(),
    )._workflow
    print(json.dumps({rule.name: [str(o) for o in rule.output] for rule in workflow.rules}))
    print(json.dumps(sorted(workflow._localrules)))
"""


def test_tables_and_figures_are_local_rules(tmp_path):
    """Every rule that writes only tables and figures runs in the snakemake process on a cluster;
    no rule that computes (embed, kNN, ...) does."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(test_config()))
    result = subprocess.run(
        [sys.executable, "-c", LOCAL_RULES, str(REPO_ROOT / "Snakefile"), str(tmp_path), str(config_path)],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outputs, local = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    reports = {
        rule for rule, files in outputs.items()
        if files and all(re.match(r"results/test/(tables|figures|scores/mteb_layers)/", f) for f in files)
    }  # fmt: skip
    assert reports >= {
        "score_table",
        "mteb_table",
        "figure_layers",
        "figure2_tsne",
        "sweep_figure",
        "table_s4",
    }
    assert set(local) == reports | {"all"}
    assert not set(local) & SIZED_RULES
