"""The cells of a study's score tables: Table 2 (kNN, cosine kNN, linear), the seeds table, the
TF-IDF baselines, Table S3 (preprocessing), S4 (held-out split), S6 (other models) and S7 (pooling).

A cell is (row, column, scores file) for the tables shaped like Table 2, and (dataset, model,
column, metric, scores file) for the grid tables S3 and S7.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..config_checks import ConfigError
from . import runs as run_plan

if TYPE_CHECKING:
    from .study import Study

SCORE_TABLES = {
    "table2_knn": ("knn", "euclidean", "kNN accuracy (%), k={k}, Euclidean, last layer"),
    "table2_knn_cosine": ("knn", "cosine", "kNN accuracy (%), k={k}, cosine, last layer"),
    "table2_linear": ("linear", "logistic", "Linear (logistic regression) accuracy (%), last layer"),
}
"""Tables of Table 2's shape: name -> (score family, metric column, title)."""

BASELINE_NAMES = ["tfidf", "tfidf_svd"]

GRID_TITLES = {
    "tableS3": "kNN accuracy (%), k={k}, last layer: raw / centred / PCA-whitened embeddings",
    "tableS7": "kNN accuracy (%), k={k}, {metric}, last layer, by pooling",
}
"""The grid tables: name -> title."""

Cell = tuple[Any, ...]


def pooling_name(pooling: str) -> str:
    """A pooling as a path segment: token:7 -> token7."""
    return pooling.replace(":", "")


class TablePlan:
    """Which score files each table reads, and which tables a study makes by default."""

    def __init__(self, study: Study) -> None:
        self.study = study
        config = study.config
        self.baselines = config["baselines"]
        self.s3, self.s4, self.s7 = config["table_s3"], config["table_s4"], config["table_s7"]
        self._check()

    def _check(self) -> None:
        """Datasets, models and augmentations the tables name must exist; fail naming the key."""
        config = self.study.config
        for key in ("table_s3", "table_s4", "table_s7"):
            spec = config[key]
            for dataset in spec["datasets"] or []:
                if dataset not in config["datasets"]:
                    raise ConfigError(
                        f"{key}.datasets names '{dataset}', which is not defined under datasets"
                    )
            for model in spec.get("models") or []:
                if model not in config["models"] and model not in self.study.runs:
                    raise ConfigError(f"{key}.models names '{model}', neither a model nor a run")
        for augmentation in self.s4["augmentations"] or []:
            if augmentation not in config["augmentations"]:
                raise ConfigError(
                    f"table_s4.augmentations names '{augmentation}', not defined under augmentations"
                )

    # --- score files ----------------------------------------------------------------------------

    def knn_scores(self, model: str, dataset: str) -> str:
        """A model's per-layer kNN scores on a dataset."""
        return self.study.scores("knn", model, dataset)

    def baseline_scores(self, baseline: str, dataset: str) -> str:
        """A TF-IDF baseline's kNN scores on a dataset."""
        return f"{self.study.results}/scores/baselines/{baseline}/{dataset}.csv"

    def pooled_knn_scores(self, model: str, dataset: str, pooling: str) -> str:
        """kNN scores of a model's last layer pooled with `pooling` (embedding.pooling: the usual kNN)."""
        if pooling == self.study.config["embedding"]["pooling"]:
            return self.knn_scores(model, dataset)
        return f"{self.study.results}/scores/knn_pooled/{pooling_name(pooling)}/{model}/{dataset}.csv"

    def datasets(self, spec: dict[str, Any]) -> list[str]:
        """A table's datasets: its `datasets` entry, default study.train_on."""
        return run_plan.table_datasets(self.study.config, spec)

    def models(self, spec: dict[str, Any], dataset: str) -> list[str]:
        """A table's models on a dataset: its `models`, default the Table 2 model and its runs there."""
        if spec.get("models") is not None:
            return spec["models"]
        if dataset in self.study.study["train_on"]:
            return [m for _, m in self.study.table2_panels(dataset)]
        return [self.study.table_model]

    # --- tables of Table 2's shape -----------------------------------------------------------------

    def baseline_cells(self, family: str, datasets: Iterable[str]) -> list[Cell]:
        """Table-2-shaped cells (row, column, scores) of the baselines: kNN tables only, when enabled."""
        if family != "knn" or not self.baselines["enabled"]:
            return []
        return [(d, b, self.baseline_scores(b, d)) for d in datasets for b in BASELINE_NAMES]

    def table2_cells(self, table: str) -> list[Cell]:
        """Table 2's cells: row = training dataset, column = base / augmentation, of one base model."""
        family = SCORE_TABLES[table][0]
        model, train_on = self.study.table_model, self.study.study["train_on"]
        cells = []
        for dataset in train_on:
            cells.append((dataset, "base", f"{self.study.results}/scores/{family}/{model}/{dataset}.csv"))
            for augmentation in self.study.study["augmentations"]:
                run = self.study.run_id(model, dataset, augmentation)
                cells.append(
                    (dataset, augmentation, f"{self.study.results}/scores/{family}/{run}/{dataset}.csv")
                )
        return cells + self.baseline_cells(family, train_on)

    def score_tables(self) -> list[str]:
        """The Table 2 variants this config can make (none without a training dataset)."""
        evaluation = self.study.config["evaluation"]
        if not self.study.study["train_on"]:
            return []
        metrics = evaluation["knn"]["metrics"]
        names = [n for n, m in (("table2_knn", "euclidean"), ("table2_knn_cosine", "cosine")) if m in metrics]
        return names + (["table2_linear"] if evaluation["linear"]["enabled"] else [])

    def seed_cells(self) -> list[Cell]:
        """(row, column, seed, scores) of seeds_knn: Table 2's cells, each augmentation once per seed."""
        study, model = self.study.study, self.study.table_model
        cells = []
        for dataset in study["train_on"]:
            cells.append((dataset, "base", "-", self.knn_scores(model, dataset)))
            for augmentation in study["augmentations"]:
                for seed in dict.fromkeys(study["seeds"]):
                    run = self.study.run_id(model, dataset, augmentation, {"seed": seed})
                    cells.append((dataset, augmentation, seed, self.knn_scores(run, dataset)))
        baselines = self.baseline_cells("knn", study["train_on"])
        return cells + [(row, column, "-", path) for row, column, path in baselines]

    def s4_cells(self) -> list[Cell]:
        """Table-2-shaped cells (row, column, scores) of Table S4."""
        if not self.s4["enabled"]:
            raise ConfigError(
                f"{self.study.results}/tables/tableS4.csv needs table_s4.enabled: true (it adds the runs)"
            )
        config, model = self.study.config, self.study.table_model
        datasets = self.datasets(self.s4)
        cells = []
        for dataset in datasets:
            cells.append((dataset, "base", self.knn_scores(model, dataset)))
            for augmentation in run_plan.s4_augmentations(config):
                run = run_plan.s4_run(config, dataset, augmentation)
                cells.append((dataset, augmentation, self.knn_scores(run, dataset)))
        return cells + self.baseline_cells("knn", datasets)

    def scratch_bases(self) -> list[tuple[str, str]]:
        """Table S6's from-scratch models as (name, model folder): their vocabulary's origin goes
        into the caption."""
        return [
            (name, self.study.model_path(name))
            for name in self.study.study["from_scratch"]
            if self.study.is_scratch(name)
        ]

    def s6_cells(self) -> list[Cell]:
        """Table S6: Table 2's model and runs, comparison models, and models trained from scratch."""
        study, model = self.study.study, self.study.table_model
        cells = []
        for dataset in study["train_on"]:
            cells.append((dataset, model, self.knn_scores(model, dataset)))
            cells += [
                (dataset, f"{model} + {a}", self.knn_scores(self.study.run_id(model, dataset, a), dataset))
                for a in study["augmentations"]
            ]
            cells += [(dataset, name, self.knn_scores(name, dataset)) for name in study["comparison_models"]]
            cells += [
                (dataset, label, self.knn_scores(run, dataset))
                for label, run in self.study.scratch_runs(dataset)
            ]
        return cells + self.baseline_cells("knn", study["train_on"])

    # --- grid tables ---------------------------------------------------------------------------------

    def s3_preprocessed(self) -> list[str]:
        """Table S3's preprocessings other than raw (scored by rule knn_preprocessed)."""
        return [p for p in self.s3["preprocessings"] if p != "raw"]

    def s3_cells(self) -> list[Cell]:
        """(dataset, model, column, metric, scores) of Table S3; raw columns read the usual kNN scores."""
        metrics = self.study.config["evaluation"]["knn"]["metrics"]
        cells = []
        for dataset in self.datasets(self.s3):
            for model in self.models(self.s3, dataset):
                for prep in self.s3["preprocessings"]:
                    family = "knn" if prep == "raw" else "knn_preprocessed"
                    scores = f"{self.study.results}/scores/{family}/{model}/{dataset}.csv"
                    cells += [
                        (
                            dataset,
                            model,
                            f"{prep}_{metric}",
                            metric if prep == "raw" else f"{prep}_{metric}",
                            scores,
                        )
                        for metric in metrics
                    ]
            if self.baselines["enabled"] and "raw" in self.s3["preprocessings"]:
                # sparse TF-IDF is not centred / whitened: the baselines fill the raw columns
                cells += [
                    (dataset, b, f"raw_{m}", m, self.baseline_scores(b, dataset))
                    for b in BASELINE_NAMES
                    for m in metrics
                ]
        return cells

    def s7_cells(self) -> list[Cell]:
        """(dataset, model, column, metric, scores) of Table S7."""
        return [
            (dataset, model, pooling, self.study.knn_metric, self.pooled_knn_scores(model, dataset, pooling))
            for dataset in self.datasets(self.s7)
            for model in self.models(self.s7, dataset)
            for pooling in self.s7["poolings"]
        ]

    def grid_cells(self, table: str) -> list[Cell]:
        """The cells of a grid table (tableS3 or tableS7)."""
        return {"tableS3": self.s3_cells, "tableS7": self.s7_cells}[table]()

    # --- targets -----------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """The tables made by default: Table 2's, the seeds table, Table S6 and the enabled S3 / S4 / S7
        (each can always be requested by file name)."""
        study = self.study.study
        names = self.score_tables()
        if study["seeds"] and study["train_on"]:
            names.append("seeds_knn")
        if (study["comparison_models"] or study["from_scratch"]) and study["train_on"]:
            names.append("tableS6")
        names += [
            name
            for name, spec in (("tableS3", self.s3), ("tableS4", self.s4), ("tableS7", self.s7))
            if spec["enabled"]
        ]
        return [f"{self.study.results}/tables/{name}.{ext}" for name in names for ext in ("csv", "md")]

    def vs_paper_targets(self, targets: list[str], references: Iterable[str]) -> list[str]:
        """RESULTS/tables/{table}_vs_paper.{csv,md} of each table among `targets` that the paper
        has (``references``: the names of the paper's tables)."""
        prefix = f"{self.study.results}/tables/"
        tables = [
            t.removeprefix(prefix).removesuffix(".csv")
            for t in targets
            if t.startswith(prefix) and t.endswith(".csv")
        ]
        return [
            f"{prefix}{table}_vs_paper.{ext}"
            for table in tables
            if table in references
            for ext in ("csv", "md")
        ]
