"""The default configs measure what the authors measured (docs/fidelity.md)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_seventh_token_is_token_7_in_figure_s1_and_table_s7():
    """The authors' seventh token is token_embeds[:, 7] (text_embeddings_src/embeddings.py)."""
    assert "token:7" in load("config/sweeps.yaml")["study"]["sweeps"]["pooling"]
    assert "token:7" in load("config/tableS7.yaml")["table_s7"]["poolings"]


def paper_tasks() -> list[str]:
    """The 19 task columns of the paper's Table 1 (workflow/reference/paper_table1_mteb.csv)."""
    from embaug.report.paper import read_table

    columns = read_table(ROOT / "workflow/reference/paper_table1_mteb.csv").columns
    return [c for c in columns if not c.endswith("(mean)") and c != "block average"]


def block_tasks(blocks: dict) -> list[str]:
    return [task for tasks in blocks.values() for task in tasks]


def test_table1_tasks_are_the_papers_19_original_names():
    schema = load("workflow/schemas/config.schema.yaml")
    default = schema["properties"]["mteb"]["properties"]["blocks"]["default"]
    assert len(paper_tasks()) == 19
    assert block_tasks(load("config.yaml")["mteb"]["blocks"]) == paper_tasks()
    assert block_tasks(default) == paper_tasks()
    successors = block_tasks(load("config/mteb_v2.yaml")["mteb"]["blocks"])
    assert len(successors) == 19 and "ArXivHierarchicalClusteringP2P" in successors


def test_original_and_successor_tasks_exist_in_mteb():
    mteb = __import__("pytest").importorskip("mteb")
    for name in paper_tasks() + block_tasks(load("config/mteb_v2.yaml")["mteb"]["blocks"]):
        assert mteb.get_task(name).metadata.name == name


def test_study_corpora_as_the_paper_table_s5_and_batch_sizes():
    datasets = load("config.yaml")["datasets"]
    assert not any(spec.get("deduplicate") for spec in datasets.values())
    batch = {name: spec.get("training", {}).get("batch_size") for name, spec in datasets.items()}
    assert {name: size for name, size in batch.items() if size} == {"arxiv": 32, "reddit": 32}
    assert load("config.yaml")["mteb"]["layer_tasks"] == "all"


def test_dry_run_batch_sizes_per_dataset_and_layer_tasks(tmp_path):
    """Every run on arXiv / Reddit (Table S4's training parts too) trains with batches of 32; Figure 4c
    scores every layer on all 19 tasks."""
    import re
    import subprocess

    command = ["snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1", "--configfile"]
    command += [str(ROOT / "config.yaml"), str(ROOT / "config/tableS4.yaml")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    finetunes = [line for line in text.splitlines() if "embaug finetune" in line]
    runs = {
        re.search(r"--run (\S+)", line)[1]: re.search(r'"batch_size": (\d+)', line)[1] for line in finetunes
    }
    assert runs["mpnet__arxiv__crops"] == runs["mpnet__reddit.train__dropout"] == "32"
    assert runs["mpnet__iclr__crops"] == runs["mpnet__biorxiv.train__crops"] == "64"
    layer_jobs = set(re.findall(r"results/mteb/mpnet/layer0/(\S+)\.json", text))
    assert layer_jobs == set(paper_tasks())
