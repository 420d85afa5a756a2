"""Settings, checks, cells and targets of the evaluation-side tables (rules: evaluation_tables.smk)."""

BASELINES = config["baselines"]
BASELINE_NAMES = ["tfidf", "tfidf_svd"]
TABLE_S3 = config["table_s3"]
TABLE_S4 = config["table_s4"]
TABLE_S7 = config["table_s7"]
TABLE_MODEL = STUDY.get("table2_model", STUDY["models"][0])


def _check_evaluation_tables():
    """Datasets and models the tables name must be defined; fail naming the config key."""
    for key, spec in (("table_s3", TABLE_S3), ("table_s4", TABLE_S4), ("table_s7", TABLE_S7)):
        for dataset in spec["datasets"] or []:
            if dataset not in config["datasets"]:
                raise ValueError(
                    f"config: {key}.datasets names '{dataset}', which is not defined under datasets"
                )
        for model in spec.get("models") or []:
            if model not in config["models"] and model not in RUNS:
                raise ValueError(f"config: {key}.models names '{model}', neither a model nor a run")
    for augmentation in TABLE_S4["augmentations"] or []:
        if augmentation not in config["augmentations"]:
            raise ValueError(
                f"config: table_s4.augmentations names '{augmentation}', not defined under augmentations"
            )
    for pooling in TABLE_S7["poolings"]:
        if not re.fullmatch(r"mean|cls|sep|token:\d+", pooling):
            raise ValueError(
                f"config: table_s7.poolings: unknown pooling '{pooling}' (mean, cls, sep or token:K)"
            )


_check_evaluation_tables()


def table_datasets(spec):
    """A table's datasets: its `datasets` entry, default study.train_on."""
    return spec["datasets"] if spec["datasets"] is not None else STUDY["train_on"]


def table_models(spec, dataset):
    """A table's models on a dataset: its `models` entry, default the Table 2 model and its runs there."""
    if spec.get("models") is not None:
        return spec["models"]
    if dataset in STUDY["train_on"]:
        return [m for _, m in figure2_panels(dataset)]
    return [TABLE_MODEL]


# --- TF-IDF baselines ---------------------------------------------------------------------------


def baseline_scores(baseline, dataset):
    return f"{RESULTS}/scores/baselines/{baseline}/{dataset}.csv"


def baseline_cells(family, datasets):
    """Table-2-shaped cells (row, column, scores) of the baselines: kNN tables only, when enabled."""
    if family != "knn" or not BASELINES["enabled"]:
        return []
    return [(d, b, baseline_scores(b, d)) for d in datasets for b in BASELINE_NAMES]


def s3_preprocessed():
    return [p for p in TABLE_S3["preprocessings"] if p != "raw"]


def s3_cells():
    """(dataset, model, column, metric, scores) of Table S3; raw columns read the usual kNN scores."""
    cells = []
    for dataset in table_datasets(TABLE_S3):
        for model in table_models(TABLE_S3, dataset):
            for prep in TABLE_S3["preprocessings"]:
                family = "knn" if prep == "raw" else "knn_preprocessed"
                for metric in KNN_METRICS:
                    scores = f"{RESULTS}/scores/{family}/{model}/{dataset}.csv"
                    cells.append(
                        (
                            dataset,
                            model,
                            f"{prep}_{metric}",
                            metric if prep == "raw" else f"{prep}_{metric}",
                            scores,
                        )
                    )
        if BASELINES["enabled"] and "raw" in TABLE_S3["preprocessings"]:
            # sparse TF-IDF is not centred / whitened: the baselines fill the raw columns
            cells += [
                (dataset, b, f"raw_{m}", m, baseline_scores(b, dataset))
                for b in BASELINE_NAMES
                for m in KNN_METRICS
            ]
    return cells


def s4_run(dataset, augmentation):
    return run_id(TABLE_MODEL, f"{dataset}.train", augmentation)


def s4_augmentations():
    return TABLE_S4["augmentations"] if TABLE_S4["augmentations"] is not None else STUDY["augmentations"]


if TABLE_S4["enabled"]:
    for _dataset in table_datasets(TABLE_S4):
        for _augmentation in s4_augmentations():
            RUNS[s4_run(_dataset, _augmentation)] = {
                "model": TABLE_MODEL,
                "dataset": f"{_dataset}.train",
                "augmentation": _augmentation,
                "overrides": {},
                "settings_of": _dataset,
            }


def s4_cells():
    """Table-2-shaped cells (row, column, scores) of Table S4."""
    if not TABLE_S4["enabled"]:
        raise ValueError(
            f"config: {RESULTS}/tables/tableS4.csv needs table_s4.enabled: true (it adds the runs)"
        )
    datasets = table_datasets(TABLE_S4)
    cells = []
    for dataset in datasets:
        cells.append((dataset, "base", f"{RESULTS}/scores/knn/{TABLE_MODEL}/{dataset}.csv"))
        for augmentation in s4_augmentations():
            cells.append(
                (dataset, augmentation, f"{RESULTS}/scores/knn/{s4_run(dataset, augmentation)}/{dataset}.csv")
            )
    return cells + baseline_cells("knn", datasets)


def pooling_name(pooling):
    """A pooling as a path segment: token:7 -> token7."""
    return pooling.replace(":", "")


def pooled_knn_scores(model, dataset, pooling):
    """kNN scores of a model's last layer pooled with `pooling` (embedding.pooling: the usual kNN)."""
    if pooling == config["embedding"]["pooling"]:
        return f"{RESULTS}/scores/knn/{model}/{dataset}.csv"
    return f"{RESULTS}/scores/knn_pooled/{pooling_name(pooling)}/{model}/{dataset}.csv"


def s7_cells():
    """(dataset, model, column, metric, scores) of Table S7."""
    return [
        (dataset, model, pooling, KNN_METRIC, pooled_knn_scores(model, dataset, pooling))
        for dataset in table_datasets(TABLE_S7)
        for model in table_models(TABLE_S7, dataset)
        for pooling in TABLE_S7["poolings"]
    ]


GRID_TABLES = {
    "tableS3": (s3_cells, "kNN accuracy (%), k={k}, last layer: raw / centred / PCA-whitened embeddings"),
    "tableS7": (s7_cells, "kNN accuracy (%), k={k}, {metric}, last layer, by pooling"),
}


def evaluation_table_targets():
    """The evaluation-side tables that are enabled (each can always be requested by file name)."""
    names = [
        n
        for n, spec in (("tableS3", TABLE_S3), ("tableS4", TABLE_S4), ("tableS7", TABLE_S7))
        if spec["enabled"]
    ]
    return [f"{RESULTS}/tables/{name}.{ext}" for name in names for ext in ("csv", "md")]
