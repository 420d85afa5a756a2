"""Resource callables: threads, memory (MB) and run time (minutes) of each job, from its inputs
(embaug.plan.sizing). `--set-resources RULE:mem_mb=...` (or the profile's set-resources) still
overrides any of them.
"""

from embaug.plan.sizing import JobSizing

GPU_JOBS = config["device"] != "cpu"  # GPU rules run on a GPU unless the config forces the CPU


def submits_to_cluster():
    """Whether this run sends its jobs to SLURM: the SLURM profile gives every job an account or a
    partition (default-resources), and a job running on a node is a remote execution."""
    defaults = workflow.resource_settings.default_resources
    names = defaults.keys() if hasattr(defaults, "keys") else ()
    return workflow.remote_exec or bool({"slurm_account", "slurm_partition"} & set(names))


# Snakemake caps every job's threads at --cores of the host that runs snakemake, which on a cluster
# is the login node (`cores: all` in profiles/default: 2 on a 2-core login node). A cluster job's
# threads follow its inputs instead, whatever --cores the submitting host was given (the node's
# allocation is what the job gets); local runs keep the cap.
if submits_to_cluster():
    workflow.global_resources["_cores"] = sys.maxsize


SIZING = JobSizing(PLAN, gpu=GPU_JOBS)
EMBED_THREADS, EMBED_MEM_MB, EMBED_RUNTIME = SIZING.callables(SIZING.embed)
KNN_THREADS, KNN_MEM_MB, KNN_RUNTIME = SIZING.callables(SIZING.knn)
LINEAR_THREADS, LINEAR_MEM_MB, LINEAR_RUNTIME = SIZING.callables(SIZING.linear)
TSNE_THREADS, TSNE_MEM_MB, TSNE_RUNTIME = SIZING.callables(SIZING.tsne)
FINETUNE_THREADS, FINETUNE_MEM_MB, FINETUNE_RUNTIME = SIZING.callables(SIZING.finetune)
PRETRAIN_THREADS, PRETRAIN_MEM_MB, PRETRAIN_RUNTIME = SIZING.callables(SIZING.pretrain)
MTEB_THREADS, MTEB_MEM_MB, MTEB_RUNTIME = SIZING.callables(SIZING.mteb)
MTEB_LAYERS_THREADS, MTEB_LAYERS_MEM_MB, MTEB_LAYERS_RUNTIME = SIZING.callables(SIZING.mteb_layers)
