"""Each job's threads, memory (MB) and run time (minutes), from its inputs: the workflow's resource
callables.

They read sizes cheaply (Parquet footers, model configs, mteb's task statistics) and leave the
arithmetic, and its basis, to :mod:`embaug.resources`. An input that does not exist yet shows as
<TBD> in a dry run; Snakemake sizes the job again once it does, before submitting it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import resources as sizing

if TYPE_CHECKING:
    from .study_plan import StudyPlan

MTEB_DEFAULT_TASK = sizing.CorpusSize(documents=100_000, text_bytes=100_000 * 1_000)
"""Assumed for an MTEB task whose size is unknown (no local file, no shipped statistics)."""

Request = Callable[[Any, Any, int], sizing.Request]


class JobSizing:
    """Resource requests of a study's jobs (``gpu``: whether the GPU rules run on a GPU)."""

    def __init__(self, study: StudyPlan, gpu: bool) -> None:
        self.study = study
        self.config = study.config
        self.gpu = gpu

    @functools.cache  # noqa: B019 (one JobSizing per workflow: it lives as long as the process)
    def model_shape(self, model: str) -> sizing.ModelShape:
        """Depth, width and parameters of a model name (a run has its base model's shape)."""
        base = self.study.model_origin(model)  # pretraining keeps the shape
        spec = self.config["models"][base]
        if self.study.is_scratch(base):
            return sizing.ModelShape.from_config(
                {"num_hidden_layers": 12, "hidden_size": 768, **spec["architecture"]}
            )
        # a local folder, or a downloaded pinned hub model
        shape = sizing.model_shape(self.study.model_path(base))
        if shape is None:  # a hub id: its config if already cached (never the network), else BERT base's
            try:
                from transformers import AutoConfig

                found = AutoConfig.from_pretrained(
                    self.study.sources[base], revision=spec.get("revision"), local_files_only=True
                )
                shape = sizing.ModelShape.from_config(found.to_dict())
            except (OSError, ValueError, KeyError):
                shape = sizing.BERT_BASE
        return shape

    def stored_layers(self, wildcards: Any) -> int:
        """Layers in an embedding store: Table S7's pooled stores keep the last one only."""
        if "pooling" in wildcards.keys():  # noqa: SIM118 (a Namedlist: `in` reads its values)
            return 1
        return len(self.config["embedding"]["layers"] or range(self.model_shape(wildcards.model).layers + 1))

    def callables(self, request: Request) -> tuple[Callable, Callable, Callable]:
        """Resource callables (threads, mem_mb, runtime) of a `request(wildcards, input, attempt)`."""

        def threads(wildcards, input, attempt=1):
            # Threads cannot wait for the inputs (Snakemake needs a number to plan the DAG): the most
            # a job may get until they exist; Snakemake evaluates it again before the job starts.
            try:
                return request(wildcards, input, attempt).threads
            except FileNotFoundError:
                return sizing.GPU_HOST_THREADS if self.gpu else sizing.CPU_THREAD_CAP

        return (
            threads,
            lambda wildcards, input, attempt=1: request(wildcards, input, attempt).mem_mb,
            lambda wildcards, input, attempt=1: request(wildcards, input, attempt).runtime,
        )

    def embed(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """An embed job: the corpus through the model, every stored layer."""
        return sizing.embed_request(
            sizing.corpus_size(input.corpus), self.model_shape(wildcards.model),
            max_length=self.config["embedding"]["max_length"], gpu=self.gpu, attempt=attempt,
        )  # fmt: skip

    def knn(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A kNN job: the stored layers of the corpus, split into queries and references."""
        return sizing.knn_request(
            sizing.corpus_size(input.corpus).documents, self.stored_layers(wildcards),
            self.model_shape(wildcards.model).dim, test_fraction=self.config["evaluation"]["test_fraction"],
            gpu=self.gpu, attempt=attempt,
        )  # fmt: skip

    def linear(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A linear-probe job: a logistic regression per stored layer."""
        evaluation = self.config["evaluation"]
        return sizing.linear_request(
            sizing.corpus_size(input.corpus).documents, self.stored_layers(wildcards),
            self.model_shape(wildcards.model).dim, sizing.label_count(input.corpus),
            test_fraction=evaluation["test_fraction"], max_train=evaluation["linear"].get("max_train"),
            attempt=attempt,
        )  # fmt: skip

    def tsne(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A t-SNE job: the last layer of (at most evaluation.tsne.max_docs of) the corpus."""
        tsne = self.config["evaluation"]["tsne"]
        documents = sizing.corpus_size(input.corpus).documents
        mapped = documents if tsne["max_docs"] is None else min(documents, tsne["max_docs"])
        # tsne_request counts 3 x perplexity neighbours per document; uniform affinities use k
        perplexity = tsne["perplexity"] if tsne["affinity"] == "perplexity" else tsne["k"] / 3
        return sizing.tsne_request(
            mapped, self.model_shape(wildcards.model).dim,
            perplexity=perplexity, iterations=tsne["n_iter"], attempt=attempt,
        )  # fmt: skip

    def finetune(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A fine-tuning job, with the run's own batch size, length, epochs and scoring."""
        settings = json.loads(self.study.train_settings(wildcards.run))  # its dataset's and overrides
        return sizing.finetune_request(
            sizing.corpus_size(input.chunks), self.model_shape(wildcards.run),
            max_length=settings["max_length"], batch_size=settings["batch_size"], epochs=settings["epochs"],
            max_steps=settings.get("max_steps") or 0, gpu=self.gpu, attempt=attempt,
            split_eval=sizing.corpus_size(input.eval_corpora[0]) if input.eval_corpora else None,
            eval_every=settings.get("eval_every", 0),
        )  # fmt: skip

    def pretrain(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A pretraining job: its steps of masked-LM batches on its corpora."""
        settings = self.config["models"][wildcards.model]["pretraining"]
        return sizing.pretrain_request(
            [sizing.corpus_size(path) for path in input.corpora], self.model_shape(wildcards.model),
            max_length=settings["max_length"], steps=settings["steps"], gpu=self.gpu, attempt=attempt,
            windows_per_step=settings["batch_size"] * settings["grad_accumulation"],
            whole_word_mask=settings["whole_word_mask"],
        )  # fmt: skip

    @functools.cache  # noqa: B019
    def mteb_task_size(self, task: str) -> sizing.CorpusSize:
        """Texts and characters of an MTEB task: its local Parquet file's footer, else mteb's statistics."""
        path = Path(self.config["mteb_tasks"].get(task, {}).get("path", ""))
        if path.suffix == ".parquet" and path.is_file():
            return sizing.table_text_size(path)
        return sizing.mteb_task_size(task, tuple(self.config["mteb"]["splits"])) or MTEB_DEFAULT_TASK

    def mteb(self, wildcards: Any, input: Any, attempt: int, layers: int = 1) -> sizing.Request:
        """An MTEB job: one task's texts through the model (``layers``: layers scored at once)."""
        return sizing.mteb_request(
            self.mteb_task_size(wildcards.task), self.model_shape(wildcards.model),
            max_length=self.config["mteb"]["max_length"], layers=layers, gpu=self.gpu, attempt=attempt,
        )  # fmt: skip

    def mteb_layers(self, wildcards: Any, input: Any, attempt: int) -> sizing.Request:
        """A per-layer MTEB job: one task, every layer the plan scores."""
        return self.mteb(wildcards, input, attempt, layers=len(self.study.mteb.layers(wildcards.model)))
