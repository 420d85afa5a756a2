"""All-layer document embeddings of any model (base or fine-tuned) on any dataset."""


rule embed:
    input:
        model=lambda w: PLAN.model_files(w.model),
        corpus=in_data("raw/{dataset}.parquet"),
    output:
        directory(in_results("embeddings/{model}/{dataset}")),
    log:
        in_logs("embed/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/embed/{model}/{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: EMBED_THREADS
    resources:
        gpu=1,
        mem_mb=EMBED_MEM_MB,
        runtime=EMBED_RUNTIME,
    params:
        model=lambda w: PLAN.model_path(w.model),
        batch_size=config["embedding"]["batch_size"],
        max_length=config["embedding"]["max_length"],
        pooling=lambda w: PLAN.embedding_pooling(w.model),
        dtype=PLAN.embedding_dtype,
        layers=f"--layers {quoted(*config['embedding']['layers'])}" if config["embedding"]["layers"] else "",
        precision=config["precision"],
        device=config["device"],
    shell:
        "embaug embed --model {params.model:q} --name {wildcards.model:q} --corpus {input.corpus:q} "
        "--batch-size {params.batch_size:q} --max-length {params.max_length:q} "
        "--pooling {params.pooling:q} --dtype {params.dtype:q} {params.layers} "
        "--precision {params.precision:q} --device {params.device:q} --threads {threads} "
        "--out {output:q} > {log:q} 2>&1"
