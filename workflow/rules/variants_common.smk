"""Cells, sweep points and targets of the run variants (rules: variants.smk)."""


def knn_scores(model, dataset):
    return f"{RESULTS}/scores/knn/{model}/{dataset}.csv"


def seed_cells():
    """(row, column, seed, scores) of seeds_knn: Table 2's cells, each augmentation once per seed."""
    model = STUDY.get("table2_model", STUDY["models"][0])
    cells = []
    for dataset in STUDY["train_on"]:
        cells.append((dataset, "base", "-", knn_scores(model, dataset)))
        for augmentation in STUDY["augmentations"]:
            for seed in dict.fromkeys(STUDY["seeds"]):
                run = run_id(model, dataset, augmentation, {"seed": seed})
                cells.append((dataset, augmentation, seed, knn_scores(run, dataset)))
    return cells + [
        (row, column, "-", path) for row, column, path in baseline_cells("knn", STUDY["train_on"])
    ]


def sweep_points(freeze):
    """(setting, value, column, scores) of Figure 4a (freeze) or Figure S1 (the others): a column
    per augmentation, and for pooling the base model embedded with each pooling too."""
    points = [
        (key, value, augmentation, knn_scores(run_id(SWEEP_MODEL, SWEEP_ON, augmentation, overrides), SWEEP_ON))
        for key, sweep, augmentations in SWEEPS
        if (key == "freeze_layers") == freeze
        for augmentation in augmentations
        for value, overrides in sweep
    ]  # fmt: skip
    if not freeze:
        points += [
            (key, v, "base, same pooling", pooled_knn_scores(SWEEP_MODEL, SWEEP_ON, v))
            for key, sweep, _ in SWEEPS
            if key == "pooling"
            for v, _ in sweep
        ]  # fmt: skip
    return points


def sweep_references(freeze):
    """Horizontal lines: the base model, and for Figure 4a each augmentation's unfrozen run."""
    lines = [("base (not fine-tuned)", "base", knn_scores(SWEEP_MODEL, SWEEP_ON))]
    if freeze:
        augmentations = dict.fromkeys(a for key, _, augs in SWEEPS if key == "freeze_layers" for a in augs)
        lines += [
            (f"{a}, nothing frozen", a, knn_scores(run_id(SWEEP_MODEL, SWEEP_ON, a), SWEEP_ON))
            for a in augmentations
        ]
    return lines


SWEEP_FIGURES = {  # name -> (freeze?, title)
    "figureS1_sweeps": (False, "Figure S1: last-layer kNN accuracy against each swept setting"),
    "figure4a_freeze": (True, "Figure 4a: last-layer kNN accuracy with the embedding layer and the first k blocks frozen"),
}  # fmt: skip


def sweep_figure_files(name):
    freeze = SWEEP_FIGURES[name][0]
    return [path for *_, path in sweep_points(freeze) + sweep_references(freeze)]


def sweep_figure_args(wildcards):
    """`--point SETTING VALUE COLUMN SCORES` and `--reference LABEL COLUMN SCORES` arguments."""
    freeze = SWEEP_FIGURES[wildcards.figure][0]
    return f"{repeated('--point', sweep_points(freeze))} {repeated('--reference', sweep_references(freeze))}"


def pretraining_steps_points(dataset):
    """(setting, steps, column, scores) of the pretraining-steps figure: the models of the study
    and of Table S6 pretrained from one base model for different numbers of steps (the base itself
    at 0), each as it is and fine-tuned with each augmentation; none with fewer than two models."""
    names = dict.fromkeys(STUDY["models"] + STUDY["comparison_models"] + list(STUDY["from_scratch"]))
    steps = {m: config["models"][m]["pretraining"]["steps"] for m in names if is_pretrained(m)}
    bases = {pretraining_base(config["models"][m]) for m in steps}
    if len(bases) != 1 or dataset not in STUDY["train_on"]:
        return []
    base = bases.pop()
    steps = {base: 0, **steps} if base in names else steps
    points = []
    for model, n in sorted(steps.items(), key=lambda item: item[1]):
        runs = {a: run_id(model, dataset, a) for a in STUDY["augmentations"] if model in STUDY["models"]}
        for _, run in scratch_runs(dataset):
            if RUNS[run]["model"] == model:
                runs.setdefault(RUNS[run]["augmentation"], run)
        points.append(("pretraining steps", n, "base", knn_scores(model, dataset)))  # as it is
        points += [("pretraining steps", n, a, knn_scores(run, dataset)) for a, run in runs.items()]
    return points if len(steps) > 1 else []


def scratch_base_models():
    """Table S6's from-scratch models (their vocabulary's origin goes into the caption)."""
    return [name for name in STUDY["from_scratch"] if is_scratch(name)]


def table_s6_cells():
    """Table S6: Table 2's model and runs, comparison models, and models trained from scratch."""
    model = STUDY.get("table2_model", STUDY["models"][0])
    cells = []
    for dataset in STUDY["train_on"]:
        cells.append((dataset, model, knn_scores(model, dataset)))
        cells += [
            (dataset, f"{model} + {a}", knn_scores(run_id(model, dataset, a), dataset))
            for a in STUDY["augmentations"]
        ]
        cells += [(dataset, name, knn_scores(name, dataset)) for name in STUDY["comparison_models"]]
        cells += [(dataset, label, knn_scores(run, dataset)) for label, run in scratch_runs(dataset)]
    return cells + baseline_cells("knn", STUDY["train_on"])  # fmt: skip


def variant_targets():
    """The seeds table, the sweep figures and Table S6, when the config asks for them."""
    targets = []
    if STUDY["seeds"] and STUDY["train_on"]:
        targets += [f"{RESULTS}/tables/seeds_knn.{ext}" for ext in ("csv", "md")]
    for name, (freeze, _) in SWEEP_FIGURES.items():
        if sweep_points(freeze):
            targets += [f"{RESULTS}/figures/{name}.png"] + [
                f"{RESULTS}/tables/{name}.{ext}" for ext in ("csv", "md")
            ]
    if (STUDY["comparison_models"] or STUDY["from_scratch"]) and STUDY["train_on"]:
        targets += [f"{RESULTS}/tables/tableS6.{ext}" for ext in ("csv", "md")]
    targets += [
        f"{RESULTS}/figures/pretraining_steps_{d}.png"
        for d in STUDY["train_on"]
        if pretraining_steps_points(d)
    ]
    return targets
