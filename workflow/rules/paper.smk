"""Each table beside the paper's own numbers (workflow/reference/paper_{table}.csv)."""

PAPER_REFERENCES = {
    path.stem.removeprefix("paper_"): str(path)
    for path in sorted(Path(workflow.basedir, "workflow/reference").glob("paper_*.csv"))
}


def paper_companion_targets(targets):
    """results/tables/{table}_vs_paper.{csv,md} for each table among `targets` that the paper has."""
    tables = [Path(t).stem for t in targets if t.startswith("results/tables/") and t.endswith(".csv")]
    return [
        f"results/tables/{table}_vs_paper.{ext}"
        for table in tables
        if table in PAPER_REFERENCES
        for ext in ("csv", "md")
    ]


rule vs_paper:
    input:
        ours="results/tables/{table}.csv",
        paper=lambda w: PAPER_REFERENCES[w.table],
    output:
        csv="results/tables/{table}_vs_paper.csv",
        md="results/tables/{table}_vs_paper.md",
    log:
        "logs/tables/{table}_vs_paper.log",
    wildcard_constraints:
        table="|".join(PAPER_REFERENCES) or "$^",
    conda:
        "../../envs/embaug.yaml"
    params:
        title=lambda w: f"{w.table}: this project beside the paper",
    shell:
        "embaug vs-paper --ours {input.ours:q} --paper {input.paper:q} --title {params.title:q} "
        "--out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
