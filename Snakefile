"""embaug: self-supervised fine-tuning of text embeddings with crops, dropout and masking.

snakemake --cores 8 --resources gpu=1                      # the paper's study (config.yaml)
snakemake --cores 2 --configfile config/demo.yaml          # offline CPU demo
snakemake results/paper/tables/table2_knn.csv                    # one table and what it needs
"""


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/mteb.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/evaluation_tables.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/paper.smk"


onstart:
    check_local_device()
    if workflow.local_exec:  # SIGINT / SIGTERM to snakemake alone also stop the running jobs
        stop_jobs_first()


rule all:
    default_target: True
    input:
        PLAN.targets + PLAN.tables.vs_paper_targets(PLAN.targets, PAPER_REFERENCES),


# Tables and figures read small score files and take seconds: on a cluster they run in the
# snakemake process itself, never through the queue (docs/cluster.md).
localrules:
    all,
    score_table,
    table_s4,
    table_s6,
    grid_table,
    seeds_table,
    mteb_table,
    mteb_layer_table,
    figure2_tsne,
    figure_layers,
    figure_loss,
    figure_pretrain_loss,
    figure1_training_curves,
    figure3_curves,
    figure4c_mteb_layers,
    figureS3_mteb_layer_blocks,
    sweep_figure,
    pretraining_steps_figure,
    vs_paper,
