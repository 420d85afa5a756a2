"""The paper's reference tables (workflow/reference/paper_{table}.csv) and their companion targets."""

PAPER_REFERENCES = {
    path.stem.removeprefix("paper_"): str(path)
    for path in sorted(Path(workflow.basedir, "workflow/reference").glob("paper_*.csv"))
}


def paper_companion_targets(targets):
    """{RESULTS}/tables/{table}_vs_paper.{csv,md} for each table among `targets` that the paper has."""
    tables = [Path(t).stem for t in targets if t.startswith(in_results("tables/")) and t.endswith(".csv")]
    return [
        f"{RESULTS}/tables/{table}_vs_paper.{ext}"
        for table in tables
        if table in PAPER_REFERENCES
        for ext in ("csv", "md")
    ]
