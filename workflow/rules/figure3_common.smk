"""Figure 3 (config key figure3): the Table 2 model fine-tuned on subsets of several datasets,
each with as many training batches as figure3.evaluate_on, and scored while it trains by kNN on
evaluate_on's whole split. The runs are added to RUNS here; the rules are in figures.smk."""

FIGURE3 = config["figure3"]
FIGURE3_ON = FIGURE3["evaluate_on"] or (STUDY["train_on"] or [None])[0]
FIGURE3_TRAIN_ON = FIGURE3["train_on"] or STUDY["train_on"]


def figure3_dataset(dataset):
    """`{dataset}.match-{evaluate_on}`: the subset of `dataset` matched to evaluate_on's batches."""
    return f"{dataset}.match-{FIGURE3_ON}"


def figure3_run(dataset):
    return run_id(TABLE_MODEL, figure3_dataset(dataset), FIGURE3["augmentation"])


def figure3_settings():
    """What a Figure 3 run adds to its training settings: the score's schedule and its split (the
    kNN stage's, so the last point is the last layer's Table 2 score of that model)."""
    return {
        "eval_every": FIGURE3["eval_every"],
        "eval_docs": 0,  # no held-out kNN on the training subset: Figure 3 plots evaluate_on only
        "eval_test_fraction": config["evaluation"]["test_fraction"],
        "eval_split_seed": config["evaluation"]["seed"],
        "eval_k": config["evaluation"]["knn"]["k"],
        "eval_metric": KNN_METRIC,
    }


FIGURE3_RUNS = []
if FIGURE3["enabled"]:
    for _dataset in FIGURE3_TRAIN_ON:
        FIGURE3_RUNS.append(figure3_run(_dataset))
        RUNS[FIGURE3_RUNS[-1]] = {
            "model": TABLE_MODEL,
            "dataset": figure3_dataset(_dataset),
            "augmentation": FIGURE3["augmentation"],
            "overrides": {},
            "settings_of": FIGURE3_ON,  # evaluate_on's batch size: the same number of batches
            "scored_on": [FIGURE3_ON],
            "eval_corpora": [FIGURE3_ON],
            "settings": figure3_settings(),
        }


def figure3_curve_args(wildcards):
    """`--curve PANEL RUN RUN_DIR COLUMN` of each Figure 3 run, labelled by its training dataset."""
    panel = f"kNN accuracy on {FIGURE3_ON} ({KNN_METRIC}, k={config['evaluation']['knn']['k']})"
    return repeated(
        "--curve",
        [
            [panel, f"trained on {d}", f"{RESULTS}/models/{figure3_run(d)}", f"knn_accuracy_{FIGURE3_ON}"]
            for d in FIGURE3_TRAIN_ON
        ],
    )


def figure3_delta_args(wildcards, output):
    """`--deltas SENTENCE_RUN STEP IN_DOMAIN_RUN --deltas-out CSV` (figure3.sentence_delta), by label."""
    delta = FIGURE3["sentence_delta"]
    if not delta:
        return ""
    words = [f"trained on {delta['train_on']}", delta["step"], f"trained on {FIGURE3_ON}"]
    return f"--deltas {quoted(*words)} --deltas-out {quoted(output.deltas)}"


def _check_figure3_delta():
    delta = FIGURE3["sentence_delta"]
    if FIGURE3["enabled"] and delta:
        for key, name in (("sentence_delta.train_on", delta["train_on"]), ("evaluate_on", FIGURE3_ON)):
            if name not in FIGURE3_TRAIN_ON:
                raise ValueError(
                    f"config: figure3.{key} '{name}' is not trained on (figure3.train_on: "
                    f"{', '.join(FIGURE3_TRAIN_ON)}): the deltas need its curve"
                )


_check_figure3_delta()
