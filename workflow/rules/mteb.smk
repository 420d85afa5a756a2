"""MTEB: one job per model and task through mteb.evaluate, then Table 1 / S1 and Figure 4c.

All MTEB jobs of one model are in the job group `mteb_{model}`: with
`--group-components "mteb_{model}=N"` (set in profiles/slurm) a cluster runs up to N of them in
one submitted job, loading the caches once instead of queueing N jobs.
"""


rule mteb:
    input:
        model=lambda w: PLAN.model_files(w.model),
        data=lambda w: PLAN.mteb.local_files(w.task),
    output:
        in_results("mteb/{model}/{task}.json"),
    log:
        in_logs("mteb/{model}/{task}.log"),
    benchmark:
        in_results("benchmarks/mteb/{model}/{task}.tsv")
    wildcard_constraints:
        task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    group:
        "mteb_{model}"
    conda:
        "../../envs/embaug.yaml"
    threads: MTEB_THREADS
    resources:
        gpu=1,
        mem_mb=MTEB_MEM_MB,
        runtime=MTEB_RUNTIME,
    params:
        model=lambda w: PLAN.model_path(w.model),
        layers="",
        local=lambda w: PLAN.mteb.local_args(w.task),
        splits=quoted(*MTEB["splits"]),
        batch_size=MTEB["batch_size"],
        encoding=lambda w: PLAN.mteb.encoding(w.model),
        pooling=config["embedding"]["pooling"],
        precision=config["precision"],
        device=config["device"],
        cache_dir=mteb_cache_dir,
    shell:
        "embaug mteb --model {params.model:q} --name {wildcards.model:q} --task {wildcards.task:q} "
        "{params.layers} {params.local} --splits {params.splits} --cache-dir {params.cache_dir:q} "
        "--batch-size {params.batch_size:q} {params.encoding} --precision {params.precision:q} "
        "--pooling {params.pooling:q} --device {params.device:q} --threads {threads} "
        "--out {output:q} > {log:q} 2>&1"


# Figure 4c: one job per (model, task) scores every layer from one encoding of the task's texts
# and writes each layer's results/mteb/{model}/layer{k}/{task}.json (the layers of PLAN.mteb.layer_plan).
use rule mteb as mteb_layers with:
    output:
        [f"{RESULTS}/mteb/{{model}}/layer{k}/{{task}}.json" for k in PLAN.mteb.layer_plan[0]],
    log:
        in_logs("mteb/{model}/layers/{task}.log"),
    benchmark:
        in_results("benchmarks/mteb/{model}/layers/{task}.tsv")
    wildcard_constraints:
        task=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        model="|".join(re.escape(m) for m in PLAN.mteb.layer_plan[1]) or "(?!)",
    threads: MTEB_LAYERS_THREADS
    resources:
        gpu=1,
        mem_mb=MTEB_LAYERS_MEM_MB,
        runtime=MTEB_LAYERS_RUNTIME,
    params:
        layers=f"--layer {quoted(*PLAN.mteb.layer_plan[0])}",


rule mteb_table:
    input:
        lambda w: PLAN.mteb.table_files(w.table),
    output:
        csv=report(
            in_results("tables/{table}.csv"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=in_results("tables/{table}.md"),
    log:
        in_logs("tables/{table}.log"),
    benchmark:
        in_results("benchmarks/tables/{table}.tsv")
    wildcard_constraints:
        table="|".join(PLAN.mteb.tables) or "$^",
    conda:
        "../../envs/embaug.yaml"
    params:
        rows=lambda w: PLAN.mteb.table_args(w.table),
        blocks=lambda w: json.dumps(PLAN.mteb.table_blocks(w.table)),
        splits=quoted(*MTEB["splits"]),
    shell:
        "embaug mteb-table {params.rows} --blocks {params.blocks:q} --splits {params.splits} "
        "--title 'MTEB main scores (%), last layer, mean pooling' "
        "--out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule mteb_layer_table:
    input:
        lambda w: PLAN.mteb.layer_files(w.model),
    output:
        csv=in_results("scores/mteb_layers/{model}.csv"),
        md=in_results("scores/mteb_layers/{model}.md"),
    log:
        in_logs("mteb_layers/{model}.log"),
    benchmark:
        in_results("benchmarks/mteb_layers/{model}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        rows=lambda w: PLAN.mteb.layer_args(w.model),
        blocks=json.dumps(PLAN.mteb.layer_blocks()),
        splits=quoted(*MTEB["splits"]),
        title=lambda w: f"MTEB main scores (%) per layer of {w.model}",
    shell:
        "embaug mteb-table {params.rows} --blocks {params.blocks:q} --splits {params.splits} "
        "--title {params.title:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule figure4c_mteb_layers:
    input:
        [PLAN.mteb.layer_scores(m) for m in PLAN.mteb.layer_models()],
    output:
        png=report(
            in_results("figures/figure4c_mteb_layers.png"),
            caption="../report/figure4c.rst",
            category="Figure 4: per layer",
            labels={"figure": "Figure 4c", "score": "MTEB"},
        ),
        csv=in_results("figures/figure4c_mteb_layers.csv"),
    log:
        in_logs("figures/figure4c_mteb_layers.log"),
    benchmark:
        in_results("benchmarks/figures/figure4c_mteb_layers.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        models=PLAN.mteb.layer_figure_args(),
        metric="mteb",
        ylabel="MTEB block average (%)",
        title="Per-layer MTEB score, before and after fine-tuning",
    shell:
        "embaug figure-layers {params.models} --metric {params.metric:q} --ylabel {params.ylabel:q} "
        "--title {params.title:q} --out {output.png:q} > {log:q} 2>&1"


use rule figure4c_mteb_layers as figureS3_mteb_layer_blocks with:
    output:
        png=report(
            in_results("figures/figureS3_mteb_layer_blocks.png"),
            caption="../report/figureS3.rst",
            category="Figure 4: per layer",
            labels={"figure": "Figure S3", "score": "MTEB per block"},
        ),
        csv=in_results("figures/figureS3_mteb_layer_blocks.csv"),
    log:
        in_logs("figures/figureS3_mteb_layer_blocks.log"),
    benchmark:
        in_results("benchmarks/figures/figureS3_mteb_layer_blocks.tsv")
    params:
        models=PLAN.mteb.layer_figure_args(),
        metric="mteb-blocks",
        ylabel="MTEB block mean (%)",
        title="Per-layer MTEB score of each block, before and after fine-tuning",
