"""Masked-language-model pretraining of base models (`source: pretrained:MODEL`) and its loss curve."""


rule pretrain:
    input:
        model=lambda w: PLAN.model_files(PLAN.pretraining_base(w.model)),
        corpora=lambda w: [PLAN.raw(d) for d in config["models"][w.model]["pretraining"]["corpora"]],
    output:
        directory(in_results("pretrained/{model}")),
    log:
        in_logs("pretrain/{model}.log"),
    benchmark:
        in_results("benchmarks/pretrain/{model}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: PRETRAIN_THREADS
    resources:
        gpu=1,
        mem_mb=PRETRAIN_MEM_MB,
        runtime=PRETRAIN_RUNTIME,
    params:
        model=lambda w: PLAN.model_path(PLAN.pretraining_base(w.model)),
        settings=lambda w: PLAN.pretrain_settings(w.model),
        checkpoints=lambda w, output: PLAN.pretrain_checkpoint_args(w.model, output[0]),
    shell:
        "embaug pretrain --model {params.model:q} --corpus {input.corpora:q} "
        "--settings {params.settings:q} --name {wildcards.model:q} --threads {threads} "
        "{params.checkpoints} --out {output:q} > {log:q} 2>&1"


rule figure_pretrain_loss:
    input:
        in_results("pretrained/{model}"),
    output:
        png=report(
            in_results("figures/pretrain_loss/{model}.png"),
            caption="../report/pretrain_loss.rst",
            category="Pretraining loss",
            labels={"model": "{model}"},
        ),
        csv=in_results("figures/pretrain_loss/{model}.csv"),
    log:
        in_logs("figures/pretrain_loss/{model}.log"),
    benchmark:
        in_results("benchmarks/figures/pretrain_loss/{model}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        title=lambda w: f"{w.model}: masked-language-model pretraining loss and learning rate",
    shell:
        "embaug figure-loss --run-dir {input:q} --title {params.title:q} --ylabel 'masked-LM loss' "
        "--out {output.png:q} > {log:q} 2>&1"
