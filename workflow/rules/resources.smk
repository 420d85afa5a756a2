"""Resource callables: memory (MB), run time (minutes) and threads of each job, from its inputs.

Thin wrappers: they read sizes cheaply (Parquet footers, model configs, mteb's task statistics)
and leave the arithmetic, and its basis, to `embaug.resources`. An input that does not exist yet
shows as <TBD> in a dry run; Snakemake sizes the job again once it does, before submitting it.
`--set-resources RULE:mem_mb=...` (or the profile's set-resources) still overrides any of them.
"""

import functools
import sys

from embaug import resources as sizing

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


@functools.cache
def model_shape(model):
    """Depth, width and parameters of a model name (a run has its base model's shape)."""
    base = RUNS[model]["model"] if model in RUNS else model
    spec = config["models"][base]
    if is_scratch(base):
        return sizing.ModelShape.from_config(
            {"num_hidden_layers": 12, "hidden_size": 768, **spec["architecture"]}
        )
    shape = sizing.model_shape(model_path(base))  # a local folder, or a downloaded pinned hub model
    if shape is None:  # a hub id: its config if already cached (never the network), else BERT base's
        try:
            from transformers import AutoConfig

            found = AutoConfig.from_pretrained(
                spec["source"], revision=spec.get("revision"), local_files_only=True
            )
            shape = sizing.ModelShape.from_config(found.to_dict())
        except (OSError, ValueError, KeyError):
            shape = sizing.BERT_BASE
    return shape


def stored_layers(wildcards):
    """Layers in an embedding store: Table S7's pooled stores keep the last one only."""
    if "pooling" in wildcards.keys():
        return 1
    return len(config["embedding"]["layers"] or range(model_shape(wildcards.model).layers + 1))


def _sized(request):
    """Resource callables (threads, mem_mb, runtime) of a `request(wildcards, input, attempt)`."""

    def threads(wildcards, input, attempt=1):
        # Threads cannot wait for the inputs (Snakemake needs a number to plan the DAG): the most
        # a job may get until they exist; Snakemake evaluates it again before the job starts.
        try:
            return request(wildcards, input, attempt).threads
        except FileNotFoundError:
            return sizing.GPU_HOST_THREADS if GPU_JOBS else sizing.CPU_THREAD_CAP

    return (
        threads,
        lambda wildcards, input, attempt=1: request(wildcards, input, attempt).mem_mb,
        lambda wildcards, input, attempt=1: request(wildcards, input, attempt).runtime,
    )


def _embed(wildcards, input, attempt):
    return sizing.embed_request(
        sizing.corpus_size(input.corpus), model_shape(wildcards.model),
        max_length=config["embedding"]["max_length"], gpu=GPU_JOBS, attempt=attempt,
    )  # fmt: skip


def _knn(wildcards, input, attempt):
    shape = model_shape(wildcards.model)
    return sizing.knn_request(
        sizing.corpus_size(input.corpus).documents, stored_layers(wildcards), shape.dim,
        test_fraction=config["evaluation"]["test_fraction"], gpu=GPU_JOBS, attempt=attempt,
    )  # fmt: skip


def _linear(wildcards, input, attempt):
    shape = model_shape(wildcards.model)
    return sizing.linear_request(
        sizing.corpus_size(input.corpus).documents, stored_layers(wildcards), shape.dim,
        sizing.label_count(input.corpus), test_fraction=config["evaluation"]["test_fraction"],
        max_train=config["evaluation"]["linear"].get("max_train"), attempt=attempt,
    )  # fmt: skip


def _tsne(wildcards, input, attempt):
    documents = sizing.corpus_size(input.corpus).documents
    mapped = documents if TSNE["max_docs"] is None else min(documents, TSNE["max_docs"])
    # tsne_request counts 3 x perplexity neighbours per document; uniform affinities use k
    perplexity = TSNE["perplexity"] if TSNE["affinity"] == "perplexity" else TSNE["k"] / 3
    return sizing.tsne_request(
        mapped, model_shape(wildcards.model).dim,
        perplexity=perplexity, iterations=TSNE["n_iter"], attempt=attempt,
    )  # fmt: skip


def _finetune(wildcards, input, attempt):
    settings = json.loads(train_settings(wildcards))  # the run's own: its dataset's and overrides
    return sizing.finetune_request(
        sizing.corpus_size(input.chunks), model_shape(RUNS[wildcards.run]["model"]),
        max_length=settings["max_length"], batch_size=settings["batch_size"], epochs=settings["epochs"],
        max_steps=settings.get("max_steps") or 0, gpu=GPU_JOBS, attempt=attempt,
        split_eval=sizing.corpus_size(input.eval_corpora[0]) if input.eval_corpora else None,
        eval_every=settings.get("eval_every", 0),
    )  # fmt: skip


MTEB_DEFAULT_TASK = sizing.CorpusSize(documents=100_000, text_bytes=100_000 * 1_000)
"""Assumed for an MTEB task whose size is unknown (no local file, no shipped statistics)."""


@functools.cache
def mteb_task_size(task):
    """Texts and characters of an MTEB task: its local Parquet file's footer, else mteb's statistics."""
    path = Path(MTEB_TASKS.get(task, {}).get("path", ""))
    if path.suffix == ".parquet" and path.is_file():
        return sizing.table_text_size(path)
    return sizing.mteb_task_size(task, tuple(MTEB["splits"])) or MTEB_DEFAULT_TASK


def _mteb(wildcards, input, attempt, layers=1):
    return sizing.mteb_request(
        mteb_task_size(wildcards.task), model_shape(wildcards.model), max_length=MTEB["max_length"],
        layers=layers, gpu=GPU_JOBS, attempt=attempt,
    )  # fmt: skip


def _mteb_layers(wildcards, input, attempt):
    return _mteb(wildcards, input, attempt, layers=len(mteb_layers(wildcards.model)))


EMBED_THREADS, EMBED_MEM_MB, EMBED_RUNTIME = _sized(_embed)
KNN_THREADS, KNN_MEM_MB, KNN_RUNTIME = _sized(_knn)
LINEAR_THREADS, LINEAR_MEM_MB, LINEAR_RUNTIME = _sized(_linear)
TSNE_THREADS, TSNE_MEM_MB, TSNE_RUNTIME = _sized(_tsne)
FINETUNE_THREADS, FINETUNE_MEM_MB, FINETUNE_RUNTIME = _sized(_finetune)
MTEB_THREADS, MTEB_MEM_MB, MTEB_RUNTIME = _sized(_mteb)
MTEB_LAYERS_THREADS, MTEB_LAYERS_MEM_MB, MTEB_LAYERS_RUNTIME = _sized(_mteb_layers)
