"""download -> chunk; download_model for hub models pinned by a revision."""


rule download:
    input:
        lambda w: PLAN.local_source(w.dataset),
    output:
        in_data("raw/{dataset}.parquet"),
    log:
        in_logs("download/{dataset}.log"),
    benchmark:
        in_results("benchmarks/download/{dataset}.tsv")
    wildcard_constraints:  # only configured datasets: data/raw/iclr.train.parquet is split_dataset's
        dataset="|".join(re.escape(name) for name in config["datasets"]),
    conda:
        "../../envs/embaug.yaml"
    params:
        # what the download reads: a new `training:` block re-trains, it never re-downloads
        spec=lambda w: PLAN.download_spec(w.dataset),
        cache_dir=config["cache_dir"],
    shell:
        "embaug download --dataset {wildcards.dataset:q} --spec {params.spec:q} "
        "--cache-dir {params.cache_dir:q} --out {output:q} > {log:q} 2>&1"


rule chunk:
    input:
        in_data("raw/{dataset}.parquet"),
    output:
        in_data("chunks/{dataset}/n{n}.parquet"),
    log:
        in_logs("chunk/{dataset}/n{n}.log"),
    benchmark:
        in_results("benchmarks/chunk/{dataset}/n{n}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        min_chars=config["chunking"]["min_chars"],
        max_chars=config["chunking"]["max_chars"],
    shell:
        "embaug chunk --corpus {input:q} --dataset {wildcards.dataset:q} --sentences {wildcards.n:q} "
        "--min-chars {params.min_chars:q} --max-chars {params.max_chars:q} --out {output:q} > {log:q} 2>&1"


rule check_dataset:
    input:
        in_data("raw/{dataset}.parquet"),
    output:
        in_data("checks/{dataset}.json"),
    log:
        in_logs("check_dataset/{dataset}.log"),
    wildcard_constraints:
        dataset="|".join(re.escape(name) for name in config["datasets"]),
    conda:
        "../../envs/embaug.yaml"
    params:
        # Functions of the input: snakemake does not record them, so a new k or split re-checks
        # nothing (the kNN and linear stages check them again) and, above all, never re-runs this
        # job, whose ancient output fine-tuning waits for: snakemake would then skip the rerun
        # checks of every job downstream (tests/test_workflow.py: changing k re-runs every knn).
        k=lambda wildcards, input: config["evaluation"]["knn"]["k"],
        test_fraction=lambda wildcards, input: config["evaluation"]["test_fraction"],
        seed=lambda wildcards, input: config["evaluation"]["seed"],
    shell:
        "embaug check-dataset --corpus {input:q} --dataset {wildcards.dataset:q} --k {params.k:q} "
        "--test-fraction {params.test_fraction:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


rule download_model:
    output:
        directory(f"{config['cache_dir']}/hub/models--{{repo}}/snapshots/{{revision}}"),
    log:
        in_logs("download_model/{repo}/{revision}.log"),
    wildcard_constraints:
        repo=r"[^/]+",
        revision=r"[0-9a-f]{40}",
    conda:
        "../../envs/embaug.yaml"
    params:
        repo=lambda w: w.repo.replace("--", "/"),  # the hub forbids '--' inside names
        cache_dir=lambda w, output: Path(output[0]).parents[2],  # cache_dir/hub
        name=lambda w: PLAN.hub_model_name(w.repo, w.revision),
    shell:
        "embaug download-model --repo {params.repo:q} --revision {wildcards.revision:q} "
        "--cache-dir {params.cache_dir:q} --name {params.name:q} > {log:q} 2>&1"
