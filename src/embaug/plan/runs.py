"""The runs of a validated config, as plain data (the workflow's rules map them).

A run is (model, dataset, augmentation, overrides); overrides are the training / chunking settings
that differ from the config's, each a segment of the run name (:data:`OVERRIDE_SEGMENTS`, in that
order). The config is read, never modified: what is derived from it is in the :class:`RunPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ..config_checks import ConfigError

OVERRIDE_SEGMENTS = {
    "learning_rate": "lr",
    "temperature": "tau",
    "mask_fraction": "mask",
    "sentences": "n",
    "batch_size": "bs",
    "pooling": "pool",
    "freeze_layers": "freeze",
    "epochs": "ep",
    "max_steps": "steps",
    "seed": "seed",
}
"""Each override's segment in a run name (``__lr-0.0001``), in the order of the segments."""

Overrides = dict[str, Any]


class Sweep(NamedTuple):
    """One entry of ``study.sweeps``: the setting, its points and the augmentations swept."""

    setting: str
    points: list[tuple[Any, Overrides]]
    """(value, the run's overrides: the value and the entry's ``settings``) per swept value."""
    augmentations: list[str]


@dataclass(frozen=True)
class RunPlan:
    """The runs of a study: name -> {model, dataset, augmentation, overrides}, and their families."""

    runs: dict[str, dict[str, Any]]
    core_runs: list[str]
    """The runs without overrides (study.models x train_on x augmentations)."""
    sweeps: list[Sweep]
    sweep_model: str
    """The model the sweeps fine-tune (study.sweep_model, else table2_model, else the first model)."""
    sweep_on: str | None
    """The dataset the sweeps train on (study.sweep_on, else the first of study.train_on)."""
    figure3_runs: list[str]
    """Figure 3's runs, one per figure3.train_on dataset (none unless figure3.enabled)."""


def override_defaults(config: dict[str, Any], augmentation: str, dataset: str | None = None) -> Overrides:
    """What each override is when a run does not set it (batch size: the dataset's, if it has one)."""
    training = {**config["training"], **config["datasets"].get(dataset, {}).get("training", {})}
    defaults = {key: training.get(key) for key in OVERRIDE_SEGMENTS}
    defaults["sentences"] = config["chunking"]["sentences"]
    defaults["mask_fraction"] = config["augmentations"][augmentation].get("mask_fraction", 0.0)
    return defaults


def run_overrides(
    config: dict[str, Any], augmentation: str, overrides: Overrides | None = None, dataset: str | None = None
) -> Overrides:
    """The overrides that differ from the defaults, in name order (the run's identity)."""
    defaults = override_defaults(config, augmentation, dataset)
    overrides = overrides or {}
    return {k: overrides[k] for k in OVERRIDE_SEGMENTS if k in overrides and overrides[k] != defaults[k]}


def _segment(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace(":", "")  # token:7 -> token7


def run_id(
    config: dict[str, Any], model: str, dataset: str, augmentation: str, overrides: Overrides | None = None
) -> str:
    """A readable, unique run name: base model, training dataset, augmentation, non-default settings.

    e.g. minilm__iclr__crops, minilm__iclr__crops__seed-1, minilm__iclr__crops__lr-0.0001__ep-10
    """
    name = f"{model}__{dataset}__{augmentation}"
    for key, value in run_overrides(config, augmentation, overrides, dataset).items():
        name += f"__{OVERRIDE_SEGMENTS[key]}-{_segment(value)}"
    return name


def parse_sweeps(study: dict[str, Any], schema: dict[str, Any]) -> list[Sweep]:
    """Every sweep in ``study.sweeps``, a ``settings`` list giving one value per swept value; a value
    that is not valid for its setting (``schema``: the config schema's) fails naming the config key."""
    if not study["sweeps"]:
        return []
    import jsonschema

    override_schemas = schema["definitions"]["overrides"]["properties"]
    found = []
    for key, entry in study["sweeps"].items():
        entry = entry if isinstance(entry, dict) else {"values": entry}
        augmentations = (
            entry.get("augmentations") or study.get("sweep_augmentations") or study["augmentations"]
        )
        settings = entry.get("settings", {})
        for name, value in settings.items():
            if isinstance(value, list) and len(value) != len(entry["values"]):
                raise ConfigError(
                    f"study.sweeps.{key}.settings.{name} has {len(value)} values, "
                    f"study.sweeps.{key}.values {len(entry['values'])}: give one per value, or one for all"
                )
        points = []
        for i, value in enumerate(entry["values"]):
            overrides = {name: v[i] if isinstance(v, list) else v for name, v in settings.items()}
            overrides[key] = value
            for name, setting in overrides.items():
                try:
                    # with the schema's definitions, which a setting's schema may refer to (seed)
                    jsonschema.validate(
                        setting, {**override_schemas[name], "definitions": schema["definitions"]}
                    )
                except jsonschema.ValidationError as exc:
                    where = key if name == key else f"{key}.settings.{name}"
                    raise ConfigError(
                        f"study.sweeps.{where}: {setting!r} is not a valid {name} ({exc.message})"
                    ) from None
            points.append((value, overrides))
        found.append(Sweep(key, points, augmentations))
    return found


def _check_variants(
    config: dict[str, Any], sweeps: list[Sweep], sweep_model: str, sweep_on: str | None
) -> None:
    """Names used by seeds, sweeps and Table S6 must be defined; fail naming the config key."""
    study = config["study"]
    names = {
        "study.sweep_model": ([sweep_model] if study["sweeps"] else [], config["models"]),
        "study.sweep_on": ([sweep_on] if study["sweeps"] else [], study["train_on"]),
        "study.comparison_models": (study["comparison_models"], config["models"]),
        "study.from_scratch": (list(study["from_scratch"]), config["models"]),
        "study.sweep_augmentations": (
            [a for sweep in sweeps for a in sweep.augmentations],
            config["augmentations"],
        ),
        "study.from_scratch_augmentations": (
            study["from_scratch_augmentations"] if study["from_scratch"] else [],
            config["augmentations"],
        ),
    }
    for key, (used, defined) in names.items():
        for name in used:
            if name not in defined:
                raise ConfigError(
                    f"{key} names '{name}', which is not defined (defined: {', '.join(defined)})"
                )
    if study["from_scratch"] and not study["train_on"]:
        raise ConfigError("study.from_scratch needs study.train_on (the datasets to train on)")


def _check_figure3(config: dict[str, Any]) -> None:
    """``figure3``: its datasets and augmentation are defined, and there is a dataset to score on."""
    if not config["figure3"]["enabled"]:
        return
    evaluate_on = figure3_on(config)
    if evaluate_on is None:
        raise ConfigError("figure3.evaluate_on: no dataset to score on (set it, or study.train_on)")
    datasets = config["datasets"]
    named = {"figure3.evaluate_on": [evaluate_on], "figure3.train_on": figure3_train_on(config)}
    for key, names in named.items():
        for name in names:
            if name not in datasets:
                raise ConfigError(
                    f"{key} names '{name}', which is not under datasets ({', '.join(datasets)})"
                )
    augmentation = config["figure3"]["augmentation"]
    if augmentation not in config["augmentations"]:
        raise ConfigError(
            f"figure3.augmentation names '{augmentation}', which is not under augmentations "
            f"({', '.join(config['augmentations'])})"
        )


def _run_specs(
    study: dict[str, Any], sweeps: list[Sweep], sweep_model: str, sweep_on: str | None
) -> list[tuple[str, str, str, Overrides]]:
    """(model, dataset, augmentation, overrides) of every run: the study's, seeds, sweeps, Table S6."""
    core = [(m, d, a, {}) for m in study["models"] for d in study["train_on"] for a in study["augmentations"]]
    specs = core + [(m, d, a, {"seed": s}) for s in study["seeds"] for m, d, a, _ in core]
    specs += [
        (sweep_model, sweep_on, a, overrides)
        for sweep in sweeps
        for a in sweep.augmentations
        for _, overrides in sweep.points
    ]
    for model, overrides in study["from_scratch"].items():
        specs += [
            (model, d, a, overrides) for d in study["train_on"] for a in study["from_scratch_augmentations"]
        ]
    return specs


def plan_runs(config: dict[str, Any], schema: dict[str, Any]) -> RunPlan:
    """The runs of a validated config (its schema defaults filled in; ``schema``: the config schema).

    Fails with a :class:`~embaug.config_checks.ConfigError` naming the key of a sweep value that is not
    valid or a name the seeds, sweeps or Table S6 use that is not defined.
    """
    study = config["study"]
    sweep_model = study.get("sweep_model", study.get("table2_model", study["models"][0]))
    sweep_on = study.get("sweep_on", (study["train_on"] or [None])[0])
    sweeps = parse_sweeps(study, schema)
    _check_variants(config, sweeps, sweep_model, sweep_on)
    _check_figure3(config)
    runs = {}
    for model, dataset, augmentation, overrides in _run_specs(study, sweeps, sweep_model, sweep_on):
        overrides = run_overrides(config, augmentation, overrides, dataset)
        runs[run_id(config, model, dataset, augmentation, overrides)] = {
            "model": model,
            "dataset": dataset,
            "augmentation": augmentation,
            "overrides": overrides,
        }
    core_runs = [run for run, spec in runs.items() if not spec["overrides"]]
    runs.update(table_s4_runs(config))
    figure3 = figure3_runs(config)
    runs.update(figure3)
    return RunPlan(runs, core_runs, sweeps, sweep_model, sweep_on, list(figure3))


def table_model(config: dict[str, Any]) -> str:
    """The model of Table 2 and the tables and figures shaped like it (study.table2_model)."""
    return config["study"].get("table2_model", config["study"]["models"][0])


def knn_metric(config: dict[str, Any]) -> str:
    """The kNN metric of single-metric tables and figures: Euclidean if scored, else the first."""
    metrics = config["evaluation"]["knn"]["metrics"]
    return "euclidean" if "euclidean" in metrics else metrics[0]


def table_datasets(config: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """A table's datasets (table_s3 / table_s4 / table_s7): its `datasets`, default study.train_on."""
    return spec["datasets"] if spec["datasets"] is not None else config["study"]["train_on"]


def s4_augmentations(config: dict[str, Any]) -> list[str]:
    """Table S4's augmentations: table_s4.augmentations, default study.augmentations."""
    chosen = config["table_s4"]["augmentations"]
    return chosen if chosen is not None else config["study"]["augmentations"]


def s4_run(config: dict[str, Any], dataset: str, augmentation: str) -> str:
    """Table S4's run of the Table 2 model on a dataset's training part (`{dataset}.train`)."""
    return run_id(config, table_model(config), f"{dataset}.train", augmentation)


def table_s4_runs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Table S4's runs, trained with their dataset's settings on its training part."""
    if not config["table_s4"]["enabled"]:
        return {}
    return {
        s4_run(config, dataset, augmentation): {
            "model": table_model(config),
            "dataset": f"{dataset}.train",
            "augmentation": augmentation,
            "overrides": {},
            "settings_of": dataset,
        }
        for dataset in table_datasets(config, config["table_s4"])
        for augmentation in s4_augmentations(config)
    }


def figure3_on(config: dict[str, Any]) -> str | None:
    """The dataset Figure 3 scores on: figure3.evaluate_on, else the first of study.train_on."""
    return config["figure3"]["evaluate_on"] or (config["study"]["train_on"] or [None])[0]


def figure3_train_on(config: dict[str, Any]) -> list[str]:
    """The datasets Figure 3 trains on (subsets of): figure3.train_on, else study.train_on."""
    return config["figure3"]["train_on"] or config["study"]["train_on"]


def figure3_run(config: dict[str, Any], dataset: str) -> str:
    """Figure 3's run on the subset of `dataset` matched to evaluate_on's batches."""
    subset = f"{dataset}.match-{figure3_on(config)}"
    return run_id(config, table_model(config), subset, config["figure3"]["augmentation"])


def figure3_runs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Figure 3's runs: the Table 2 model on `{dataset}.match-{evaluate_on}`, trained with
    evaluate_on's settings (the same number of batches) and scored while it trains by kNN on
    evaluate_on's whole split, with the kNN stage's split and k (its last point is then the last
    layer's Table 2 score of that model); no held-out kNN on the training subset."""
    figure3 = config["figure3"]
    if not figure3["enabled"]:
        return {}
    evaluate_on = figure3_on(config)
    evaluation = config["evaluation"]
    settings = {
        "eval_every": figure3["eval_every"],
        "eval_docs": 0,
        "eval_test_fraction": evaluation["test_fraction"],
        "eval_split_seed": evaluation["seed"],
        "eval_k": evaluation["knn"]["k"],
        "eval_metric": knn_metric(config),
    }
    return {
        figure3_run(config, dataset): {
            "model": table_model(config),
            "dataset": f"{dataset}.match-{evaluate_on}",
            "augmentation": figure3["augmentation"],
            "overrides": {},
            "settings_of": evaluate_on,
            "scored_on": [evaluate_on],
            "eval_corpora": [evaluate_on],
            "settings": settings,
        }
        for dataset in figure3_train_on(config)
    }


def scratch_runs(config: dict[str, Any], dataset: str) -> list[tuple[str, str]]:
    """(label, run) of every study.from_scratch model trained on a dataset (Table S6, Section 3.4)."""
    study = config["study"]
    runs = []
    for model, overrides in study["from_scratch"].items():
        for augmentation in study["from_scratch_augmentations"]:
            changed = run_overrides(config, augmentation, overrides, dataset)
            settings = ", ".join(f"{key} {value}" for key, value in changed.items())
            label = f"{model} + {augmentation}" + (f" ({settings})" if settings else "")
            runs.append((label, run_id(config, model, dataset, augmentation, changed)))
    return runs
