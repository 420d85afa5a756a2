"""t-SNE maps and the paper's figures, each PNG marked for `snakemake --report` with a caption."""


report: "../report/workflow.rst"


rule tsne:
    input:
        embeddings=in_results("embeddings/{model}/{dataset}"),
        corpus=in_data("raw/{dataset}.parquet"),
        scores=in_results("scores/knn/{model}/{dataset}.csv"),
    output:
        coords=in_results("tsne/{model}/{dataset}.parquet"),
        png=report(
            in_results("tsne/{model}/{dataset}.png"),
            caption="../report/tsne.rst",
            category="t-SNE maps",
            subcategory="{dataset}",
            labels={"model": "{model}", "dataset": "{dataset}"},
        ),
        csv=in_results("tsne/{model}/{dataset}.csv"),
    log:
        in_logs("tsne/{model}/{dataset}.log"),
    benchmark:
        in_results("benchmarks/tsne/{model}/{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    threads: TSNE_THREADS
    resources:
        mem_mb=TSNE_MEM_MB,
        runtime=TSNE_RUNTIME,
    params:
        affinity=TSNE["affinity"],
        neighbors_k=TSNE["k"],
        perplexity=TSNE["perplexity"],
        initialization=TSNE["initialization"],
        neighbors=TSNE["neighbors"],
        max_docs=TSNE["max_docs"] if TSNE["max_docs"] is not None else "none",
        learning_rate=TSNE["learning_rate"],
        n_iter=TSNE["n_iter"],
        seed=TSNE["seed"],
        k=KNN_K,
        metric=KNN_METRIC,
        test_fraction=config["evaluation"]["test_fraction"],
        split_seed=config["evaluation"]["seed"],
    shell:
        "embaug tsne --embeddings {input.embeddings:q} --corpus {input.corpus:q} --scores {input.scores:q} "
        "--name {wildcards.model:q} --affinity {params.affinity:q} --neighbors-k {params.neighbors_k:q} "
        "--perplexity {params.perplexity:q} --initialization {params.initialization:q} "
        "--neighbors {params.neighbors:q} --max-docs {params.max_docs:q} "
        "--learning-rate {params.learning_rate:q} --n-iter {params.n_iter:q} --seed {params.seed:q} "
        "--k {params.k:q} --metric {params.metric:q} --test-fraction {params.test_fraction:q} "
        "--split-seed {params.split_seed:q} --threads {threads} "
        "--out {output.coords:q} --png {output.png:q} > {log:q} 2>&1"


rule figure2_tsne:
    input:
        lambda w: PLAN.figures.figure2_files(w.dataset),
    output:
        png=report(
            in_results("figures/figure2_tsne_{dataset}.png"),
            caption="../report/figure2.rst",
            category="Figure 2: t-SNE",
            labels={"figure": "Figure 2", "dataset": "{dataset}"},
        ),
        csv=in_results("figures/figure2_tsne_{dataset}.csv"),
    log:
        in_logs("figures/figure2_tsne_{dataset}.log"),
    benchmark:
        in_results("benchmarks/figures/figure2_tsne_{dataset}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        panels=lambda w: PLAN.figures.figure2_args(w.dataset),
        metric=KNN_METRIC,
        title=lambda w: f"t-SNE of the last layer on {w.dataset}, before and after fine-tuning",
    shell:
        "embaug figure-tsne {params.panels} --metric {params.metric:q} --title {params.title:q} "
        "--out {output.png:q} > {log:q} 2>&1"


rule figure_layers:
    input:
        lambda w: PLAN.figures.layer_files(w.family, w.dataset),
    output:
        png=report(
            in_results("figures/figure4_layers_{family}_{dataset}.png"),
            caption="../report/figure4.rst",
            category="Figure 4: per layer",
            labels={"figure": "Figure 4b", "score": "{family}", "dataset": "{dataset}"},
        ),
        csv=in_results("figures/figure4_layers_{family}_{dataset}.csv"),
    log:
        in_logs("figures/figure4_layers_{family}_{dataset}.log"),
    benchmark:
        in_results("benchmarks/figures/figure4_layers_{family}_{dataset}.tsv")
    wildcard_constraints:
        family="knn|linear",
    conda:
        "../../envs/embaug.yaml"
    params:
        models=lambda w: PLAN.figures.layer_args(w.family, w.dataset),
        metric=lambda w: KNN_METRIC if w.family == "knn" else "logistic",
        ylabel=lambda w: "kNN accuracy (%)" if w.family == "knn" else "linear accuracy (%)",
        title=lambda w: f"Per-layer {'kNN' if w.family == 'knn' else 'linear'} accuracy on {w.dataset}, "
        "before and after fine-tuning",
    shell:
        "embaug figure-layers {params.models} --metric {params.metric:q} --ylabel {params.ylabel:q} "
        "--title {params.title:q} --out {output.png:q} > {log:q} 2>&1"


rule figure_loss:
    input:
        in_results("models/{run}"),
    output:
        png=report(
            in_results("figures/loss/{run}.png"),
            caption="../report/loss.rst",
            category="Training loss",
            labels={"run": "{run}"},
        ),
        csv=in_results("figures/loss/{run}.csv"),
    log:
        in_logs("figures/loss/{run}.log"),
    benchmark:
        in_results("benchmarks/figures/loss/{run}.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        title=lambda w: f"{w.run}: training loss and learning rate",
    shell:
        "embaug figure-loss --run-dir {input:q} --title {params.title:q} --out {output.png:q} > {log:q} 2>&1"


rule figure1_training_curves:
    input:
        [f"{RESULTS}/models/{run}" for run in PLAN.core_runs],
    output:
        png=report(
            in_results("figures/figure1_training_curves.png"),
            caption="../report/figure1.rst",
            category="Figures 1 and 3: training curves",
            labels={"figure": "Figure 1"},
        ),
        csv=in_results("figures/figure1_training_curves.csv"),
    log:
        in_logs("figures/figure1_training_curves.log"),
    benchmark:
        in_results("benchmarks/figures/figure1_training_curves.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        curves=PLAN.figures.figure1_args(),
        blocks=PLAN.mteb.training_blocks(),
        title="During fine-tuning: kNN accuracy on held documents of the training dataset"
        + (" and MTEB main scores (block average, blocks)" if PLAN.mteb.training_tasks() else ""),
    shell:
        "embaug figure-curves {params.curves} --blocks {params.blocks:q} --title {params.title:q} "
        "--out {output.png:q} > {log:q} 2>&1"


rule batch_subset:
    input:
        corpus=in_data("raw/{dataset}.parquet"),
        chunks=PLAN.chunks("{dataset}"),
        match_corpus=in_data("raw/{target}.parquet"),
        match_chunks=PLAN.chunks("{target}"),
    output:
        in_data("raw/{dataset}.match-{target}.parquet"),
    log:
        in_logs("batch_subset/{dataset}.match-{target}.log"),
    benchmark:
        in_results("benchmarks/batch_subset/{dataset}.match-{target}.tsv")
    wildcard_constraints:
        dataset="|".join(re.escape(name) for name in config["datasets"]),
        target="|".join(re.escape(name) for name in config["datasets"]),
    conda:
        "../../envs/embaug.yaml"
    params:
        pairs=config["augmentations"][FIGURE3["augmentation"]]["pairs"],
        seed=FIGURE3["seed"],
    shell:
        "embaug batch-subset --corpus {input.corpus:q} --chunks {input.chunks:q} "
        "--match-corpus {input.match_corpus:q} --match-chunks {input.match_chunks:q} "
        "--pairs {params.pairs:q} --seed {params.seed:q} --out {output:q} > {log:q} 2>&1"


rule figure3_curves:
    input:
        [f"{RESULTS}/models/{run}" for run in PLAN.figure3_runs],
    output:
        png=report(
            in_results("figures/figure3_curves.png"),
            caption="../report/figure3.rst",
            category="Figures 1 and 3: training curves",
            labels={"figure": "Figure 3"},
        ),
        csv=in_results("figures/figure3_curves.csv"),
        deltas=in_results("figures/figure3_deltas.csv") if FIGURE3["sentence_delta"] else [],
    log:
        in_logs("figures/figure3_curves.log"),
    benchmark:
        in_results("benchmarks/figures/figure3_curves.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        curves=PLAN.figures.figure3_args(),
        deltas=lambda w, output: PLAN.figures.figure3_delta_args(output.deltas),
        title=f"kNN accuracy on {PLAN.figures.figure3_on} while training on batch-matched subsets of each dataset",
    shell:
        "embaug figure-curves {params.curves} {params.deltas} --title {params.title:q} --out {output.png:q} "
        "> {log:q} 2>&1"
