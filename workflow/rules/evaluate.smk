"""Per-layer scores of every embedding file: kNN accuracy and linear accuracy."""


rule knn:
    input:
        embeddings=in_results("embeddings/{model}/{dataset}"),
        corpus=in_data("raw/{dataset}.parquet"),
    output:
        in_results("scores/knn/{model}/{dataset}.csv"),
    log:
        in_logs("knn/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/knn/{model}/{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: KNN_THREADS
    resources:
        gpu=1,  # exact kNN runs on the GPU when there is one, chunked on `threads` CPU cores otherwise
        mem_mb=KNN_MEM_MB,
        runtime=KNN_RUNTIME,
    params:
        preprocessing="raw",  # Table S3's rule knn_preprocessed scores centred / whitened ones
        k=KNN_K,
        metrics=quoted(*config["evaluation"]["knn"]["metrics"]),
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
        device=config["device"],
    shell:
        "embaug knn --embeddings {input.embeddings:q} --corpus {input.corpus:q} --k {params.k:q} "
        "--metrics {params.metrics} --preprocessing {params.preprocessing} "
        "--test-fraction {params.test_fraction:q} --seed {params.seed:q} --device {params.device:q} "
        "--threads {threads} --out {output:q} > {log:q} 2>&1"


rule linear:
    input:
        embeddings=in_results("embeddings/{model}/{dataset}"),
        corpus=in_data("raw/{dataset}.parquet"),
    output:
        in_results("scores/linear/{model}/{dataset}.csv"),
    log:
        in_logs("linear/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/linear/{model}/{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: LINEAR_THREADS
    resources:
        mem_mb=LINEAR_MEM_MB,
        runtime=LINEAR_RUNTIME,
    params:
        C=LINEAR["C"] if LINEAR["C"] is not None else "none",  # none: no penalty
        solver=LINEAR["solver"],
        tol=LINEAR["tol"],
        max_iter=LINEAR["max_iter"],
        max_train=LINEAR["max_train"] if LINEAR["max_train"] is not None else "none",
        test_fraction=config["evaluation"]["test_fraction"],
        seed=config["evaluation"]["seed"],
    shell:
        "embaug linear --embeddings {input.embeddings:q} --corpus {input.corpus:q} "
        "--C {params.C:q} --solver {params.solver:q} --tol {params.tol:q} --max-iter {params.max_iter:q} "
        "--max-train {params.max_train:q} --test-fraction {params.test_fraction:q} "
        "--seed {params.seed:q} --out {output:q} > {log:q} 2>&1"
