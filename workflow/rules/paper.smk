"""Each table beside the paper's own numbers (workflow/reference/paper_{table}.csv)."""


rule vs_paper:
    input:
        ours=in_results("tables/{table}.csv"),
        paper=lambda w: PAPER_REFERENCES[w.table],
    output:
        csv=in_results("tables/{table}_vs_paper.csv"),
        md=in_results("tables/{table}_vs_paper.md"),
    log:
        in_logs("tables/{table}_vs_paper.log"),
    wildcard_constraints:
        table="|".join(PAPER_REFERENCES) or "$^",
    conda:
        "../../envs/embaug.yaml"
    params:
        title=lambda w: f"{w.table}: this project beside the paper",
    shell:
        "embaug vs-paper --ours {input.ours:q} --paper {input.paper:q} --title {params.title:q} "
        "--out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
