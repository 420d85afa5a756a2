"""Evaluation-side tables: TF-IDF baselines, Table S3 (preprocessing), S4 (held-out split), S7 (pooling).

Every table reuses the kNN scorer and split of `knn` (same score-file columns) and the table writer
of `score_table`; each is a named target (`results/tables/tableS3.csv`, ...) that builds with
nothing else, and is part of the default target when its config section is enabled.
"""


BASELINES = config["baselines"]
BASELINE_NAMES = ["tfidf", "tfidf_svd"]
TABLE_S3 = config["table_s3"]
TABLE_S4 = config["table_s4"]
TABLE_S7 = config["table_s7"]
TABLE_MODEL = STUDY.get("table2_model", STUDY["models"][0])


wildcard_constraints:
    pooling=r"mean|cls|sep|token\d+",
    baseline="|".join(BASELINE_NAMES),


def _check_evaluation_tables():
    """Datasets and models the tables name must be defined; fail naming the config key."""
    for key, spec in (("table_s3", TABLE_S3), ("table_s4", TABLE_S4), ("table_s7", TABLE_S7)):
        for dataset in spec["datasets"] or []:
            if dataset not in config["datasets"]:
                raise ValueError(f"config: {key}.datasets names '{dataset}', which is not defined under datasets")
        for model in spec.get("models") or []:
            if model not in config["models"] and model not in RUNS:
                raise ValueError(f"config: {key}.models names '{model}', neither a model nor a run")
    for augmentation in TABLE_S4["augmentations"] or []:
        if augmentation not in config["augmentations"]:
            raise ValueError(f"config: table_s4.augmentations names '{augmentation}', not defined under augmentations")
    for pooling in TABLE_S7["poolings"]:
        if not re.fullmatch(r"mean|cls|sep|token:\d+", pooling):
            raise ValueError(f"config: table_s7.poolings: unknown pooling '{pooling}' (mean, cls, sep or token:K)")


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
    return f"results/scores/baselines/{baseline}/{dataset}.csv"


def baseline_cells(family, datasets):
    """Table-2-shaped cells (row, column, scores) of the baselines: kNN tables only, when enabled."""
    if family != "knn" or not BASELINES["enabled"]:
        return []
    return [(d, b, baseline_scores(b, d)) for d in datasets for b in BASELINE_NAMES]


rule baselines:
    input:
        "data/raw/{dataset}.parquet",
    output:
        tfidf="results/scores/baselines/tfidf/{dataset}.csv",
        svd="results/scores/baselines/tfidf_svd/{dataset}.csv",
    params:
        settings=json.dumps(BASELINES["tfidf"], sort_keys=True),
        svd_components=BASELINES["svd_components"],
        svd_seed=BASELINES["seed"],
        k=config["evaluation"]["knn"]["k"],
        metrics=" ".join(KNN_METRICS),
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    log:
        "logs/baselines/{dataset}.log",
    benchmark:
        "results/benchmarks/baselines/{dataset}.tsv"
    conda:
        "../../envs/embaug.yaml"
    shell:
        "embaug tfidf --corpus {input} --settings {params.settings:q} "
        "--svd-components {params.svd_components} --svd-seed {params.svd_seed} --k {params.k} "
        "--metrics {params.metrics} --test-fraction {params.test_fraction} --seed {params.seed} "
        "--out-tfidf {output.tfidf} --out-svd {output.svd} > {log} 2>&1"


# --- Table S3: raw / centred / PCA-whitened x Euclidean / cosine ---------------------------------


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
                    scores = f"results/scores/{family}/{model}/{dataset}.csv"
                    cells.append((dataset, model, f"{prep}_{metric}", metric if prep == "raw" else f"{prep}_{metric}", scores))
        if BASELINES["enabled"] and "raw" in TABLE_S3["preprocessings"]:
            # sparse TF-IDF is not centred / whitened: the baselines fill the raw columns
            cells += [(dataset, b, f"raw_{m}", m, baseline_scores(b, dataset)) for b in BASELINE_NAMES for m in KNN_METRICS]
    return cells


use rule knn as knn_preprocessed with:
    output:
        "results/scores/knn_preprocessed/{model}/{dataset}.csv",
    params:
        preprocessing=" ".join(s3_preprocessed()),
    log:
        "logs/knn_preprocessed/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/knn_preprocessed/{model}/{dataset}.tsv"


# --- Table S4: fine-tune on a dataset's training part, kNN on its held-out test part -------------
# `{dataset}.train` is the dataset without the kNN test documents (evaluation.test_fraction and
# evaluation.seed: the same split the kNN scorer uses), `{dataset}.test` those documents. Runs train
# on `{dataset}.train` and are scored by the usual `knn` rule on `{dataset}`: the reference set is
# the training part, the queries are exactly the held-out documents, never seen in training.


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
            }


def s4_cells():
    """Table-2-shaped cells (row, column, scores) of Table S4."""
    if not TABLE_S4["enabled"]:
        raise ValueError("config: results/tables/tableS4.csv needs table_s4.enabled: true (it adds the runs)")
    datasets = table_datasets(TABLE_S4)
    cells = []
    for dataset in datasets:
        cells.append((dataset, "base", f"results/scores/knn/{TABLE_MODEL}/{dataset}.csv"))
        for augmentation in s4_augmentations():
            cells.append((dataset, augmentation, f"results/scores/knn/{s4_run(dataset, augmentation)}/{dataset}.csv"))
    return cells + baseline_cells("knn", datasets)


ruleorder: split_dataset > download


rule split_dataset:
    input:
        "data/raw/{dataset}.parquet",
    output:
        train="data/raw/{dataset}.train.parquet",
        test="data/raw/{dataset}.test.parquet",
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in table_datasets(TABLE_S4)) or "(?!)",
    params:
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    log:
        "logs/split_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/split_dataset/{dataset}.tsv"
    conda:
        "../../envs/embaug.yaml"
    shell:
        "embaug split-dataset --corpus {input} --test-fraction {params.test_fraction} --seed {params.seed} "
        "--out-train {output.train} --out-test {output.test} > {log} 2>&1"


# --- Table S7: pooling ----------------------------------------------------------------------------


def pooling_name(pooling):
    """A pooling as a path segment: token:7 -> token7."""
    return pooling.replace(":", "")


def pooled_knn_scores(model, dataset, pooling):
    """kNN scores of a model's last layer pooled with `pooling` (embedding.pooling: the usual kNN)."""
    if pooling == config["embedding"]["pooling"]:
        return f"results/scores/knn/{model}/{dataset}.csv"
    return f"results/scores/knn_pooled/{pooling_name(pooling)}/{model}/{dataset}.csv"


def s7_cells():
    """(dataset, model, column, metric, scores) of Table S7."""
    return [
        (dataset, model, pooling, KNN_METRIC, pooled_knn_scores(model, dataset, pooling))
        for dataset in table_datasets(TABLE_S7)
        for model in table_models(TABLE_S7, dataset)
        for pooling in TABLE_S7["poolings"]
    ]


use rule embed as embed_pooled with:
    output:
        "results/embeddings_pooled/{pooling}/{model}/{dataset}.npz",
    params:
        pooling=lambda w: re.sub(r"^token(\d+)$", r"token:\1", w.pooling),
        layers="--layers -1",  # Table S7 reads the last layer only
    log:
        "logs/embed_pooled/{pooling}/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/embed_pooled/{pooling}/{model}/{dataset}.tsv"


use rule knn as knn_pooled with:
    input:
        embeddings="results/embeddings_pooled/{pooling}/{model}/{dataset}.npz",
        corpus="data/raw/{dataset}.parquet",
    output:
        "results/scores/knn_pooled/{pooling}/{model}/{dataset}.csv",
    log:
        "logs/knn_pooled/{pooling}/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/knn_pooled/{pooling}/{model}/{dataset}.tsv"


# --- the tables -----------------------------------------------------------------------------------

GRID_TABLES = {
    "tableS3": (s3_cells, "kNN accuracy (%), k={k}, last layer: raw / centred / PCA-whitened embeddings"),
    "tableS7": (s7_cells, "kNN accuracy (%), k={k}, {metric}, last layer, by pooling"),
}


rule grid_table:
    input:
        lambda w: [cell[-1] for cell in GRID_TABLES[w.table][0]()],
    output:
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/evaluation_tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="results/tables/{table}.md",
    wildcard_constraints:
        table="|".join(GRID_TABLES),
    params:
        cells=lambda w: " ".join("--cell " + " ".join(map(shlex.quote, cell)) for cell in GRID_TABLES[w.table][0]()),
        title=lambda w: GRID_TABLES[w.table][1].format(k=config["evaluation"]["knn"]["k"], metric=KNN_METRIC),
    log:
        "logs/tables/{table}.log",
    benchmark:
        "results/benchmarks/tables/{table}.tsv"
    conda:
        "../../envs/embaug.yaml"
    shell:
        "embaug grid-table {params.cells} --title {params.title:q} "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


use rule score_table as table_s4 with:
    input:
        lambda w: [path for _, _, path in s4_cells()],
    output:
        csv=report(
            "results/tables/tableS4.csv",
            caption="../report/evaluation_tables.rst",
            category="Tables",
            labels={"table": "tableS4"},
        ),
        md="results/tables/tableS4.md",
    params:
        cells=lambda w: " ".join(f"--cell {row} {column} {path}" for row, column, path in s4_cells()),
        metric=KNN_METRIC,
        title=(
            f"kNN accuracy (%), k={config['evaluation']['knn']['k']}, {KNN_METRIC}, last layer: "
            "fine-tuned on the training part, queries the held-out test part"
        ),
    log:
        "logs/tables/tableS4.log",
    benchmark:
        "results/benchmarks/tables/tableS4.tsv"


def evaluation_table_targets():
    """The evaluation-side tables that are enabled (each can always be requested by file name)."""
    names = [n for n, spec in (("tableS3", TABLE_S3), ("tableS4", TABLE_S4), ("tableS7", TABLE_S7)) if spec["enabled"]]
    return [f"results/tables/{name}.{ext}" for name in names for ext in ("csv", "md")]
