"""Run variants as named targets: seeds (seeds_knn), sweeps (Figure S1), frozen layers (Figure 4a)
and comparison / from-scratch models (Table S6). Their runs are planned in embaug.plan.runs."""


rule seeds_table:
    input:
        [path for *_, path in PLAN.tables.seed_cells()],
    output:
        csv=report(
            in_results("tables/seeds_knn.csv"),
            caption="../report/seeds.rst",
            category="Tables",
            labels={"table": "seeds_knn"},
        ),
        md=in_results("tables/seeds_knn.md"),
    log:
        in_logs("tables/seeds_knn.log"),
    benchmark:
        in_results("benchmarks/tables/seeds_knn.tsv")
    conda:
        "../../envs/embaug.yaml"
    params:
        cells=lambda w: repeated("--cell", PLAN.tables.seed_cells()),
        difference=STUDY["paired_difference"],
        metric=KNN_METRIC,
        title=lambda w: f"kNN accuracy (%), k={KNN_K}, {KNN_METRIC}, last layer, "
        f"over training seeds {', '.join(map(str, dict.fromkeys(STUDY['seeds'])))}: mean ± sd (n)",
    shell:
        "embaug seeds-table {params.cells} --difference {params.difference:q} --metric {params.metric:q} "
        "--title {params.title:q} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule sweep_figure:
    input:
        lambda w: PLAN.figures.sweep_files(w.figure),
    output:
        png=report(
            in_results("figures/{figure}.png"),
            caption="../report/sweeps.rst",
            category="Figures S1 and 4a: sweeps",
            labels={"figure": "{figure}"},
        ),
        csv=in_results("figures/{figure}.csv"),
        table=in_results("tables/{figure}.csv"),
        md=in_results("tables/{figure}.md"),
    log:
        in_logs("figures/{figure}.log"),
    benchmark:
        in_results("benchmarks/figures/{figure}.tsv")
    wildcard_constraints:
        figure="|".join(SWEEP_FIGURES),
    conda:
        "../../envs/embaug.yaml"
    params:
        points=lambda w: PLAN.figures.sweep_args(w.figure),
        metric=KNN_METRIC,
        title=lambda w: SWEEP_FIGURES[w.figure][1] + f" ({PLAN.sweep_model} on {PLAN.sweep_on})",
    shell:
        "embaug figure-sweeps {params.points} --metric {params.metric:q} --title {params.title:q} "
        "--out {output.png:q} --out-csv {output.table:q} --out-md {output.md:q} > {log:q} 2>&1"


use rule sweep_figure as pretraining_steps_figure with:
    input:
        lambda w: [path for *_, path in PLAN.figures.pretraining_steps_points(w.dataset)],
    output:
        png=report(
            in_results("figures/pretraining_steps_{dataset}.png"),
            caption="../report/pretraining_steps.rst",
            category="Pretraining",
            labels={"figure": "pretraining steps", "dataset": "{dataset}"},
        ),
        csv=in_results("figures/pretraining_steps_{dataset}.csv"),
        table=in_results("tables/pretraining_steps_{dataset}.csv"),
        md=in_results("tables/pretraining_steps_{dataset}.md"),
    log:
        in_logs("figures/pretraining_steps_{dataset}.log"),
    benchmark:
        in_results("benchmarks/figures/pretraining_steps_{dataset}.tsv")
    wildcard_constraints:
        dataset="|".join(re.escape(d) for d in STUDY["train_on"]) or "(?!)",
    params:
        points=lambda w: repeated("--point", PLAN.figures.pretraining_steps_points(w.dataset)),
        metric=KNN_METRIC,
        title=lambda w: f"Last-layer kNN accuracy on {w.dataset} against masked-LM pretraining steps",


use rule score_table as table_s6 with:
    input:
        [path for *_, path in PLAN.tables.s6_cells()],
        [path for _, path in PLAN.tables.scratch_bases()],
    output:
        csv=report(
            in_results("tables/tableS6.csv"),
            caption="../report/tableS6.rst",
            category="Tables",
            labels={"table": "tableS6"},
        ),
        md=in_results("tables/tableS6.md"),
    log:
        in_logs("tables/tableS6.log"),
    benchmark:
        in_results("benchmarks/tables/tableS6.tsv")
    params:
        cells=lambda w: repeated("--cell", PLAN.tables.s6_cells())
        + " "
        + repeated("--vocabulary", PLAN.tables.scratch_bases()),
        metric=KNN_METRIC,
        title=lambda w: f"Table S6: kNN accuracy (%), k={KNN_K}, {KNN_METRIC}, "
        "last layer: fine-tuned, off-the-shelf and trained from scratch",
