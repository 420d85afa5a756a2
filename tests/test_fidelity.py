"""The default configs measure what the authors measured (docs/fidelity.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_iclr_is_the_papers_release_v1_and_v2_is_an_overlay():
    """The paper and the authors' notebooks use ICLR24v1 (24,347 documents, 12,997 labelled); its
    file and blob are those of berenslab/iclr-dataset's tree at the commit that added it."""
    iclr = load("config.yaml")["datasets"]["iclr"]
    assert iclr["source"].endswith("/37df25fa306c0cd97f023f11741f2d350e1de730/data/iclr24v1.parquet.gzip")
    assert iclr["git_blob"] == "44f0e6cd835c4606084e38d907cf37c085c01209"
    assert (iclr["text"], iclr["label"]) == ("abstract", "labels")  # the data card's fields
    v2 = load("config/iclr_v2.yaml")["datasets"]["iclr"]
    assert v2["source"].endswith("/data/iclr24v2.parquet") and len(v2["git_blob"]) == 40


def test_dry_run_iclr_v2_overlay_downloads_v2(tmp_path):
    text = dry_run(tmp_path, ["config.yaml", "config/iclr_v2.yaml"], "data/paper/raw/iclr.parquet")
    assert "iclr24v2.parquet" in text and "iclr24v1" not in text


def dry_run(workdir: Path, configs: list[str], *targets: str) -> str:
    """The shell commands and log of ``snakemake -n -p`` with these repository config files."""
    import subprocess

    command = ["snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p", "--cores", "1", "--configfile"]
    command += [str(ROOT / name) for name in configs] + ["--", *targets]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_dry_run_batch_sizes_per_dataset_and_layer_tasks(tmp_path):
    """Every run on arXiv / Reddit (Table S4's training parts too) trains with batches of 32; Figure 4c
    scores every layer on all 19 tasks."""
    import re

    text = dry_run(tmp_path, ["config.yaml", "config/tableS4.yaml"])
    finetunes = [line for line in text.splitlines() if "embaug finetune" in line]
    runs = {
        re.search(r"--run (\S+)", line)[1]: re.search(r'"batch_size": (\d+)', line)[1] for line in finetunes
    }
    assert runs["mpnet__arxiv__crops"] == runs["mpnet__reddit.train__dropout"] == "32"
    assert runs["mpnet__iclr__crops"] == runs["mpnet__biorxiv.train__crops"] == "64"
    # Figure 3: crops on subsets of ICLR's batches, at ICLR's batch size, scored on ICLR
    figure3 = {run: size for run, size in runs.items() if ".match-" in run}
    assert figure3 == {f"mpnet__{d}.match-iclr__crops": "64" for d in ("iclr", "arxiv", "biorxiv", "reddit")}
    assert "results/paper/figures/figure3_curves.png" in text
    # every table the paper has gets its companion table by default
    companions = set(re.findall(r"results/paper/tables/(\w+)_vs_paper\.csv", text))
    assert companions == {"table1_mteb", "table2_knn", "tableS4"}
    assert "embaug vs-paper --ours results/paper/tables/table2_knn.csv" in text
    layer_jobs = set(re.findall(r"results/paper/mteb/mpnet/layer0/(\S+)\.json", text))
    assert layer_jobs == set(paper_tasks())
    # precision float32 everywhere; float32 files; Table 1 rows encoded as the authors
    assert all('"precision": "float32"' in line for line in finetunes)
    embeds = [line for line in text.splitlines() if "embaug embed " in line]
    assert embeds and all("--dtype float32" in e and "--precision float32" in e for e in embeds)
    mteb = [line for line in text.splitlines() if "embaug mteb " in line]
    base = [line for line in mteb if "--name mpnet " in line]
    runs = [line for line in mteb if "--name mpnet__iclr__crops " in line]
    assert base and all("--max-length 512 --no-normalize" in line for line in base)
    assert runs and all("--max-length 384 --normalize" in line for line in runs)


def test_dry_run_table_s6_models_as_the_authors(tmp_path):
    """The bare embedding model and the random BERT: bert-base-uncased (at a pinned commit) where
    reachable, lr 0.5."""
    text = dry_run(tmp_path, ["config.yaml", "config/tableS6.yaml"], "results/paper/tables/tableS6.csv")
    lines = text.splitlines()
    inits = {line.split("--out ")[1].split()[0]: line for line in lines if "embaug init-model" in line}
    tokenizer = "--tokenizer bert-base-uncased --tokenizer-revision 86b5e0934494bd15c9632b12f734a8a67f723594"
    assert f"--kind embedding_only {tokenizer}" in inits["results/paper/base_models/embedding_layer"]
    assert f"--kind bert {tokenizer}" in inits["results/paper/base_models/bert_scratch"]
    run = "--run embedding_layer__iclr__crops__"
    runs = [line for line in lines if "embaug finetune" in line and run in line]
    assert len(runs) == 1 and '"learning_rate": 0.5' in runs[0] and '"epochs": 10' in runs[0]
    table = next(line for line in lines if "embaug table" in line and "tableS6" in line)
    assert "--vocabulary embedding_layer results/paper/base_models/embedding_layer" in table


def test_dry_run_figure_s1_on_the_authors_grids(tmp_path):
    """Notebook 06: crops; tau 5 .. 0.005; n = 1..10 with their batch sizes; masking 0.1..0.8; learning
    rates 1e-6 .. 5e-3 for two epochs (the plot reads the last)."""
    import json
    import re

    text = dry_run(
        tmp_path, ["config.yaml", "config/sweeps.yaml"], "results/paper/figures/figureS1_sweeps.png"
    )
    settings = {
        re.search(r"--run (\S+)", line)[1]: json.loads(re.search(r"--settings '([^']+)'", line)[1])
        for line in text.splitlines()
        if "embaug finetune" in line
    }
    assert len(settings) == 36 and all(s["augmentation"] == "crops" for s in settings.values())
    assert {s["temperature"] for s in settings.values()} == {5.0, 0.5, 0.05, 0.005}
    batch = {run: s["batch_size"] for run, s in settings.items() if "__n-" in run}
    assert batch["mpnet__iclr__crops__n-1__bs-128"] == 128 and batch["mpnet__iclr__crops__n-10__bs-16"] == 16
    assert batch["mpnet__iclr__crops__n-3"] == 64 and batch["mpnet__iclr__crops__n-9__bs-32"] == 32
    rates = sorted(s["learning_rate"] for s in settings.values() if s["epochs"] == 2)
    assert rates == pytest.approx(sorted(m * 10.0**e for e in (-6, -5, -4, -3) for m in (1, 2, 5)))
    masks = {s.get("mask_fraction", 0.0) for s in settings.values()}
    assert masks == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}


def test_dry_run_figure1_runs_scored_and_encoded_as_the_authors(tmp_path):
    """Notebook 17: scored after batches 1, 11, ..., 111 and 151, ..., 351 (their every-10 and
    every-50 runs merged) and the last; encoded by their ST_wrapper (384 tokens, normalised)."""
    import json
    import re

    text = dry_run(tmp_path, ["config.yaml"], "results/paper/models/mpnet__iclr__crops")
    [line] = [line for line in text.splitlines() if "embaug finetune" in line]
    settings = json.loads(re.search(r"--settings '([^']+)'", line)[1])
    assert settings["eval_steps"] == [*range(1, 112, 10), 151, 201, 251, 301, 351]
    assert (settings["mteb_max_length"], settings["mteb_normalize"]) == (384, True)
    assert "--eval-mteb STS15" in line
