"""Every ``embaug <stage>``'s command-line options, one dataclass per stage (:mod:`embaug.cli_options`
turns a field into an option). Fine-tuning and pretraining take their settings as one JSON
option, the fields of :class:`embaug.train.TrainSettings` / :class:`embaug.pretrain.PretrainSettings`,
which the workflow builds from the config's `training` / `pretraining` sections."""

from __future__ import annotations

from dataclasses import dataclass

from .cli_options import option
from .evaluate.tsne import AFFINITIES, NEIGHBORS, TsneSettings

stage_options = dataclass(frozen=True, kw_only=True)
"""An options class: immutable, every field by name (so a required one may follow a default)."""

KNN_METRICS = ["euclidean", "cosine"]
TSNE = TsneSettings()


def count_or_none(value: str) -> int | None:
    """An argument that is a count, or ``none`` for no limit."""
    return None if value.lower() == "none" else int(value)


def float_or_none(value: str) -> float | None:
    """An argument that is a number, or ``none``."""
    return None if value.lower() == "none" else float(value)


@stage_options
class Precision:
    """The float precision of a stage that runs a model."""

    precision: str = option("float32", help="float32, or bfloat16 autocast on CUDA")


@stage_options
class Checkpoints:
    """Where a training stage keeps its state (each stage says how often)."""

    checkpoint_dir: str | None = option(
        None, help="keep the training state here, and resume from it (default: no checkpoints)"
    )


@stage_options
class TableOutputs:
    """A table stage's title and its two files: CSV (data) and Markdown (for reading)."""

    title: str = ""
    out_csv: str = option(help="the table")
    out_md: str


@stage_options
class DownloadOptions:
    """``embaug download``."""

    dataset: str
    spec: str = option(help="the dataset's config entry as JSON")
    cache_dir: str = "data/cache"
    out: str


@stage_options
class ChunkOptions:
    """``embaug chunk``."""

    corpus: str
    dataset: str = ""
    sentences: int = 2
    min_chars: int = 100
    max_chars: int = 250
    out: str


@stage_options
class CheckConfigOptions:
    """``embaug check-config``."""

    configfile: list[str] = option(help="config files, as given to snakemake --configfile")


@stage_options
class CheckDatasetOptions:
    """``embaug check-dataset``."""

    corpus: str
    dataset: str
    k: int = option(10, help="evaluation.knn.k")
    test_fraction: float = option(0.1, help="evaluation.test_fraction")
    seed: int = option(42, help="evaluation.seed")
    out: str = option(help="the counts checked (JSON)")


@stage_options
class InitModelOptions:
    """``embaug init-model``."""

    corpus: list[str] = option(help="raw corpora to fit the tokenizer")
    architecture: str = option(help="BertConfig fields and vocab_size, JSON")
    kind: str = option("bert", choices=["bert", "embedding_only"])
    tokenizer: str = option("", help="hub tokenizer, where reachable (else fitted)")
    tokenizer_revision: str = option("", help="the hub tokenizer's commit")
    seed: int = 42
    out: str


@stage_options
class DownloadModelOptions:
    """``embaug download-model``."""

    repo: str = option(help="hub model id, e.g. microsoft/mpnet-base")
    revision: str = option(help="the repository's commit")
    cache_dir: str = option(help="huggingface_hub cache folder (cache_dir/hub)")
    name: str = option("", help="the model's config name, for error messages")


@stage_options
class FinetuneOptions(Checkpoints):
    """``embaug finetune``."""

    model: str = option(help="hub id or local directory")
    corpus: str
    chunks: str
    settings: str = option(help="TrainSettings fields as JSON")
    run: str = ""
    eval_corpus: list[str] | None = option(
        None, append=True, metavar="NAME=PATH", help="also score on this corpus"
    )
    eval_mteb: list[str] | None = option(
        None, append=True, metavar="TASK[=PATH]", help="also score this MTEB task (local file)"
    )
    threads: int | None = None
    checkpoint_every: int = option(1000, metavar="N", help="batches between checkpoints")
    out: str


@stage_options
class PretrainOptions(Checkpoints):
    """``embaug pretrain``."""

    model: str = option(help="the base: hub id or local directory")
    corpus: list[str] = option(help="raw corpora whose text it learns")
    settings: str = option(help="PretrainSettings fields as JSON")
    name: str = option("", help="the model's config name, for messages")
    threads: int | None = None
    checkpoint_every: int = option(500, metavar="N", help="steps between checkpoints")
    out: str


@stage_options
class EmbedOptions(Precision):
    """``embaug embed``."""

    model: str = option(help="hub id or local directory")
    name: str = ""
    corpus: str
    batch_size: int = 64
    max_length: int = 512
    pooling: str = "mean"
    layers: list[int] | None = option(None, help="layer indices (default: all)")
    dtype: str = option("float16", choices=["float16", "float32"])
    device: str = "auto"
    threads: int | None = None
    out: str


@stage_options
class LayerScoringOptions:
    """What scoring an embedding store's layers on the kNN split takes."""

    embeddings: str
    corpus: str
    test_fraction: float = 0.1
    seed: int = 42
    out: str


@stage_options
class KnnOptions(LayerScoringOptions):
    """``embaug knn``."""

    k: int = 10
    metrics: list[str] = option(KNN_METRICS, choices=KNN_METRICS)
    device: str = option("auto", help="auto: CUDA when present, else CPU")
    threads: int | None = option(None, help="torch CPU threads (default: torch's)")
    preprocessing: list[str] = option(
        ["raw"],
        choices=["raw", "centred", "whitened"],
        help="fitted on the training split only; metric column e.g. whitened_cosine",
    )


@stage_options
class LinearOptions(LayerScoringOptions):
    """``embaug linear``: the authors' probe, as embaug.evaluate.linear.LinearSettings (not imported:
    sklearn is slow)."""

    C: float | None = option(
        None, parse=float_or_none, help="inverse L2 strength, or none: no penalty (default)"
    )
    solver: str = option("saga", help="scikit-learn LogisticRegression solver")
    tol: float = 1e-2
    max_iter: int = 1000
    max_train: int | None = option(
        100_000,
        parse=count_or_none,
        help="fit on a stratified subsample of at most this many training documents (none: all)",
    )


@stage_options
class TableOptions(TableOutputs):
    """``embaug table``."""

    cell: list[tuple[str, str, str]] = option(metavar=("ROW", "COLUMN", "SCORES"))
    metric: str = "euclidean"
    vocabulary: list[tuple[str, str]] | None = option(
        None,
        metavar=("LABEL", "MODEL_DIR"),
        help="a from-scratch model: its vocabulary's origin (MODEL_DIR/scratch.json) goes under the title",
    )
    title: str = "kNN accuracy (%)"


@stage_options
class GridTableOptions(TableOutputs):
    """``embaug grid-table``."""

    cell: list[tuple[str, str, str, str, str]] = option(
        metavar=("DATASET", "MODEL", "COLUMN", "METRIC", "SCORES")
    )
    title: str = "kNN accuracy (%)"


@stage_options
class TfidfOptions:
    """``embaug tfidf``."""

    corpus: str
    settings: str = option("{}", help="TfidfVectorizer arguments as JSON")
    svd_components: int = 100
    svd_seed: int = 42
    k: int = 10
    metrics: list[str] = option(KNN_METRICS)
    test_fraction: float = 0.1
    seed: int = 42
    out_tfidf: str
    out_svd: str


@stage_options
class SplitDatasetOptions:
    """``embaug split-dataset``."""

    corpus: str
    test_fraction: float = option(0.1, help="the kNN evaluation's test fraction")
    seed: int = option(42, help="the kNN evaluation's split seed")
    out_train: str
    out_test: str


@stage_options
class BatchSubsetOptions:
    """``embaug batch-subset``."""

    corpus: str = option(help="the corpus to draw from")
    chunks: str = option(help="its chunk file")
    match_corpus: str = option(help="the corpus whose training documents to match")
    match_chunks: str = option(help="its chunk file")
    pairs: str = option("crops", help="the pair maker (which documents give a pair)")
    seed: int = 42
    out: str


@stage_options
class SeedsTableOptions(TableOutputs):
    """``embaug seeds-table``."""

    cell: list[tuple[str, str, str, str]] = option(metavar=("ROW", "COLUMN", "SEED", "SCORES"))
    difference: tuple[str, str] | None = option(
        None, metavar=("A", "B"), help="seed-paired A - B with a 95%% interval"
    )
    metric: str = "euclidean"
    title: str = "kNN accuracy (%) over seeds"


@stage_options
class FigureSweepsOptions(TableOutputs):
    """``embaug figure-sweeps``."""

    point: list[tuple[str, str, str, str]] = option(metavar=("SETTING", "VALUE", "COLUMN", "SCORES"))
    reference: list[tuple[str, str, str]] | None = option(None, metavar=("LABEL", "COLUMN", "SCORES"))
    metric: str = "euclidean"
    out: str = option(help="the figure (PNG; its data CSV is written beside it)")


@stage_options
class TsneOptions:
    """``embaug tsne``: the map's settings default to :class:`embaug.evaluate.tsne.TsneSettings`'."""

    embeddings: str
    corpus: str
    scores: str | None = option(None, help="per-layer kNN scores, for the title")
    name: str = option("", help="model name for the title")
    affinity: str = option(TSNE.affinity, choices=AFFINITIES)
    neighbors_k: int = option(TSNE.k, help="neighbours of uniform affinities")
    perplexity: float = option(TSNE.perplexity, help="of perplexity affinities")
    initialization: str = option(TSNE.initialization, choices=["spectral", "pca", "random"])
    neighbors: str = option(TSNE.neighbors, choices=NEIGHBORS)
    learning_rate: str = option(TSNE.learning_rate, help="a number, or auto (n / 12)")
    n_iter: int = TSNE.n_iter
    max_docs: int | None = option(
        TSNE.max_docs,
        parse=count_or_none,
        help="map a stratified subsample of at most this many documents (none: all)",
    )
    seed: int = TSNE.seed
    k: int = 10
    metric: str = "euclidean"
    test_fraction: float = 0.1
    split_seed: int = option(42, help="seed of the kNN split in the title")
    threads: int | None = None
    out: str = option(help="coordinates, parquet")
    png: str


@stage_options
class FigureTsneOptions:
    """``embaug figure-tsne``."""

    panel: list[tuple[str, str, str]] = option(metavar=("NAME", "COORDS", "SCORES"))
    metric: str = "euclidean"
    title: str = ""
    out: str


@stage_options
class FigureLayersOptions:
    """``embaug figure-layers``."""

    model: list[tuple[str, str]] = option(metavar=("NAME", "SCORES"))
    reference: list[tuple[str, str]] = option(
        [],
        metavar=("NAME", "SCORES"),
        help="a model drawn apart from the study's: as it is, or trained from scratch",
    )
    metric: str = option(
        "euclidean",
        help="a score column's metric; of per-layer MTEB tables: mteb (block average) or mteb-blocks",
    )
    title: str = ""
    ylabel: str = "kNN accuracy (%)"
    out: str


@stage_options
class FigureLossOptions:
    """``embaug figure-loss``."""

    run_dir: str
    title: str = ""
    ylabel: str = "InfoNCE loss"
    out: str


@stage_options
class FigureCurvesOptions:
    """``embaug figure-curves``."""

    curve: list[tuple[str, str, str, str]] = option(metavar=("PANEL", "RUN", "RUN_DIR", "COLUMN"))
    title: str = ""
    blocks: str = option("", help="JSON block -> MTEB tasks: plot block means and their average instead")
    out: str
    deltas: tuple[str, str, str] | None = option(
        None,
        metavar=("SENTENCE_RUN", "STEP", "IN_DOMAIN_RUN"),
        help="Figure 3: also write the paper's Δ_S and Δ_D (percentage points) to --deltas-out",
    )
    deltas_out: str | None = option(None, help="CSV of the deltas")


@stage_options
class MtebOptions(Precision):
    """``embaug mteb``."""

    model: str = option(help="hub id or local directory")
    name: str = option(help="the model's name in the study (mteb: embaug/NAME)")
    task: str = option(help="MTEB task name, e.g. STS15")
    local_path: str = option("", help="local task data (else the hub)")
    layer: list[int] | None = option(
        None, help="score these layers' pooled outputs (default: the last layer)"
    )
    splits: list[str] = option(["test"])
    cache_dir: str = option("results/mteb", help="mteb ResultCache folder")
    batch_size: int = 64
    max_length: int = 512
    pooling: str = "mean"
    normalize: bool = option(
        True, help="L2-normalise the embeddings (the authors' fine-tuned models; not their base models)"
    )
    device: str = "auto"
    threads: int | None = None
    out: list[str] = option(help="result JSON (one per --layer)")


@stage_options
class MtebTableOptions(TableOutputs):
    """``embaug mteb-table``."""

    row: list[tuple[str, str]] = option(metavar=("LABEL", "RESULT_DIR"))
    blocks: str = option(help="JSON: block -> list of task names")
    splits: list[str] = option(["test"])
    title: str = "MTEB main scores (%)"


@stage_options
class VsPaperOptions(TableOutputs):
    """``embaug vs-paper``."""

    ours: str = option(help="a table CSV of this project")
    paper: str = option(help="the paper's table (workflow/reference/paper_*.csv)")
    title: str = "Ours beside the paper"
