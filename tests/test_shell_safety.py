"""No config value reaches a shell unquoted: hostile strings in every string-valued config key.

Each hostile value would, if a shell saw it unquoted, create a file named PWNED. A dry run
(`snakemake -n -p`) renders every command of a study that uses every rule; each occurrence of the
value must sit inside single quotes. A real run of a tiny study (slow) shows nothing executes.
Keys the schema restricts to a safe pattern (device, MTEB task names, t-SNE learning rate) must
fail the dry run instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_ARCHITECTURE, make_corpus
from test_workflow import REPO_ROOT, job_stats, output, snakemake

HOSTILE = "$(touch PWNED) `touch PWNED`; touch PWNED & 'q\" x"


def outside_single_quotes(command: str) -> str:
    """The text of a POSIX shell command that is not inside single quotes (what the shell expands)."""
    kept, quote = [], None
    for char in command:
        if quote == "'":
            quote = None if char == "'" else quote
        elif quote == '"':
            if char == '"':
                quote = None
            else:
                kept.append(char)  # $(...) and `...` still run inside double quotes
        elif char in "'\"":
            quote = char
        else:
            kept.append(char)
    return "".join(kept)


def test_outside_single_quotes():
    assert outside_single_quotes("a 'b $(x)' \"c $(y)\" d") == "a  c $(y) d"
    assert "PWNED" not in outside_single_quotes(f"embaug x --title {__import__('shlex').quote(HOSTILE)}")


def write_data(root: Path) -> dict[str, Path]:
    """A labelled corpus with hostile column names and a tiny local STS task, under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(n_per_topic=10).rename(columns={"text": HOSTILE, "label": HOSTILE + "l"})
    corpus_path = root / "docs.parquet"
    corpus.to_parquet(corpus_path)
    rng = np.random.default_rng(1)
    words = ["match", "team", "market", "bank", "cell", "album", "song", "energy"]
    pairs = []
    for _ in range(30):
        a = list(rng.choice(words, size=6))
        keep = int(rng.integers(0, 6))
        pairs.append((" ".join(a), " ".join(a[:keep] + list(rng.choice(words, size=6 - keep))), keep, "test"))
    sts_path = root / "sts.parquet"
    pd.DataFrame(pairs, columns=["sentence1", "sentence2", "score", "split"]).to_parquet(sts_path)
    return {"corpus": corpus_path, "sts": sts_path}


def tiny_config(files: dict[str, Path], **sections) -> dict:
    """A tiny study on :func:`write_data`'s files (scratch model, crops, a test split and k that fit
    40 documents); ``sections`` replace top-level config sections."""
    return {
        "device": "cpu",
        "datasets": {"docs": {"source": str(files["corpus"]), "text": HOSTILE, "label": HOSTILE + "l"}},
        "models": {"tiny": {"source": "scratch", "tokenizer_corpus": ["docs"],
                            "architecture": TINY_ARCHITECTURE}},
        "evaluation": {"test_fraction": 0.3, "knn": {"k": 3}, "tsne": {"enabled": False},
                       "linear": {"enabled": False}},
        "study": {"name": "test", "models": ["tiny"], "train_on": ["docs"], "augmentations": ["crops"]},
        **sections,
    }  # fmt: skip


def hostile_config(root: Path) -> dict:
    """A tiny study whose every free-text config value is hostile (data lie in a hostile folder)."""
    files = write_data(root / HOSTILE)
    return tiny_config(
        files,
        cache_dir=str(root / HOSTILE / "cache"),
        training={
            "batch_size": 8,
            "learning_rate": 1.0e-3,
            "max_length": 48,
            "max_steps": 4,
            "eval_every": 2,
            "eval_docs": 20,
            "eval_k": 3,
        },  # fmt: skip
        embedding={"batch_size": 16, "max_length": 64},
        mteb={
            "blocks": {"sts": ["STS16"]},
            "layer_tasks": [],
            "training_curves": ["STS16"],
            "splits": ["test"],
        },
        mteb_tasks={"STS16": {"path": str(files["sts"])}},
    )


def commands(text: str) -> list[str]:
    """The shell commands a dry run with --printshellcmds renders."""
    prefix = "Shell command: "
    lines = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
    return [line for line in lines if line != "None"]  # rule all


def test_dry_run_quotes_every_hostile_value(tmp_path):
    config = hostile_config(tmp_path)
    # every rule on: MTEB tables and layers, t-SNE, linear, baselines, Tables S3 / S4 / S7, seeds,
    # sweeps, Table S6; hostile MTEB splits too (quoted, not restricted)
    config["mteb"].update(enabled=True, splits=["test", HOSTILE], layer_tasks=["STS16"], layers=[0, 2])
    config["evaluation"].update(tsne={"enabled": True}, linear={"enabled": True})
    config["baselines"] = {"enabled": True}
    for table in ("table_s3", "table_s4", "table_s7"):
        config[table] = {"enabled": True}
    config["study"].update(
        augmentations=["crops", "dropout"],
        seeds=[1],
        sweeps={"temperature": [0.1]},
        from_scratch={"tiny": {"epochs": 2}},
    )
    config["figure3"] = {"enabled": True}
    result = snakemake(tmp_path, config, "--dry-run", "--printshellcmds")
    assert result.returncode == 0, output(result)[-4000:]
    rendered = commands(result.stdout)
    assert len(rendered) == sum(job_stats(output(result)).values()) - 1  # every job but `all`
    exposed = [c for c in rendered if "PWNED" in outside_single_quotes(c)]
    assert exposed == []
    hostile = [c for c in rendered if "PWNED" in c]
    rules = {c.split()[1] for c in hostile}
    # the hostile values reach these stages (dataset spec, cache dir, MTEB file and splits)
    assert {"download", "finetune", "mteb", "mteb-table"} <= rules, rules
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (("device",), "$(touch PWNED)cpu", "does not match"),
        (("device",), "cuda;touch PWNED", "does not match"),
        (("evaluation", "tsne", "learning_rate"), "$(touch PWNED)", "learning_rate"),
        (("mteb", "training_curves"), [HOSTILE], "does not match"),
        (("mteb", "layer_tasks"), ["STS16;touch PWNED"], "does not match"),
        (("mteb", "blocks"), {"sts": ["`touch PWNED`"]}, "does not match"),
    ],
)
def test_schema_rejects_unsafe_values(tmp_path, key, value, expected):
    config = hostile_config(tmp_path)
    section = config
    for part in key[:-1]:
        section = section.setdefault(part, {})
    section[key[-1]] = value
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert expected in output(result) and key[-1] in output(result), output(result)[-3000:]
    assert not list(tmp_path.rglob("PWNED"))


TARGETS = ("results/test/tables/table2_knn.csv", "results/test/figures/figure1_training_curves.png")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """The hostile tiny study end to end, MTEB and kNN curves during training included (~2 min)."""
    workdir = tmp_path_factory.mktemp("hostile")
    config = hostile_config(workdir)
    result = snakemake(workdir, config, *TARGETS)
    assert result.returncode == 0, output(result)[-6000:]
    return workdir, config


@pytest.mark.slow
def test_real_run_executes_nothing(real_run):
    workdir, _ = real_run
    table = pd.read_csv(workdir / "results" / "test" / "tables" / "table2_knn.csv")
    assert list(table.columns[:3]) == ["dataset", "base", "crops"], table
    log = pd.read_csv(workdir / "results" / "test" / "models" / "tiny__docs__crops" / "train_log.csv")
    assert log["mteb_STS16"].notna().any()  # the hostile-path MTEB file was read
    assert not list(workdir.rglob("PWNED")) and not Path("PWNED").exists()


MODEL_FILES = ("tokenizer.json", "model.safetensors")


@pytest.mark.slow
def test_same_config_same_table2_and_models(real_run, tmp_path):
    """A second run of the same config elsewhere: byte-identical base and fine-tuned models and Table 2."""
    workdir, config = real_run
    config = {**config, "cache_dir": str(tmp_path / "cache")}
    result = snakemake(tmp_path, config, *TARGETS)
    assert result.returncode == 0, output(result)[-6000:]
    for model in ("base_models/tiny", "models/tiny__docs__crops"):
        for name in MODEL_FILES:
            assert (tmp_path / "results" / "test" / model / name).read_bytes() == (
                workdir / "results" / "test" / model / name
            ).read_bytes()
    table = "results/test/tables/table2_knn.csv"
    assert (tmp_path / table).read_text() == (workdir / table).read_text()


@pytest.mark.slow
def test_curves_during_training_leave_the_model_unchanged(real_run, tmp_path):
    """The same study without kNN and MTEB scoring during training trains the same weights."""
    workdir, config = real_run
    config = {**config, "training": {**config["training"], "eval_every": 0}}
    config["mteb"] = {**config["mteb"], "training_curves": []}
    run = "results/test/models/tiny__docs__crops"
    result = snakemake(tmp_path, config, run)
    assert result.returncode == 0, output(result)[-6000:]
    assert "knn_accuracy" not in pd.read_csv(tmp_path / run / "train_log.csv")
    for name in MODEL_FILES:
        assert (tmp_path / run / name).read_bytes() == (workdir / run / name).read_bytes()


# params that the rule files build already quoted (common.quoted / repeated, shlex.join)
PRE_QUOTED = {"cells", "panels", "models", "curves", "points", "rows", "eval_corpora", "eval_mteb",
              "checkpoints", "layers", "local", "splits", "metrics", "preprocessing", "encoding",
              "tokenizer", "deltas"}  # fmt: skip


def test_every_shell_placeholder_is_quoted():
    """A static check of workflow/rules/*.smk: each `{...}` in a shell string is `:q`, {threads},
    or a param built already quoted, so a new rule cannot slip an unquoted value in."""
    unquoted = []
    for path in sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk")):
        in_shell = False
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() == "shell:":
                in_shell = True
            elif in_shell and line.strip().startswith('"'):
                for field in re.findall(r"\{([^{}]*)\}", line):
                    name = field.removeprefix("params.")
                    if not field.endswith(":q") and field != "threads" and name not in PRE_QUOTED:
                        unquoted.append(f"{path.name}:{number}: {{{field}}}")
            else:
                in_shell = False
    assert unquoted == []
