"""The software environment: envs/embaug.yaml matches pyproject.toml, every rule runs in it, and
`--sdm conda` creates it and installs the package (with a stand-in `conda` on PATH)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_workflow import REPO_ROOT, output, snakemake, test_config

ENV_FILE = REPO_ROOT / "envs" / "embaug.yaml"
POST_DEPLOY = REPO_ROOT / "envs" / "embaug.post-deploy.sh"
RULE_FILES = sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))
PIP_INSTALL = ["-m", "pip", "install", "--no-deps", "-e", str(REPO_ROOT)]  # what the post-deploy runs


def env_requirements() -> dict[str, Requirement]:
    """The pip requirements of envs/embaug.yaml by canonical name."""
    spec = yaml.safe_load(ENV_FILE.read_text())
    pip = next(dep["pip"] for dep in spec["dependencies"] if isinstance(dep, dict) and "pip" in dep)
    return {canonicalize_name(Requirement(line).name): Requirement(line) for line in pip}


def project_requirements() -> dict[str, Requirement]:
    tomllib = pytest.importorskip("tomllib", reason="Python >= 3.11")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(d).name): Requirement(d) for d in project["dependencies"]}


def lower_bound(requirement: Requirement) -> str | None:
    return next((s.version for s in requirement.specifier if s.operator == ">="), None)


def test_env_file_lists_the_project_dependencies():
    env, project = env_requirements(), project_requirements()
    assert sorted(env) == sorted(project), "envs/embaug.yaml and pyproject.toml list different packages"
    for name, requirement in project.items():
        assert lower_bound(env[name]) == lower_bound(requirement), f"{name}: lower bounds differ"


def test_env_file_pins_major_versions_that_include_the_tested_ones():
    for name, requirement in env_requirements().items():
        assert any(s.operator == "<" for s in requirement.specifier), f"{name}: no upper (major) bound"
        installed = version(name)
        assert requirement.specifier.contains(installed, prereleases=True), (
            f"envs/embaug.yaml pins {requirement}, but the tests run with {name} {installed}"
        )


def test_env_file_installs_no_local_path():
    """Snakemake copies the env file to .snakemake/conda/, so a relative path there breaks."""
    for name, requirement in env_requirements().items():
        assert not requirement.url, name
    assert not re.search(r"^\s*-\s*-e\b", ENV_FILE.read_text(), re.MULTILINE)


def rule_blocks(text: str) -> dict[str, str]:
    """``rule``/``checkpoint`` name -> its indented body, for one rule file."""
    pattern = re.compile(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)
    return {match.group(1): match.group(2) for match in pattern.finditer(text)}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_every_rule_runs_in_the_conda_env(rule_file):
    text = rule_file.read_text()
    for name, body in rule_blocks(text).items():
        match = re.search(r"^    conda:\n\s+\"([^\"]+)\"", body, re.MULTILINE)
        assert match, f"{rule_file.name}: rule {name} has no conda: directive"
        assert (rule_file.parent / match.group(1)).resolve() == ENV_FILE, f"rule {name}: {match.group(1)}"
    # `use rule ... with:` inherits the env unless it sets another one
    assert not re.search(r"^use rule .* with:\n(?:[ \t].*\n)*?    conda:", text, re.MULTILINE)


def test_rule_parser_sees_every_rule():
    names = [name for path in RULE_FILES for name in rule_blocks(path.read_text())]
    assert {"download", "chunk", "finetune", "embed", "knn", "score_table"} <= set(names)
    assert len(names) == sum(len(re.findall(r"^rule \w+:", p.read_text(), re.MULTILINE)) for p in RULE_FILES)


def fake_conda(root: Path) -> Path:
    """A stand-in for conda: records its calls, and `env create` makes an env whose python records
    its arguments (the post-deploy script's pip install) instead of installing anything."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    python_stub = f'#!/bin/sh\necho "$@" >> {root}/python-calls.txt\n'
    (bin_dir / "conda").write_text(
        f"#!{sys.executable}\n"
        f"""import json, os, sys
args = sys.argv[1:]
with open({str(root / "conda-calls.jsonl")!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": {str(root)!r}, "platform": "linux-64"}}))
elif args == ["--version"]:
    print("conda 25.1.1")
elif args[:2] == ["config", "--get"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    prefix = args[args.index("--prefix") + 1].strip('"')
    os.makedirs(os.path.join(prefix, "bin"))
    with open(os.path.join(prefix, "bin", "python"), "w") as stub:
        stub.write({python_stub!r})
    os.chmod(os.path.join(prefix, "bin", "python"), 0o755)
"""
    )
    (bin_dir / "conda").chmod(0o755)
    (bin_dir / "activate").write_text('export PATH="$1/bin:$PATH"\nexport CONDA_PREFIX="$1"\n')
    return bin_dir


def test_sdm_conda_creates_the_env_and_installs_the_package(tmp_path, monkeypatch):
    bin_dir = fake_conda(tmp_path / "conda")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EMBAUG_REPO", str(REPO_ROOT))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, test_config(), "--sdm", "conda", "--conda-create-envs-only")
    assert result.returncode == 0, output(result)[-3000:]
    calls = [json.loads(line) for line in (tmp_path / "conda" / "conda-calls.jsonl").read_text().splitlines()]
    creates = [call for call in calls if call[:2] == ["env", "create"]]
    assert len(creates) == 1, "all rules share one environment"
    env_copy = Path(creates[0][creates[0].index("--file") + 1].strip('"'))
    assert env_copy.read_text() == ENV_FILE.read_text()
    assert env_copy.parent == workdir / ".snakemake" / "conda"  # why embaug.yaml holds no relative path
    pip = (tmp_path / "conda" / "python-calls.txt").read_text().split()
    assert pip == PIP_INSTALL


def run_post_deploy(cwd: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/pip.txt\n')
    (bin_dir / "python").chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k != "EMBAUG_REPO"}
    environment = {**clean, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(
        ["bash", str(POST_DEPLOY)], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )


def test_post_deploy_installs_the_checkout_it_runs_in(tmp_path):
    result = run_post_deploy(REPO_ROOT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pip.txt").read_text().split() == PIP_INSTALL


def test_post_deploy_outside_the_repository_says_how_to_fix_it(tmp_path):
    result = run_post_deploy(tmp_path, tmp_path)
    assert result.returncode == 1 and "EMBAUG_REPO=/path/to/embaug" in result.stderr
    assert not (tmp_path / "pip.txt").exists()
