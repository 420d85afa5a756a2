"""Evaluation-side tables: TF-IDF baselines, Table S3 (preprocessing), S4 (held-out split), S7 (pooling).

Every table reuses the kNN scorer and split of `knn` (same score-file columns) and the table writer
of `score_table`; each is a named target (`results/tables/tableS3.csv`, ...) that builds with
nothing else, and is part of the default target when its config section is enabled.
"""


wildcard_constraints:
    pooling=r"mean|cls|sep|token\d+",
    baseline="|".join(BASELINE_NAMES),


rule baselines:
    input:
        in_data("raw/{dataset}.parquet"),
    output:
        tfidf=in_results("scores/baselines/tfidf/{dataset}.csv"),
        svd=in_results("scores/baselines/tfidf_svd/{dataset}.csv"),
    log:
        in_logs("baselines/{dataset}.log"),
    benchmark:
        in_results("benchmarks/baselines/{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        settings=json.dumps(config["baselines"]["tfidf"], sort_keys=True),
        svd_components=config["baselines"]["svd_components"],
        svd_seed=config["baselines"]["seed"],
        k=KNN_K,
        metrics=quoted(*config["evaluation"]["knn"]["metrics"]),
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    shell:
        "embaug tfidf --corpus {input:q} --settings {params.settings:q} "
        "--svd-components {params.svd_components:q} --svd-seed {params.svd_seed:q} --k {params.k:q} "
        "--metrics {params.metrics} --test-fraction {params.test_fraction:q} --seed {params.seed:q} "
        "--out-tfidf {output.tfidf:q} --out-svd {output.svd:q} > {log:q} 2>&1"


# --- Table S3: raw / centred / PCA-whitened x Euclidean / cosine ---------------------------------


use rule knn as knn_preprocessed with:
    output:
        in_results("scores/knn_preprocessed/{model}/{dataset}.csv"),
    log:
        in_logs("knn_preprocessed/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/knn_preprocessed/{model}/{dataset}.tsv")
    params:
        preprocessing=quoted(*PLAN.tables.s3_preprocessed()),


# --- Table S4: fine-tune on a dataset's training part, kNN on its held-out test part -------------
# `{dataset}.train` is the dataset without the kNN test documents (evaluation.test_fraction and
# evaluation.seed: the same split the kNN scorer uses), `{dataset}.test` those documents. Runs train
# on `{dataset}.train` and are scored by the usual `knn` rule on `{dataset}`: the reference set is
# the training part, the queries are exactly the held-out documents, never seen in training.


ruleorder: split_dataset > download


rule split_dataset:
    input:
        in_data("raw/{dataset}.parquet"),
    output:
        train=in_data("raw/{dataset}.train.parquet"),
        test=in_data("raw/{dataset}.test.parquet"),
    log:
        in_logs("split_dataset/{dataset}.log"),
    benchmark:
        in_results("benchmarks/split_dataset/{dataset}.tsv")
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in PLAN.tables.datasets(config["table_s4"])) or "(?!)",
    conda:
        "../../envs/embaug.yaml"
    params:
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    shell:
        "embaug split-dataset --corpus {input:q} --test-fraction {params.test_fraction:q} --seed {params.seed:q} "
        "--out-train {output.train:q} --out-test {output.test:q} > {log:q} 2>&1"


# --- Table S7: pooling ----------------------------------------------------------------------------


use rule embed as embed_pooled with:
    output:
        directory(in_results("embeddings_pooled/{pooling}/{model}/{dataset}")),
    log:
        in_logs("embed_pooled/{pooling}/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/embed_pooled/{pooling}/{model}/{dataset}.tsv")
    params:
        pooling=lambda w: re.sub(r"^token(\d+)$", r"token:\1", w.pooling),
        layers="--layers -1",  # Table S7 reads the last layer only


use rule knn as knn_pooled with:
    input:
        embeddings=in_results("embeddings_pooled/{pooling}/{model}/{dataset}"),
        corpus=in_data("raw/{dataset}.parquet"),
    output:
        in_results("scores/knn_pooled/{pooling}/{model}/{dataset}.csv"),
    log:
        in_logs("knn_pooled/{pooling}/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/knn_pooled/{pooling}/{model}/{dataset}.tsv")


# --- the tables -----------------------------------------------------------------------------------


rule grid_table:
    input:
        lambda w: [cell[-1] for cell in PLAN.tables.grid_cells(w.table)],
    output:
        csv=report(
            in_results("tables/{table}.csv"),
            caption="../report/evaluation_tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=in_results("tables/{table}.md"),
    log:
        in_logs("tables/{table}.log"),
    benchmark:
        in_results("benchmarks/tables/{table}.tsv")
    wildcard_constraints:
        table="|".join(GRID_TITLES),
    conda:
        "../../envs/embaug.yaml"
    params:
        cells=lambda w: repeated("--cell", PLAN.tables.grid_cells(w.table)),
        title=lambda w: GRID_TITLES[w.table].format(k=KNN_K, metric=KNN_METRIC),
    shell:
        "embaug grid-table {params.cells} --title {params.title:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


use rule score_table as table_s4 with:
    input:
        lambda w: [path for *_, path in PLAN.tables.s4_cells()],
    output:
        csv=report(
            in_results("tables/tableS4.csv"),
            caption="../report/evaluation_tables.rst",
            category="Tables",
            labels={"table": "tableS4"},
        ),
        md=in_results("tables/tableS4.md"),
    log:
        in_logs("tables/tableS4.log"),
    benchmark:
        in_results("benchmarks/tables/tableS4.tsv")
    params:
        cells=lambda w: repeated("--cell", PLAN.tables.s4_cells()),
        metric=KNN_METRIC,
        title=(
            f"kNN accuracy (%), k={KNN_K}, {KNN_METRIC}, last layer: "
            "fine-tuned on the training part, queries the held-out test part"
        ),
