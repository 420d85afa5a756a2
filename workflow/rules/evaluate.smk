"""Per-layer scores of every embedding file: kNN accuracy and linear accuracy."""


rule knn:
    input:
        embeddings="results/embeddings/{model}/{dataset}.npz",
        corpus="data/raw/{dataset}.parquet",
    output:
        "results/scores/knn/{model}/{dataset}.csv",
    log:
        "logs/knn/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/knn/{model}/{dataset}.tsv"
    conda:
        "../../envs/embaug.yaml"
    threads: KNN_THREADS
    resources:
        gpu=1,
        mem_mb=KNN_MEM_MB,
        runtime=KNN_RUNTIME,
    params:
        preprocessing="raw",  # Table S3's rule knn_preprocessed scores centred / whitened ones
        k=config["evaluation"]["knn"]["k"],
        metrics=quoted(*config["evaluation"]["knn"]["metrics"]),
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    shell:
        "embaug knn --embeddings {input.embeddings:q} --corpus {input.corpus:q} --k {params.k:q} "
        "--metrics {params.metrics} --preprocessing {params.preprocessing} "
        "--test-fraction {params.test_fraction:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


rule linear:
    input:
        embeddings="results/embeddings/{model}/{dataset}.npz",
        corpus="data/raw/{dataset}.parquet",
    output:
        "results/scores/linear/{model}/{dataset}.csv",
    log:
        "logs/linear/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/linear/{model}/{dataset}.tsv"
    conda:
        "../../envs/embaug.yaml"
    threads: LINEAR_THREADS
    resources:
        mem_mb=LINEAR_MEM_MB,
        runtime=LINEAR_RUNTIME,
    params:
        max_iter=config["evaluation"]["linear"]["max_iter"],
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    shell:
        "embaug linear --embeddings {input.embeddings:q} --corpus {input.corpus:q} "
        "--max-iter {params.max_iter:q} --test-fraction {params.test_fraction:q} "
        "--seed {params.seed:q} --out {output:q} > {log:q} 2>&1"
