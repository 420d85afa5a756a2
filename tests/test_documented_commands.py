"""The snakemake commands the README and the shipped configs document are commands that work.

Snakemake's ``--configfile`` takes every following word as a config file, so a target written
after it (``--configfile a.yaml b.yaml results/tables/x.csv``) is read as a YAML file and the run
fails: targets go before ``--configfile`` (or after ``--``). Each config under ``config/`` opens
with the command that runs it; a dry run of that command must build its DAG.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
DOCUMENTED = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *CONFIGS,
    *sorted((REPO / ".test").glob("*.yaml")),
]


def documented_commands(path: Path) -> list[str]:
    """Every ``snakemake ...`` command in ``path`` (comment markers and ``\\`` continuations removed)."""
    commands, current = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip().removeprefix("#").strip()
        if current is None and re.match(r"^(\w+=\")?snakemake\b", line):
            current = ""
        if current is None:
            continue
        current += " " + re.sub(r"\s+#\s.*$", "", line).removesuffix("\\")
        if not line.endswith("\\"):
            commands.append(" ".join(current.split()))
            current = None
    return commands


def targets_swallowed_by_configfile(command: str) -> list[str]:
    """Words after ``--configfile`` (up to the next option or ``--``) that are not config files."""
    words = command.replace('"', " ").split()
    swallowed, in_configfiles = [], False
    for word in words:
        if word == "--configfile":
            in_configfiles = True
        elif word.startswith("-"):
            in_configfiles = False
        elif in_configfiles and not word.endswith((".yaml", ".yml")):
            swallowed.append(word)
    return swallowed


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_target_is_read_as_a_config_file(path: Path) -> None:
    commands = documented_commands(path)
    bad = {command: words for command in commands if (words := targets_swallowed_by_configfile(command))}
    assert not bad, f"{path.name}: targets after --configfile would be read as config files: {bad}"


def test_the_command_parser_finds_continued_commands() -> None:
    commands = documented_commands(REPO / "config" / "seeds.yaml")
    assert commands == [
        "snakemake results/paper/tables/seeds_knn.csv --cores 8 --resources gpu=1 "
        "--configfile config.yaml config/seeds.yaml"
    ]
    assert targets_swallowed_by_configfile("snakemake --configfile a.yaml results/x.csv") == ["results/x.csv"]
    assert targets_swallowed_by_configfile("snakemake --configfile a.yaml -- results/x.csv") == []


def reads_shared_data(path: Path) -> bool:
    """Whether a config file, or a config file its command names, reads ../shared/data."""

    def values(node):
        if isinstance(node, dict):
            return [v for item in node.values() for v in values(item)]
        return [v for item in node for v in values(item)] if isinstance(node, list) else [node]

    commands = documented_commands(path)
    named = [REPO / word for word in shlex.split(commands[0]) if word.endswith(".yaml")] if commands else []
    return any(
        str(value).startswith("../shared/")
        for config in {path, *named}
        if config.is_file()
        for value in values(yaml.safe_load(config.read_text()) or {})
    )


CONFIG_PARAMS = [
    pytest.param(path, marks=[pytest.mark.shared_data] if reads_shared_data(path) else [], id=path.name)
    for path in CONFIGS
]


@pytest.mark.parametrize("path", CONFIG_PARAMS)
def test_each_config_documents_a_command_whose_dag_builds(path: Path) -> None:
    """The first command in each config's header comment dry-runs (DAG, schema, targets)."""
    commands = documented_commands(path)
    assert commands, f"{path.name} documents no snakemake command"
    words = shlex.split(commands[0])
    assert words[0] == "snakemake" and str(path.relative_to(REPO)) in words, commands[0]
    result = subprocess.run(
        [sys.executable, "-m", *words, "--dry-run", "--quiet", "all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{commands[0]}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
