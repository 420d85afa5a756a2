"""Base models built from scratch, and one fine-tuning run per (model, dataset, augmentation)."""


rule init_model:
    input:
        lambda w: [PLAN.raw(d) for d in config["models"][w.model]["tokenizer_corpus"]],
    output:
        directory(in_results("base_models/{model}")),
    log:
        in_logs("init_model/{model}.log"),
    benchmark:
        in_results("benchmarks/init_model/{model}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        architecture=lambda w: json.dumps(config["models"][w.model]["architecture"], sort_keys=True),
        seed=lambda w: config["models"][w.model]["seed"],
        kind=lambda w: config["models"][w.model]["kind"],
        tokenizer=lambda w: " ".join(
            f"--{key.replace('_', '-')} {quoted(config['models'][w.model][key])}"
            for key in ("tokenizer", "tokenizer_revision")
            if key in config["models"][w.model]
        ),
    shell:
        "embaug init-model --corpus {input:q} --architecture {params.architecture:q} "
        "--kind {params.kind:q} {params.tokenizer} "
        "--seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


rule finetune:
    input:
        model=lambda w: PLAN.model_files(RUNS[w.run]["model"]),
        corpus=lambda w: PLAN.raw(RUNS[w.run]["dataset"]),
        chunks=lambda w: PLAN.run_chunks(w.run),
        eval_corpora=lambda w: [PLAN.raw(d) for d in PLAN.eval_corpora(w.run)],
        eval_mteb=lambda w: PLAN.mteb.training_files(w.run),
        checks=run_checks,
    output:
        directory(in_results("models/{run}")),
    log:
        in_logs("finetune/{run}.log"),
    benchmark:
        in_results("benchmarks/finetune/{run}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: FINETUNE_THREADS
    resources:
        gpu=1,
        mem_mb=FINETUNE_MEM_MB,
        runtime=FINETUNE_RUNTIME,
    params:
        model=lambda w: PLAN.model_path(RUNS[w.run]["model"]),
        settings=lambda w: PLAN.train_settings(w.run),
        eval_corpora=lambda w: PLAN.eval_corpus_args(w.run),
        eval_mteb=lambda w: PLAN.mteb.training_args(w.run),
        checkpoints=lambda w, output: PLAN.checkpoint_args(w.run, output[0]),
    shell:
        "embaug finetune --model {params.model:q} --corpus {input.corpus:q} --chunks {input.chunks:q} "
        "--settings {params.settings:q} --run {wildcards.run:q} {params.eval_corpora} {params.eval_mteb} "
        "--threads {threads} {params.checkpoints} "
        "--out {output:q} > {log:q} 2>&1"
