"""download -> chunk."""


rule download:
    input:
        local_source,
    output:
        "data/raw/{dataset}.parquet",
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "results/benchmarks/download/{dataset}.tsv"
    wildcard_constraints:  # only configured datasets: data/raw/iclr.train.parquet is split_dataset's
        dataset="|".join(re.escape(name) for name in config["datasets"]),
    conda:
        "../../envs/embaug.yaml"
    params:
        spec=lambda w: json.dumps(config["datasets"][w.dataset], sort_keys=True),
        cache_dir=config["cache_dir"],
    shell:
        "embaug download --dataset {wildcards.dataset:q} --spec {params.spec:q} "
        "--cache-dir {params.cache_dir:q} --out {output:q} > {log:q} 2>&1"


rule chunk:
    input:
        "data/raw/{dataset}.parquet",
    output:
        "data/chunks/{dataset}/n{n}.parquet",
    log:
        "logs/chunk/{dataset}/n{n}.log",
    benchmark:
        "results/benchmarks/chunk/{dataset}/n{n}.tsv"
    conda:
        "../../envs/embaug.yaml"
    params:
        min_chars=config["chunking"]["min_chars"],
        max_chars=config["chunking"]["max_chars"],
    shell:
        "embaug chunk --corpus {input:q} --dataset {wildcards.dataset:q} --sentences {wildcards.n:q} "
        "--min-chars {params.min_chars:q} --max-chars {params.max_chars:q} --out {output:q} > {log:q} 2>&1"
