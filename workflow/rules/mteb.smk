"""MTEB: one job per model (or layer) and task through mteb.evaluate, then Table 1 / S1."""


rule mteb:
    input:
        model=lambda w: model_files(w.model),
        data=mteb_local_files,
    output:
        "results/mteb/{model}/{task}.json",
    log:
        "logs/mteb/{model}/{task}.log",
    benchmark:
        "results/benchmarks/mteb/{model}/{task}.tsv"
    wildcard_constraints:
        task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    conda:
        "../../envs/embaug.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        model=lambda w: model_path(w.model),
        layer=lambda w: f"--layer {w.layer}" if hasattr(w, "layer") else "",
        local=mteb_local_args,
        splits=" ".join(MTEB["splits"]),
        batch_size=MTEB["batch_size"],
        encoding=lambda w: mteb_encoding(w.model),
        pooling=config["embedding"]["pooling"],
        precision=config["precision"],
        device=config["device"],
    shell:
        "embaug mteb --model {params.model:q} --name {wildcards.model} --task {wildcards.task} "
        "{params.layer} {params.local} --splits {params.splits} --cache-dir results/mteb "
        "--batch-size {params.batch_size} {params.encoding} --precision {params.precision} "
        "--pooling {params.pooling:q} --device {params.device} --threads {threads} "
        "--out {output} > {log} 2>&1"


use rule mteb as mteb_layer with:
    output:
        "results/mteb/{model}/layer{layer}/{task}.json",
    log:
        "logs/mteb/{model}/layer{layer}/{task}.log",
    benchmark:
        "results/benchmarks/mteb/{model}/layer{layer}/{task}.tsv"
    wildcard_constraints:
        task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        layer=r"\d+",


rule mteb_table:
    input:
        lambda w: mteb_table_files(w.table),
    output:
        csv=report(
            "results/tables/{table}.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="results/tables/{table}.md",
    log:
        "logs/tables/{table}.log",
    benchmark:
        "results/benchmarks/tables/{table}.tsv"
    wildcard_constraints:
        table="|".join(MTEB_TABLES) or "$^",
    conda:
        "../../envs/embaug.yaml"
    params:
        rows=mteb_table_args,
        blocks=json.dumps(MTEB_BLOCKS),
        splits=" ".join(MTEB["splits"]),
    shell:
        "embaug mteb-table {params.rows} --blocks {params.blocks:q} --splits {params.splits} "
        "--title 'MTEB main scores (%), last layer, mean pooling' "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule mteb_layer_table:
    input:
        mteb_layer_files,
    output:
        csv="results/scores/mteb_layers/{model}.csv",
        md="results/scores/mteb_layers/{model}.md",
    log:
        "logs/mteb_layers/{model}.log",
    benchmark:
        "results/benchmarks/mteb_layers/{model}.tsv"
    conda:
        "../../envs/embaug.yaml"
    params:
        rows=mteb_layer_args,
        blocks=json.dumps(mteb_layer_blocks()),
        splits=" ".join(MTEB["splits"]),
    shell:
        "embaug mteb-table {params.rows} --blocks {params.blocks:q} --splits {params.splits} "
        "--title 'MTEB main scores (%) per layer of {wildcards.model}' "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"


rule figure4c_mteb_layers:
    input:
        [f"results/scores/mteb_layers/{m}.csv" for m in mteb_layer_models()],
    output:
        png=report(
            "results/figures/figure4c_mteb_layers.png",
            caption="../report/figure4c.rst",
            category="Figure 4: per layer",
            labels={"figure": "Figure 4c", "score": "MTEB"},
        ),
        csv="results/figures/figure4c_mteb_layers.csv",
    log:
        "logs/figures/figure4c_mteb_layers.log",
    benchmark:
        "results/benchmarks/figures/figure4c_mteb_layers.tsv"
    conda:
        "../../envs/embaug.yaml"
    params:
        models=" ".join(f"--model {m} results/scores/mteb_layers/{m}.csv" for m in mteb_layer_models()),
        ylabel=f"MTEB main score (%), mean of {', '.join(MTEB['layer_tasks'])}",
    shell:
        "embaug figure-layers {params.models} --metric mteb --ylabel {params.ylabel:q} "
        "--title 'Per-layer MTEB score, before and after fine-tuning' --out {output.png} > {log} 2>&1"
