"""MTEB in a study: Table 1 / S1 and Section 3.4's tables, per-layer scores (Figure 4c, S3) and
the tasks scored while fine-tuning (Figure 1)."""

from __future__ import annotations

import json
import re
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from ..config_checks import ConfigError
from .shell import quoted, repeated

if TYPE_CHECKING:
    from .study import Study


class MtebPlan:
    """The MTEB jobs, tables and figures of a study (config keys `mteb` and `mteb_tasks`)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.mteb = study.config["mteb"]
        self.local_tasks = study.config["mteb_tasks"]
        self.blocks = {block: tasks for block, tasks in self.mteb["blocks"].items() if tasks}
        layer_tasks = self.mteb["layer_tasks"]  # "all": Figure 4c over every task of the blocks
        self.layer_tasks = (
            [t for ts in self.blocks.values() for t in ts] if layer_tasks == "all" else layer_tasks
        )
        self.tables = self._tables()
        self._check()

    def _tables(self) -> dict[str, dict[str, Any]]:
        """Table name -> spec (models, train_on, references, ...), by default the paper's Table 1
        and, with study.from_scratch, Section 3.4's comparison (as the paper: no classification)."""
        if self.mteb["tables"] is not None:
            return self.mteb["tables"]
        study = self.study.study
        model = self.study.table_model
        train_on = "iclr" if "iclr" in study["train_on"] else (study["train_on"] or [None])[0]
        tables = {
            "table1_mteb": {"models": [model], "train_on": train_on, "references": self.mteb["references"]}
        }
        if study["from_scratch"] and train_on:
            blocks = [block for block in self.blocks if block != "classification"]
            tables["scratch_mteb"] = {
                "models": [model],
                "train_on": train_on,
                "from_scratch": True,
                "blocks": blocks,
            }
        return tables

    def _check(self) -> None:
        """Names in mteb.tables / references / layer_models must be defined; fail naming the key."""
        config, study = self.study.config, self.study.study
        for table, spec in self.tables.items():
            if not re.fullmatch(r"[a-z0-9_]+", table):
                raise ConfigError(f"mteb.tables.{table}: use lower case letters, digits and _")
            if spec.get("train_on") and spec["train_on"] not in study["train_on"]:
                raise ConfigError(
                    f"mteb.tables.{table}.train_on '{spec['train_on']}' is not in study.train_on"
                )
            for model in spec["models"] + spec.get("references", []):
                if model not in config["models"]:
                    raise ConfigError(f"mteb.tables.{table} names model '{model}', not defined under models")
            for block in spec.get("blocks", []):
                if block not in self.mteb["blocks"]:
                    raise ConfigError(f"mteb.tables.{table}.blocks names '{block}', not under mteb.blocks")
            if spec.get("from_scratch") and not (spec.get("train_on") and study["from_scratch"]):
                raise ConfigError(
                    f"mteb.tables.{table}.from_scratch needs its train_on and study.from_scratch"
                )
        for model in self.mteb["layer_models"] or []:
            if model not in config["models"] and model not in self.study.runs:
                raise ConfigError(f"mteb.layer_models names '{model}', neither a model nor a run")

    # --- tables -------------------------------------------------------------------------------

    def rows(self, table: str) -> list[tuple[str, str]]:
        """(label, model) rows of an MTEB table: base, its runs (one per augmentation), references."""
        spec = self.tables[table]
        rows = []
        for model in spec["models"]:
            rows.append((model, model))
            if spec.get("train_on"):
                rows += [
                    (f"{model} + {a}", self.study.run_id(model, spec["train_on"], a))
                    for a in self.study.study["augmentations"]
                ]
        if spec.get("from_scratch"):
            rows += self.study.scratch_runs(spec["train_on"])
        return rows + [(ref, ref) for ref in spec.get("references", [])]

    def table_blocks(self, table: str) -> dict[str, list[str]]:
        """The blocks an MTEB table averages: its `blocks`, else every one of mteb.blocks."""
        names = self.tables[table].get("blocks") or list(self.blocks)
        return {block: self.blocks[block] for block in names if block in self.blocks}

    def table_files(self, table: str) -> list[str]:
        """The MTEB result files an MTEB table reads: each row's model on each task of its blocks."""
        tasks = [task for tasks in self.table_blocks(table).values() for task in tasks]
        return [f"{self.study.results}/mteb/{m}/{t}.json" for _, m in self.rows(table) for t in tasks]

    def table_args(self, table: str) -> str:
        """`--row LABEL DIR` arguments of one MTEB table."""
        return repeated("--row", [(label, f"{self.study.results}/mteb/{m}") for label, m in self.rows(table)])

    # --- one job per model and task ------------------------------------------------------------

    def encoding(self, model: str) -> str:
        """`--max-length N --[no-]normalize` of a model's MTEB encoding: the authors' encodings of
        base / reference models (SentenceTransformer(hub id)) and of fine-tuned runs (exported)."""
        runs = self.study.runs
        base = runs[model]["model"] if model in runs else model
        # the authors' exported fine-tuned models; not their bare embedding model (MyEmbeddingSentenceModel)
        exported = model in runs and self.study.config["models"][base].get("kind") != "embedding_only"
        max_length = self.mteb["finetuned_max_length"] if exported else self.mteb["max_length"]
        normalize = self.mteb["normalize_runs"] if exported else self.mteb["normalize_models"]
        return f"--max-length {quoted(max_length)} --{'' if normalize else 'no-'}normalize"

    def local_files(self, task: str) -> list[str]:
        """The task's local data file, where mteb_tasks points the task at one."""
        spec = self.local_tasks.get(task)
        return [spec["path"]] if spec else []

    def local_args(self, task: str) -> str:
        """`--local-path FILE` when mteb_tasks points the task at local data."""
        return " ".join(f"--local-path {quoted(path)}" for path in self.local_files(task))

    # --- scored while fine-tuning (Figure 1) ------------------------------------------------------

    def training_tasks(self, run: str | None = None) -> list[str]:
        """MTEB tasks scored during fine-tuning (Figure 1), when training.eval_every is on: for the
        runs of the first MTEB table (Table 1: the base model's runs on ICLR), or any run if None."""
        if not self.study.config["training"]["eval_every"]:
            return []
        if run is not None and run not in self.table_runs():
            return []
        return self.mteb["training_curves"]

    def table_runs(self) -> list[str]:
        """The runs of the first MTEB table."""
        return (
            [m for _, m in self.rows(next(iter(self.tables))) if m in self.study.runs] if self.tables else []
        )

    def training_settings(self, run: str) -> dict[str, Any]:
        """What a run scored on MTEB while it trains adds to its settings: the authors' encoding."""
        if not self.training_tasks(run):
            return {}
        settings = {
            "mteb_max_length": self.mteb["finetuned_max_length"],
            "mteb_normalize": self.mteb["normalize_runs"],
        }
        if self.mteb["training_curve_steps"]:
            settings["eval_steps"] = sorted(self.mteb["training_curve_steps"])
        return settings

    def training_files(self, run: str) -> list[str]:
        """The local task files a run scored on MTEB while it trains reads."""
        return [path for task in self.training_tasks(run) for path in self.local_files(task)]

    def training_args(self, run: str) -> str:
        """`--eval-mteb TASK[=FILE]` arguments of a fine-tuning run."""
        tasks = [
            [task + "".join(f"={path}" for path in self.local_files(task))]
            for task in self.training_tasks(run)
        ]
        return repeated("--eval-mteb", tasks)

    def training_blocks(self) -> str:
        """Figure 1's blocks (JSON): each mteb.blocks entry restricted to the tasks scored while training."""
        blocks = {b: [t for t in ts if t in self.mteb["training_curves"]] for b, ts in self.blocks.items()}
        return json.dumps({block: tasks for block, tasks in blocks.items() if tasks})

    # --- per layer (Figure 4c, S3) ---------------------------------------------------------------

    def layer_models(self) -> list[str]:
        """The models scored per layer: mteb.layer_models, else the rows of the first MTEB table."""
        if self.mteb["layer_models"] is not None:
            return self.mteb["layer_models"]
        return [m for _, m in self.rows(next(iter(self.tables)))] if self.tables else []

    @cache  # noqa: B019 (one plan per workflow; each job's resources and inputs ask again)
    def layers(self, model: str) -> list[int]:
        """Layer indices scored per layer: mteb.layers, else every layer (from the model's config)."""
        if self.mteb["layers"] is not None:
            return self.mteb["layers"]
        base = self.study.model_origin(model)
        spec = self.study.config["models"][base]
        if self.study.is_scratch(base):
            return list(range(spec["architecture"].get("num_hidden_layers", 12) + 1))
        from transformers import AutoConfig

        try:  # only config.json, read while the DAG is built (into the user's HF cache, not
            # cache_dir/hub, where a folder with config.json alone would look like a finished download)
            found = AutoConfig.from_pretrained(self.study.sources[base], revision=spec.get("revision"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the layer count of '{base}' ({exc}); set mteb.layers") from exc
        return list(range(found.num_hidden_layers + 1))

    @cached_property
    def layer_plan(self) -> tuple[tuple[int, ...], list[str]]:
        """(layers, models) of the per-layer jobs: one job per (model, task) writes every layer's
        file, so its outputs are one layer list: the first per-layer model's; models scored on
        other layers (another depth, with mteb.layers null) fail in :meth:`layer_files`. A model
        whose layer count cannot be read here is left out (asking for its scores names mteb.layers)."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for model in self.layer_models() if self.layer_tasks else []:
            try:
                groups.setdefault(tuple(self.layers(model)), []).append(model)
            except ConfigError:
                continue
        return next(iter(groups.items()), ((), []))

    def layer_blocks(self) -> dict[str, list[str]]:
        """The per-layer tasks grouped by their block (tasks in no block go to 'other')."""
        blocks = {b: [t for t in ts if t in self.layer_tasks] for b, ts in self.blocks.items()}
        placed = {t for ts in blocks.values() for t in ts}
        blocks["other"] = [t for t in self.layer_tasks if t not in placed]
        return {b: ts for b, ts in blocks.items() if ts}

    def layer_files(self, model: str) -> list[str]:
        """A per-layer model's MTEB result files, one per layer and task (its layers must be the plan's)."""
        layers = self.layers(model)
        planned_layers, planned_models = self.layer_plan
        if model not in planned_models or tuple(layers) != tuple(planned_layers):
            raise ConfigError(
                f"per-layer MTEB of '{model}' (layers {layers}): the per-layer models "
                f"{planned_models} are scored on layers {list(planned_layers)}; set mteb.layers (one "
                "list for every model) or mteb.layer_models (models of one depth)"
            )
        return [
            f"{self.study.results}/mteb/{model}/layer{k}/{t}.json" for k in layers for t in self.layer_tasks
        ]

    def layer_args(self, model: str) -> str:
        """`--row LAYER DIR` arguments of a model's per-layer MTEB table."""
        return repeated(
            "--row", [(k, f"{self.study.results}/mteb/{model}/layer{k}") for k in self.layers(model)]
        )

    def layer_figure_args(self) -> str:
        """`--model NAME SCORES` of Figures 4c / S3: each per-layer model's table."""
        return repeated("--model", [(m, self.layer_scores(m)) for m in self.layer_models()])

    def layer_scores(self, model: str) -> str:
        """A model's per-layer MTEB table (Figure 4c reads it)."""
        return f"{self.study.results}/scores/mteb_layers/{model}.csv"

    def targets(self) -> list[str]:
        """MTEB tables and per-layer MTEB scores, when mteb.enabled."""
        if not self.mteb["enabled"] or not self.blocks:
            return []
        results = self.study.results
        targets = [f"{results}/tables/{t}.{ext}" for t in self.tables for ext in ("csv", "md")]
        if self.layer_tasks:
            targets += [self.layer_scores(m) for m in self.layer_models()]
            targets.append(f"{results}/figures/figure4c_mteb_layers.png")
            if len(self.layer_blocks()) > 1:
                targets.append(f"{results}/figures/figureS3_mteb_layer_blocks.png")
        return targets
