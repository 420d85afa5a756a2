"""Config validation, and the study plan (embaug.plan) that every other rule file maps to rules."""

import json
import re
import sys
from pathlib import Path

import yaml

from snakemake.utils import min_version, validate

from embaug.augment import PAIR_MAKERS
from embaug.config_checks import ConfigError, check_config, check_configfile, check_schema
from embaug.errors import EmbaugError
from embaug.interrupt import stop_jobs_first
from embaug.plan import StudyPlan, study_name
from embaug.plan.figures import SWEEP_FIGURES
from embaug.plan.shell import quoted, repeated
from embaug.plan.tables import BASELINE_NAMES, GRID_TITLES, SCORE_TABLES
from embaug.stale_locks import release_stale_locks

min_version("9.0")


if not workflow.overwrite_configfiles:  # a --configfile replaces config.yaml, never merges
    check_configfile("config.yaml")  # not text, not YAML: one line naming the file and line

    configfile: "config.yaml"


CONFIG_SCHEMA_FILE = workflow.source_path("../schemas/config.schema.yaml")
CONFIG_SCHEMA = yaml.safe_load(Path(CONFIG_SCHEMA_FILE).read_text())
check_schema(config, CONFIG_SCHEMA)  # unknown keys and rejected values, one line naming the key
validate(config, CONFIG_SCHEMA_FILE, set_default=True)  # fills in the defaults
check_config(config, PAIR_MAKERS)

# A snakemake killed with SIGKILL leaves its lock; the next run (not a job on a cluster node) finds
# that no recorded snakemake holds it and removes it, so no manual `--unlock` is needed.
if workflow.is_main_process:
    for lock in release_stale_locks():
        print(f"embaug: removed the lock of a snakemake that was killed: {lock}", file=sys.stderr)


def check_local_device():
    """`device: cuda` where torch has no CUDA stops before any job, where the jobs run here in this
    environment (on a cluster or with a conda env per job, each job checks it: resolve_device)."""
    local = workflow.local_exec and not workflow.deployment_settings.deployment_method
    if not (local and config["device"].startswith("cuda")):
        return
    from embaug.devices import check_device

    try:
        check_device(config["device"])
    except EmbaugError as exc:
        raise ConfigError(str(exc)) from None


# Every rule's shell command is one `embaug` call: exec it, so the job is snakemake's own child
# and (Linux: a parent-death signal, embaug.cli.stop_with_parent) stops when snakemake dies.
shell.prefix("set -euo pipefail; exec ")


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*",
    model=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*(__[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*)*",
    run=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*(__[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*)+",
    n=r"\d+",
    table=r"[a-z0-9_]+",


# The study (embaug.plan): its folders, runs, each job's settings and inputs, the tables' cells
# and the default targets, derived from the config, which is never changed after validation.
PLAN = StudyPlan(config, CONFIG_SCHEMA, study_name(config, workflow.configfiles))
RESULTS, DATA, LOGS, RUNS = PLAN.results, PLAN.data, PLAN.logs, PLAN.runs
STUDY, MTEB, FIGURE3 = config["study"], config["mteb"], config["figure3"]
TSNE, LINEAR = config["evaluation"]["tsne"], config["evaluation"]["linear"]
KNN_K, KNN_METRIC = config["evaluation"]["knn"]["k"], PLAN.knn_metric
PAPER_REFERENCES = {  # the paper's tables beside which ours are set (rule vs_paper)
    path.stem.removeprefix("paper_"): str(path)
    for path in sorted(Path(workflow.basedir, "workflow/reference").glob("paper_*.csv"))
}


def in_results(path):
    """`path` inside the study's results folder."""
    return f"{RESULTS}/{path}"


def in_data(path):
    """`path` inside the study's data folder (downloaded corpora, chunks, checks)."""
    return f"{DATA}/{path}"


def in_logs(path):
    """`path` inside the study's log folder."""
    return f"{LOGS}/{path}"


def mteb_cache_dir(wildcards, output):
    """mteb's ResultCache of the study, the folder above every mteb output. A function, not a
    string param: Snakemake's linter takes a literal output prefix in params for a mistake."""
    return in_results("mteb")


def run_checks(wildcards):
    """The checks of the datasets a run is scored on (rule check_dataset), so that a dataset the
    evaluation cannot use stops the workflow before fine-tuning. Ancient: a re-check (k changed)
    re-trains nothing."""
    return [ancient(path) for path in PLAN.run_checks(wildcards.run)]
