"""The inputs of a study's figures: t-SNE maps (Figure 2), per-layer curves (Figure 4b), training
curves (Figures 1 and 3), sweeps (Figures S1 and 4a) and the pretraining-steps figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_checks import ConfigError
from . import runs as run_plan
from .shell import quoted, repeated

if TYPE_CHECKING:
    from .mteb import MtebPlan
    from .study import Study
    from .tables import TablePlan

SWEEP_FIGURES = {
    "figureS1_sweeps": (False, "Figure S1: last-layer kNN accuracy against each swept setting"),
    "figure4a_freeze": (
        True,
        "Figure 4a: last-layer kNN accuracy with the embedding layer and the first k blocks frozen",
    ),
}
"""The sweep figures: name -> (the frozen-layer sweep?, title)."""

Point = tuple[Any, ...]


class FigurePlan:
    """Which files each figure reads, and which figures a study makes by default."""

    def __init__(self, study: Study, tables: TablePlan, mteb: MtebPlan) -> None:
        self.study, self.tables, self.mteb = study, tables, mteb
        config = study.config
        self.tsne = config["evaluation"]["tsne"]
        self.figure3 = config["figure3"]
        self.figure3_on = run_plan.figure3_on(config)
        self.figure3_train_on = run_plan.figure3_train_on(config)
        self._check_figure3_delta()

    def _check_figure3_delta(self) -> None:
        delta = self.figure3["sentence_delta"]
        if self.figure3["enabled"] and delta:
            for key, name in (
                ("sentence_delta.train_on", delta["train_on"]),
                ("evaluate_on", self.figure3_on),
            ):
                if name not in self.figure3_train_on:
                    raise ConfigError(
                        f"figure3.{key} '{name}' is not trained on (figure3.train_on: "
                        f"{', '.join(self.figure3_train_on)}): the deltas need its curve"
                    )

    # --- Figure 2: t-SNE ----------------------------------------------------------------------

    def tsne_datasets(self) -> list[str]:
        """Datasets mapped by t-SNE: evaluation.tsne.datasets, default the training datasets."""
        return self.tsne["datasets"] if self.tsne["datasets"] is not None else self.study.study["train_on"]

    def figure2_files(self, dataset: str) -> list[str]:
        """The t-SNE maps and kNN scores Figure 2 reads on a dataset."""
        results = self.study.results
        return [
            f"{results}/{kind}/{m}/{dataset}.{ext}"
            for _, m in self.study.table2_panels(dataset)
            for kind, ext in (("tsne", "parquet"), ("scores/knn", "csv"))
        ]

    def figure2_args(self, dataset: str) -> str:
        """`--panel NAME COORDS SCORES` arguments of Figure 2."""
        panels = [
            (name, f"{self.study.results}/tsne/{m}/{dataset}.parquet", self.study.scores("knn", m, dataset))
            for name, m in self.study.table2_panels(dataset)
        ]
        return repeated("--panel", panels)

    # --- Figure 4b: per layer -------------------------------------------------------------------

    def layer_models(self, dataset: str) -> list[str]:
        """Models in a per-layer figure (Figure 4b): every base model and its runs trained on the
        dataset, the comparison models as they are (e.g. a sentence-tuned one) and the from-scratch
        runs trained on the dataset (randomly initialised models after self-supervised training)."""
        study, models = self.study.study, []
        for model in study["models"]:
            models.append(model)
            if dataset in study["train_on"]:
                models += [self.study.run_id(model, dataset, a) for a in study["augmentations"]]
        return models + self.layer_references(dataset)

    def layer_references(self, dataset: str) -> list[str]:
        """The comparison models and from-scratch runs of a per-layer figure, drawn apart."""
        study = self.study.study
        if dataset not in study["train_on"]:
            return []
        models = study["comparison_models"] + [run for _, run in self.study.scratch_runs(dataset)]
        return [m for m in models if m not in study["models"]]

    def layer_files(self, family: str, dataset: str) -> list[str]:
        """The per-layer score files a per-layer figure reads."""
        return [self.study.scores(family, m, dataset) for m in self.layer_models(dataset)]

    def layer_args(self, family: str, dataset: str) -> str:
        """`--model NAME SCORES` (and `--reference NAME SCORES`) arguments of a per-layer figure."""
        references = self.layer_references(dataset)
        flags = {m: "--reference" if m in references else "--model" for m in self.layer_models(dataset)}
        return " ".join(
            f"{flag} {quoted(m, self.study.scores(family, m, dataset))}" for m, flag in flags.items()
        )

    # --- Figures 1 and 3: training curves ---------------------------------------------------------

    def run_dir(self, run: str) -> str:
        """A fine-tuning run's model folder (its train_log.csv holds the training curves)."""
        return f"{self.study.results}/models/{run}"

    def figure1_args(self) -> str:
        """`--curve PANEL RUN RUN_DIR COLUMN` of Figure 1: each core run scored in-domain (and its
        MTEB tasks scored while training)."""
        curves = []
        for run in self.study.core_runs:
            curves += [
                (f"MTEB {task} (main score)", run, self.run_dir(run), f"mteb_{task}")
                for task in self.mteb.training_tasks(run)
            ]
            curves.append(
                (
                    f"trained and scored on {self.study.runs[run]['dataset']}",
                    run,
                    self.run_dir(run),
                    "knn_accuracy",
                )
            )
        return repeated("--curve", curves)

    def figure3_args(self) -> str:
        """`--curve PANEL RUN RUN_DIR COLUMN` of each Figure 3 run, labelled by its training dataset."""
        k = self.study.config["evaluation"]["knn"]["k"]
        panel = f"kNN accuracy on {self.figure3_on} ({self.study.knn_metric}, k={k})"
        column = f"knn_accuracy_{self.figure3_on}"
        curves = [
            (panel, f"trained on {d}", self.run_dir(run_plan.figure3_run(self.study.config, d)), column)
            for d in self.figure3_train_on
        ]
        return repeated("--curve", curves)

    def figure3_delta_args(self, deltas: str) -> str:
        """`--deltas SENTENCE_RUN STEP IN_DOMAIN_RUN --deltas-out CSV` (figure3.sentence_delta), by label."""
        delta = self.figure3["sentence_delta"]
        if not delta:
            return ""
        words = [f"trained on {delta['train_on']}", delta["step"], f"trained on {self.figure3_on}"]
        return f"--deltas {quoted(*words)} --deltas-out {quoted(deltas)}"

    # --- Figures S1 and 4a: sweeps; pretraining steps ------------------------------------------------

    def sweep_points(self, freeze: bool) -> list[Point]:
        """(setting, value, column, scores) of Figure 4a (freeze) or Figure S1 (the others): a column
        per augmentation, and for pooling the base model embedded with each pooling too."""
        study, tables = self.study, self.tables
        model, dataset = study.sweep_model, study.sweep_on
        points = [
            (sweep.setting, value, a, tables.knn_scores(study.run_id(model, dataset, a, overrides), dataset))
            for sweep in study.sweeps
            if (sweep.setting == "freeze_layers") == freeze
            for a in sweep.augmentations
            for value, overrides in sweep.points
        ]
        if not freeze:
            points += [
                (sweep.setting, v, "base, same pooling", tables.pooled_knn_scores(model, dataset, v))
                for sweep in study.sweeps
                if sweep.setting == "pooling"
                for v, _ in sweep.points
            ]
        return points

    def sweep_references(self, freeze: bool) -> list[Point]:
        """Horizontal lines: the base model, and for Figure 4a each augmentation's unfrozen run."""
        study, tables = self.study, self.tables
        model, dataset = study.sweep_model, study.sweep_on
        lines = [("base (not fine-tuned)", "base", tables.knn_scores(model, dataset))]
        if freeze:
            frozen = [sweep.augmentations for sweep in study.sweeps if sweep.setting == "freeze_layers"]
            lines += [
                (f"{a}, nothing frozen", a, tables.knn_scores(study.run_id(model, dataset, a), dataset))
                for a in dict.fromkeys(a for augmentations in frozen for a in augmentations)
            ]
        return lines

    def sweep_files(self, figure: str) -> list[str]:
        """The score files a sweep figure reads: its points and reference lines."""
        freeze = SWEEP_FIGURES[figure][0]
        return [path for *_, path in self.sweep_points(freeze) + self.sweep_references(freeze)]

    def sweep_args(self, figure: str) -> str:
        """`--point SETTING VALUE COLUMN SCORES` and `--reference LABEL COLUMN SCORES` arguments."""
        freeze = SWEEP_FIGURES[figure][0]
        points = repeated("--point", self.sweep_points(freeze))
        return f"{points} {repeated('--reference', self.sweep_references(freeze))}"

    def pretraining_steps_points(self, dataset: str) -> list[Point]:
        """(setting, steps, column, scores) of the pretraining-steps figure: the models of the study
        and of Table S6 pretrained from one base model for different numbers of steps (the base itself
        at 0), each as it is and fine-tuned with each augmentation; none with fewer than two models."""
        study, config, tables = self.study, self.study.config, self.tables
        names = dict.fromkeys(
            study.study["models"] + study.study["comparison_models"] + list(study.study["from_scratch"])
        )
        steps = {m: config["models"][m]["pretraining"]["steps"] for m in names if study.is_pretrained(m)}
        bases = {study.pretraining_base(m) for m in steps}
        if len(bases) != 1 or dataset not in study.study["train_on"]:
            return []
        base = bases.pop()
        steps = {base: 0, **steps} if base in names else steps
        points = []
        for model, n in sorted(steps.items(), key=lambda item: item[1]):
            runs = {
                a: study.run_id(model, dataset, a)
                for a in study.study["augmentations"]
                if model in study.study["models"]
            }
            for _, run in study.scratch_runs(dataset):
                if study.runs[run]["model"] == model:
                    runs.setdefault(study.runs[run]["augmentation"], run)
            points.append(("pretraining steps", n, "base", tables.knn_scores(model, dataset)))  # as it is
            points += [
                ("pretraining steps", n, a, tables.knn_scores(run, dataset)) for a, run in runs.items()
            ]
        return points if len(steps) > 1 else []

    # --- targets ------------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Every t-SNE map and figure the config makes by default."""
        study, results, train_on = self.study, self.study.results, self.study.study["train_on"]
        targets = []
        if self.tsne["enabled"]:
            mapped = self.tsne_datasets()
            maps = [(m, d) for m, d in study.evaluations() if d in mapped and study.is_reported(m)]
            targets += [f"{results}/tsne/{m}/{d}.png" for m, d in dict.fromkeys(maps)]
            targets += [f"{results}/figures/figure2_tsne_{d}.png" for d in train_on if d in mapped]
        datasets = dict.fromkeys(train_on + study.study["evaluate_on"])
        targets += [f"{results}/figures/figure4_layers_knn_{d}.png" for d in datasets]
        targets += [f"{results}/figures/loss/{run}.png" for run in study.runs]
        targets += [f"{results}/figures/pretrain_loss/{m}.png" for m in study.pretrained_models()]
        if study.config["training"]["eval_every"] and study.runs:
            targets.append(f"{results}/figures/figure1_training_curves.png")
        if study.figure3_runs:
            targets.append(f"{results}/figures/figure3_curves.png")
        for name, (freeze, _) in SWEEP_FIGURES.items():
            if self.sweep_points(freeze):
                targets += [
                    f"{results}/figures/{name}.png",
                    f"{results}/tables/{name}.csv",
                    f"{results}/tables/{name}.md",
                ]
        targets += [
            f"{results}/figures/pretraining_steps_{d}.png"
            for d in train_on
            if self.pretraining_steps_points(d)
        ]
        return targets
