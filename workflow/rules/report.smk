"""Paper tables aggregated from the score files."""


rule score_table:
    input:
        lambda w: [path for *_, path in PLAN.tables.table2_cells(w.table)],
    output:
        csv=report(
            in_results("tables/{table}.csv"),
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md=in_results("tables/{table}.md"),
    log:
        in_logs("tables/{table}.log"),
    benchmark:
        in_results("benchmarks/tables/{table}.tsv")
    wildcard_constraints:
        table="|".join(SCORE_TABLES),
    conda:
        "../../envs/embaug.yaml"
    params:
        cells=lambda w: repeated("--cell", PLAN.tables.table2_cells(w.table)),
        metric=lambda w: SCORE_TABLES[w.table][1],
        title=lambda w: SCORE_TABLES[w.table][2].format(k=KNN_K),
    shell:
        "embaug table {params.cells} --metric {params.metric:q} --title {params.title:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
