"""The mteb rules end to end on the .test study: Table 1 and per-layer scores from local STS16."""

from __future__ import annotations

import pandas as pd
import pytest
from test_workflow import output, snakemake, test_config

pytest.importorskip("mteb")


@pytest.mark.slow
def test_table1_and_layer_scores_from_local_tasks(tmp_path):
    config = test_config()
    config["mteb"]["enabled"] = True
    config["mteb"]["training_curves"] = ["STS16"]
    config["training"]["eval_every"] = 4
    result = snakemake(
        tmp_path,
        config,
        "results/test/tables/table1_mteb.csv",
        "results/test/figures/figure4c_mteb_layers.png",
        "results/test/figures/figure1_training_curves.png",
    )
    assert result.returncode == 0, output(result)[-4000:]
    table = pd.read_csv(tmp_path / "results/test/tables/table1_mteb.csv").set_index("model")
    assert list(table.index) == ["tiny", "tiny + dropout", "tiny + crops"]
    assert list(table.columns) == ["STS16", "sts (mean)", "block average"]
    assert table["STS16"].between(-100, 100).all() and table["STS16"].nunique() == 3
    layers = pd.read_csv(tmp_path / "results/test/scores/mteb_layers/tiny.csv")
    assert layers["model"].astype(str).tolist() == ["0", "2"]
    # Every model and layer has its own mteb name/revision folder in the one cache (Figure 4c
    # scores the base model and its runs per layer).
    cached = {p.parent.parent.name for p in (tmp_path / "results/test/mteb/results").glob("*/*/STS16.json")}
    models = ["embaug__tiny", "embaug__tiny__bbc__dropout", "embaug__tiny__bbc__crops"]
    assert cached == {*models, *(f"{m}__layer{k}" for m in models for k in (0, 2))}
    assert (tmp_path / "results/test/benchmarks/mteb/tiny/STS16.tsv").exists()
    # One job per (model, task) wrote both layers' files: the task's texts encoded once.
    assert (tmp_path / "results/test/benchmarks/mteb/tiny/layers/STS16.tsv").exists()
    log = (tmp_path / "logs/test/mteb/tiny/layers/STS16.log").read_text()
    assert "texts encoded once for 2 layers" in log
    # Figure 4c plots the per-layer table; Figure 1 has MTEB panels beside the kNN one.
    figure4c = pd.read_csv(tmp_path / "results/test/figures/figure4c_mteb_layers.csv")
    assert sorted(figure4c["layer"].unique()) == [0, 2]
    assert set(figure4c["model"]) == {"tiny", "tiny__bbc__dropout", "tiny__bbc__crops"}
    base = figure4c[figure4c["model"] == "tiny"]
    assert base["accuracy"].tolist() == pytest.approx((layers["block average"] / 100).tolist())
    curves = pd.read_csv(tmp_path / "results/test/figures/figure1_training_curves.csv")
    # the paper's Figure 1: MTEB block average and blocks (here one block of one task)
    assert set(curves["panel"]) == {"trained and scored on bbc", "MTEB block average", "MTEB sts (mean)"}
    mteb_curve = curves[curves["panel"] == "MTEB block average"]
    assert mteb_curve["step"].min() == 0 and mteb_curve["value"].between(-1, 1).all()
    # Nothing left to do: the results are files, and a dry run finds them current.
    again = snakemake(tmp_path, config, "results/test/tables/table1_mteb.csv", "--dry-run")
    assert "Nothing to be done" in output(again)
