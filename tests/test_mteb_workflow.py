"""The mteb rules end to end on the .test study: Table 1 and per-layer scores from local STS16."""

from __future__ import annotations

import pandas as pd
import pytest
from test_workflow import REPO_ROOT, output, snakemake, test_config

pytest.importorskip("mteb")


@pytest.mark.slow
def test_table1_and_layer_scores_from_local_tasks(tmp_path):
    config = test_config()
    config["mteb_tasks"] = {
        task: {"path": str((REPO_ROOT / spec["path"]).resolve())}
        for task, spec in config["mteb_tasks"].items()
    }
    config["mteb"]["enabled"] = True
    config["mteb"]["training_curves"] = ["STS16"]
    config["training"]["eval_every"] = 4
    result = snakemake(
        tmp_path,
        config,
        "results/tables/table1_mteb.csv",
        "results/figures/figure4c_mteb_layers.png",
        "results/figures/figure1_training_curves.png",
    )
    assert result.returncode == 0, output(result)[-4000:]
    table = pd.read_csv(tmp_path / "results/tables/table1_mteb.csv").set_index("model")
    assert list(table.index) == ["tiny", "tiny + dropout", "tiny + crops"]
    assert list(table.columns) == ["STS16", "sts (mean)", "block average"]
    assert table["STS16"].between(-100, 100).all() and table["STS16"].nunique() == 3
    layers = pd.read_csv(tmp_path / "results/scores/mteb_layers/tiny.csv")
    assert layers["model"].astype(str).tolist() == ["0", "2"]
    # Every model and layer has its own mteb name/revision folder in the one cache.
    cached = {p.parent.parent.name for p in (tmp_path / "results/mteb/results").glob("*/*/STS16.json")}
    assert cached == {"embaug__tiny", "embaug__tiny__bbc__dropout", "embaug__tiny__bbc__crops",
                      "embaug__tiny__layer0", "embaug__tiny__layer2"}  # fmt: skip
    assert (tmp_path / "results/benchmarks/mteb/tiny/STS16.tsv").exists()
    # Figure 4c plots the per-layer table; Figure 1 has an MTEB panel beside the kNN one.
    figure4c = pd.read_csv(tmp_path / "results/figures/figure4c_mteb_layers.csv")
    assert sorted(figure4c["layer"].unique()) == [0, 2]
    assert figure4c["accuracy"].tolist() == pytest.approx((layers["block average"] / 100).tolist())
    curves = pd.read_csv(tmp_path / "results/figures/figure1_training_curves.csv")
    assert set(curves["panel"]) == {"trained and scored on bbc", "MTEB STS16 (main score)"}
    mteb_curve = curves[curves["panel"] == "MTEB STS16 (main score)"]
    assert mteb_curve["step"].min() == 0 and mteb_curve["value"].between(-1, 1).all()
    # Nothing left to do: the results are files, and a dry run finds them current.
    again = snakemake(tmp_path, config, "results/tables/table1_mteb.csv", "--dry-run")
    assert "Nothing to be done" in output(again)
