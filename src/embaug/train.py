"""Contrastive fine-tuning: InfoNCE with in-batch negatives on augmentation-made positive pairs."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import __version__
from .augment import (
    WHOLE_DOCUMENT_MAKERS,
    PairMaker,
    TrainingDocument,
    get_pair_maker,
    make_pairs,
    mask_tokens,
)
from .checkpoint import Checkpoints, capture_rng, restore_rng, run_fingerprint
from .data.batch_matched import pair_documents
from .encode import (
    TokenizedTexts,
    autocast,
    autocast_dtype,
    embed_tokenized,
    forward_token_cap,
    input_length,
    length_sorted_batches,
)
from .errors import EmbaugError
from .io import atomic_path, write_csv, write_json
from .models import load_encoder, pool, resolve_device, save_encoder

LOG = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Every parameter of one fine-tuning run (docs/method.md gives the defaults).

    ``freeze_layers``: ``None`` trains every weight; ``k >= 0`` freezes the embedding layer and
    the first ``k`` transformer blocks (:func:`freeze_layers`, the paper's Figure 4a).

    ``forward_tokens`` only sets the cost: the most padded tokens per forward pass (0: automatic,
    :data:`CPU_TRAIN_FORWARD_TOKENS` on CPU and whole batch sides on GPU; < 0: whole sides), see
    :class:`PairEncoder`.
    """

    augmentation: str = "crops"
    pairs: str = "crops"
    mask_fraction: float = 0.0
    batch_size: int = 64
    learning_rate: float = 2.0e-5
    warmup_fraction: float = 0.1
    epochs: int = 1
    temperature: float = 0.05
    max_length: int = 512
    pooling: str = "mean"
    seed: int = 42
    device: str = "auto"
    max_steps: int = 0
    eval_every: int = 0
    eval_offset: int = 0  # scored after the steps offset + k * eval_every (the authors: 1, 11, 21, ...)
    eval_steps: tuple[int, ...] | None = None  # scored after these steps instead (Figure 1's)
    mteb_max_length: int | None = None  # MTEB curves: tokens per text (None: max_length)
    mteb_normalize: bool = True  # MTEB curves: L2-normalised embeddings
    eval_docs: int = 500  # held-out kNN on the training corpus (HeldOutKnn); 0: none
    eval_k: int = 10
    eval_test_fraction: float = 0.1  # the split of SplitKnn (eval_corpora, Figure 3)
    eval_split_seed: int = 42
    eval_metric: str = "euclidean"
    forward_tokens: int = 0
    freeze_layers: int | None = None
    precision: str = "float32"


def scored_after(step: int, settings: TrainSettings) -> bool:
    """Whether the curves are scored after training step ``step`` (1-based; before training and
    after the last step they always are): ``eval_steps`` where given, else every ``eval_every``
    steps from ``eval_offset`` on (offset 1: after steps 1, 11, 21, ... as the authors' loops,
    which score after 0-based batch i when i % 10 == 0)."""
    if settings.eval_steps is not None:
        return step in settings.eval_steps
    return step >= settings.eval_offset and (step - settings.eval_offset) % settings.eval_every == 0


def info_nce_loss(anchors: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the anchor-to-positive cosine similarities / temperature.

    Row i's target is column i; the other anchors' positives are the negatives (one direction).
    """
    similarity = F.normalize(anchors, dim=-1) @ F.normalize(positives, dim=-1).T
    targets = torch.arange(len(anchors), device=anchors.device)
    return F.cross_entropy(similarity / temperature, targets)


CPU_TRAIN_FORWARD_TOKENS = 1024
"""Padded tokens per training forward pass on CPU when ``forward_tokens`` is 0 (automatic)."""

PairBatch = tuple[TokenizedTexts, TokenizedTexts, np.ndarray]
"""Tokenized anchors, tokenized positives, and the indices of one batch's pairs in both."""


class PairEncoder:
    """The training forward pass: pre-tokenized pairs to pooled anchor and positive embeddings.

    :meth:`batches` tokenizes an epoch's pairs once, so the step loop calls no tokenizer. Each
    side of a batch is padded to its longest text and masked (``mask_fraction``: the same draws
    as before, one per position of the padded side), then run through the model in
    length-sorted passes of at most ``forward_tokens`` padded tokens
    (:func:`~embaug.encode.forward_token_cap`), each trimmed to its longest text. A text's
    pooled state does not depend on the other texts of its pass, so this saves the compute
    spent on padding without changing the loss; one backward pass still covers the whole batch
    (every in-batch negative). Without a cap, a side is one pass in batch order, as it was.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        settings: TrainSettings,
        device: torch.device,
        mask_generator: torch.Generator,
    ) -> None:
        self.model, self.tokenizer, self.settings, self.device = model, tokenizer, settings, device
        self.mask_generator = mask_generator
        self.cap = forward_token_cap(device, settings.forward_tokens or "auto", CPU_TRAIN_FORWARD_TOKENS)

    def batches(self, pairs: list[tuple[str, str]]) -> Iterator[PairBatch]:
        """``(anchors, positives, index)`` per batch of ``pairs``, tokenized once up front."""
        anchors, positives = (
            TokenizedTexts(
                self.tokenizer,
                [pair[side] for pair in pairs],
                self.settings.batch_size,
                self.settings.max_length,
                special_tokens_mask=True,
            )
            for side in (0, 1)
        )
        for first in range(0, len(pairs), self.settings.batch_size):
            yield anchors, positives, np.arange(first, min(first + self.settings.batch_size, len(pairs)))

    def __call__(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled ``(anchors, positives)`` of one batch from :meth:`batches`, with gradients."""
        anchors, positives, index = batch
        return self.embed(anchors, index), self.embed(positives, index)

    def embed(self, tokenized: TokenizedTexts, index: np.ndarray) -> torch.Tensor:
        """Pooled last-layer states ``[len(index), dim]`` of the texts ``index``, in that order."""
        features = tokenized.padded(index, self.device)
        special = features.pop("special_tokens_mask")
        if self.settings.mask_fraction > 0:
            features["input_ids"] = mask_tokens(
                features["input_ids"],
                special,
                self.settings.mask_fraction,
                self.tokenizer.mask_token_id,
                self.mask_generator,
            )
        lengths = tokenized.lengths[index]
        if self.cap is None or int(lengths.max()) * len(index) <= self.cap:
            return self._forward(features)
        parts = list(length_sorted_batches(lengths, len(index), self.cap))
        pooled = []
        for part in parts:
            width = int(lengths[part[0]])  # the longest text of the part comes first
            columns = slice(None, width) if self.tokenizer.padding_side == "right" else slice(-width, None)
            rows = torch.as_tensor(part, device=self.device)
            pooled.append(self._forward({key: value[rows][:, columns] for key, value in features.items()}))
        inverse = torch.as_tensor(np.argsort(np.concatenate(parts)), device=self.device)
        return torch.cat(pooled)[inverse]

    def _forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(self.device, precision=self.settings.precision):
            hidden = self.model(**features).last_hidden_state
        return pool(hidden.float(), features["attention_mask"], self.settings.pooling)


def freeze_layers(model: torch.nn.Module, k: int) -> None:
    """Freeze the embedding layer and the first ``k`` transformer blocks (``requires_grad=False``).

    ``k`` counts blocks from the input side, ``0 <= k < L`` for a model with ``L`` blocks; with
    ``k = L`` nothing would be trained (that model is the base model itself), so it is refused.
    Works for encoders laid out like BERT, RoBERTa and MPNet (``embeddings``, ``encoder.layer``).
    """
    blocks = getattr(getattr(model, "encoder", None), "layer", None)
    if not hasattr(model, "embeddings") or blocks is None:
        raise EmbaugError(
            f"training.freeze_layers: {type(model).__name__} has no 'embeddings' and "
            "'encoder.layer' to freeze"
        )
    if not 0 <= k < len(blocks):
        raise EmbaugError(
            f"training.freeze_layers: {k} is out of range for a model with {len(blocks)} transformer "
            f"blocks (use 0..{len(blocks) - 1}; freezing all {len(blocks)} leaves the base model)"
        )
    model.embeddings.requires_grad_(False)
    for block in blocks[:k]:
        block.requires_grad_(False)


def fused_optimizer(kind: type[torch.optim.Optimizer], parameters, **options) -> torch.optim.Optimizer:
    """``kind(parameters, **options)`` with the fused kernel where torch has one for the device
    (same update), else the default one."""
    try:
        return kind(parameters, fused=True, **options)
    except (RuntimeError, ValueError):  # no fused kernel for this device in this torch
        return kind(parameters, **options)


def adam(model: torch.nn.Module, learning_rate: float) -> torch.optim.Adam:
    """Adam without weight decay on the trainable (not frozen) weights, fused where torch can."""
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return fused_optimizer(torch.optim.Adam, parameters, lr=learning_rate)


def training_documents(
    corpus: pd.DataFrame, chunks: pd.DataFrame, whole_documents: bool = False
) -> list[TrainingDocument]:
    """The documents that can give a pair, in corpus order.

    Those with at least two chunks; with ``whole_documents`` (a pair maker that reads only the
    full text) every document, its chunks attached where it has any.
    """
    grouped = chunks.sort_values(["doc_id", "chunk_id"]).groupby("doc_id", sort=False)["text"]
    by_doc = {doc_id: list(texts) for doc_id, texts in grouped}
    gives_pair = pair_documents(corpus, chunks, whole_documents)
    return [
        TrainingDocument(text, by_doc.get(doc_id, []))
        for doc_id, text, kept in zip(corpus["doc_id"], corpus["text"], gives_pair)
        if kept
    ]


class HeldTexts:
    """Documents tokenized once and embedded by the model being trained (eval mode, no gradient,
    the training pooling, last layer), for the scores taken during training."""

    def __init__(self, texts: list[str], tokenizer, settings: TrainSettings, batch_size: int = 64):
        self.tokenized = TokenizedTexts(tokenizer, texts, batch_size, settings.max_length)
        self.pooling = settings.pooling

    def embed(self, model) -> np.ndarray:
        """Pooled last-layer embeddings of the documents, in the order given."""
        was_training = model.training
        embeddings = embed_tokenized(model, self.tokenized, self.pooling, layers=[-1])[0]
        model.train(was_training)
        return embeddings


class HeldOutKnn(HeldTexts):
    """kNN accuracy of the model being trained on a fixed, pre-tokenized set of held documents.

    Up to ``n_docs`` labelled documents are drawn once (seeded) and tokenized once; each call
    embeds them and returns the 10-fold cross-validated ``k``-NN accuracy (Euclidean), each
    document scored once by ``knn_accuracy`` with the other folds as neighbours. Consumes no
    training randomness, so a run's training is the same with or without it.
    """

    def __init__(self, corpus: pd.DataFrame, tokenizer, settings: TrainSettings, batch_size: int = 64):
        from .data.sources import UNLABELED

        labelled = corpus[corpus["label"] != UNLABELED]
        if len(labelled) > settings.eval_docs:
            labelled = labelled.sample(settings.eval_docs, random_state=settings.seed)
        if labelled["label"].nunique() < 2 or len(labelled) <= settings.eval_k:
            raise EmbaugError(
                f"training.eval_every: the held set has {len(labelled)} labelled documents in "
                f"{labelled['label'].nunique()} classes; it needs more than eval_k={settings.eval_k} "
                "documents and at least 2 classes"
            )
        super().__init__(labelled["text"].tolist(), tokenizer, settings, batch_size)
        self.labels = labelled["label"].to_numpy(dtype=str)
        self.k, self.seed = settings.eval_k, settings.seed

    def __call__(self, model) -> float:
        from sklearn.model_selection import KFold

        from .evaluate.knn import knn_accuracy

        embeddings = self.embed(model)
        folds = KFold(n_splits=min(10, len(self.labels)), shuffle=True, random_state=self.seed)
        correct = 0.0
        for train, test in folds.split(embeddings):
            k = min(self.k, len(train))
            correct += knn_accuracy(embeddings, self.labels, train, test, k=k) * len(test)
        return correct / len(self.labels)


class SplitKnn(HeldTexts):
    """kNN accuracy of the model being trained on a corpus's whole evaluation split (Figure 3).

    The labelled documents are split once by :func:`~embaug.data.split.labelled_split`
    (``eval_test_fraction``, ``eval_split_seed``: the split of the kNN stage, Table 2); each
    call embeds all of them and returns ``knn_accuracy`` with the training part as references
    and the test part as queries (``eval_k``, ``eval_metric``): the score the kNN stage would
    give the last layer of the model at that step.
    """

    def __init__(self, corpus: pd.DataFrame, tokenizer, settings: TrainSettings, batch_size: int = 64):
        from .data.split import labelled_split

        labels = corpus["label"].to_numpy(dtype=str)
        train, test = labelled_split(labels, settings.eval_test_fraction, settings.eval_split_seed)
        rows = np.concatenate([train, test])  # references keep their corpus order (kNN tie-break)
        super().__init__(corpus["text"].iloc[rows].tolist(), tokenizer, settings, batch_size)
        self.labels = labels[rows]
        self.train, self.test = np.arange(len(train)), np.arange(len(train), len(rows))
        self.k, self.metric = settings.eval_k, settings.eval_metric

    def __call__(self, model) -> float:
        from .evaluate.knn import knn_accuracy

        return knn_accuracy(
            self.embed(model), self.labels, self.train, self.test, k=self.k, metric=self.metric
        )


@contextmanager
def global_rng_kept(device: torch.device) -> Iterator[None]:
    """Run a block without changing the global random states training draws from afterwards.

    Dropout draws from torch's global generator; evaluation libraries reseed the global
    generators (mteb seeds python, numpy and torch to 42 for every task), so scoring during
    training would otherwise change every later dropout mask, i.e. the trained model.
    """
    states = capture_rng(device, {})
    try:
        yield
    finally:
        restore_rng(states, device, {})


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's numbers."""
    names = ["torch", "transformers", "sentence-transformers", "tokenizers", "numpy"]
    versions = {"python": platform.python_version(), **{name: version(name) for name in names}}
    return {**versions, "embaug": __version__}


@dataclass
class TrainingRecord:
    """What a run has logged so far, saved in its checkpoints: the scores before training,
    a ``(step, loss, lr, seconds)`` row per batch, the scores of the scored batches, and the
    batches after which the run was resumed."""

    initial_scores: dict[str, float]
    initial_eval_seconds: float
    log: list[tuple[int, float, float, float]] = field(default_factory=list)
    scored: list[dict[str, float]] = field(default_factory=list)
    resumed_after: list[int] = field(default_factory=list)

    @property
    def step(self) -> int:
        """Batches done."""
        return self.log[-1][0] if self.log else 0

    @property
    def seconds(self) -> float:
        """Seconds spent so far (the initial scoring's, before the first batch)."""
        return self.log[-1][3] if self.log else self.initial_eval_seconds


class EpochPairs:
    """The training batches: each epoch's pairs, drawn from ``rng`` when the epoch starts.

    :meth:`batches` can start after any number of batches done, given the generator state
    :meth:`resume_state` gave at that point: mid-epoch, the epoch's pairs are drawn again from
    the state they were first drawn from, and the batches already done are skipped.
    """

    def __init__(
        self,
        documents: list[TrainingDocument],
        maker: PairMaker,
        rng: np.random.Generator,
        encoder: PairEncoder,
        steps_per_epoch: int,
        epochs: int,
    ) -> None:
        self.documents, self.maker, self.rng, self.encoder = documents, maker, rng, encoder
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.epoch_state = rng.bit_generator.state

    def batches(self, done: int = 0) -> Iterator[PairBatch]:
        """Batches from number ``done + 1`` on (the generator in :meth:`resume_state`'s state)."""
        first_epoch, skip = divmod(done, self.steps_per_epoch)
        for epoch in range(first_epoch, self.epochs):
            self.epoch_state = self.rng.bit_generator.state
            pairs = make_pairs(self.documents, self.maker, self.rng)
            yield from islice(self.encoder.batches(pairs), skip if epoch == first_epoch else 0, None)

    def resume_state(self, done: int) -> dict:
        """The generator state :meth:`batches` continues from after ``done`` batches."""
        return self.epoch_state if done % self.steps_per_epoch else self.rng.bit_generator.state


def finetune(
    model_source: str,
    corpus: pd.DataFrame,
    chunks: pd.DataFrame,
    settings: TrainSettings,
    out_dir: str | Path,
    run_name: str = "",
    eval_corpora: dict[str, pd.DataFrame] | None = None,
    eval_mteb: dict[str, str | None] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> pd.DataFrame:
    """Fine-tune one model and save it (atomically) with ``train_log.csv`` and ``run.json``.

    With ``settings.eval_every = N > 0`` the model is scored before training and after every
    N batches (and the last) by :class:`HeldOutKnn` on the training corpus (column
    ``knn_accuracy``; not with ``settings.eval_docs = 0``) and by :class:`SplitKnn` on each of
    ``eval_corpora`` (column ``knn_accuracy_{name}``, the paper's Figure 3); the columns are
    empty on the other batches, ``eval_seconds`` says what the scoring cost, and the scores
    before training go into ``run.json`` (``initial_scores``).
    ``eval_mteb`` (task name -> local task file or ``None`` for the hub) adds the main score
    of each MTEB task at the same steps (column ``mteb_{task}``, the paper's Figure 1).

    With ``checkpoint_dir``, the training state is saved there every ``checkpoint_every``
    batches (0: never; :mod:`embaug.checkpoint`), a run of the same settings and inputs
    continues from a checkpoint found there, and the checkpoint is deleted once the model is
    saved. A resumed run ends with the same model and log (bar the timings) as an
    uninterrupted one.
    """
    run = _FineTuning(model_source, corpus, chunks, settings, run_name)
    run.set_up(corpus, chunks, eval_corpora, eval_mteb, checkpoint_dir, checkpoint_every)
    record = run.start()
    run.train(record)
    train_log = run.save(out_dir, record)
    run.checkpoints.remove()
    return train_log


def training_evaluators(
    corpus: pd.DataFrame,
    tokenizer,
    settings: TrainSettings,
    eval_corpora: dict[str, pd.DataFrame] | None,
    eval_mteb: dict[str, str | None] | None,
) -> dict[str, Callable[[torch.nn.Module], float]]:
    """The scores :func:`finetune` takes while training, by ``train_log.csv`` column (none with
    ``settings.eval_every = 0``)."""
    scorers: dict[str, Callable[[torch.nn.Module], float]] = {}
    if settings.eval_every <= 0:
        return scorers
    if settings.eval_docs > 0:
        scorers["knn_accuracy"] = HeldOutKnn(corpus, tokenizer, settings)
    for name, eval_corpus in (eval_corpora or {}).items():
        scorers[f"knn_accuracy_{name}"] = SplitKnn(eval_corpus, tokenizer, settings)
    if eval_mteb:
        from .evaluate.mteb import TrainingScore

        for task, local_path in eval_mteb.items():
            scorers[f"mteb_{task}"] = TrainingScore(
                task, local_path, tokenizer, max_length=settings.mteb_max_length or settings.max_length,
                pooling=settings.pooling, normalize=settings.mteb_normalize,
            )  # fmt: skip
    return scorers


class _FineTuning:
    """One :func:`finetune` run in its steps: set-up (the model here, then :meth:`set_up`),
    :meth:`start` (score or resume), :meth:`train` (the loop, scoring and checkpointing when due)
    and :meth:`save`.

    The steps draw from the seeded generators in the order a run always has, so a run's model
    depends only on its settings and inputs.
    """

    def __init__(
        self,
        model_source: str,
        corpus: pd.DataFrame,
        chunks: pd.DataFrame,
        settings: TrainSettings,
        run_name: str,
    ) -> None:
        """The training documents, the seeded generators (``settings.seed``) and the model."""
        self.model_source, self.settings, self.run_name = model_source, settings, run_name
        self.maker = get_pair_maker(settings.pairs, settings.augmentation)
        self.documents = training_documents(corpus, chunks, settings.pairs in WHOLE_DOCUMENT_MAKERS)
        if not self.documents:
            raise EmbaugError(f"run '{run_name}': no document has two chunks, so no pair can be made")
        torch.manual_seed(settings.seed)
        self.rng = np.random.default_rng(settings.seed)
        self.mask_generator = torch.Generator().manual_seed(settings.seed)
        self.device = resolve_device(settings.device)
        self.model, self.tokenizer = load_encoder(model_source, self.device)
        input_length(
            self.model, self.tokenizer, settings.max_length, "training.max_length", run_name or model_source
        )

    def set_up(
        self,
        corpus: pd.DataFrame,
        chunks: pd.DataFrame,
        eval_corpora: dict[str, pd.DataFrame] | None,
        eval_mteb: dict[str, str | None] | None,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
    ) -> None:
        """The checkpoints (keyed by the weights before training), optimisation and evaluators."""
        fingerprint = ""  # without checkpoints, there is nothing to match
        if checkpoint_dir:  # of the weights before training: hashed before the first batch
            run = {"base_model": self.model_source, "run": self.run_name, "settings": asdict(self.settings)}
            tables = {"corpus": corpus, "chunks": chunks}
            tables.update({f"eval_{name}": table for name, table in (eval_corpora or {}).items()})
            fingerprint = run_fingerprint({**run, "mteb": eval_mteb}, self.model, tables)
        self.checkpoints = Checkpoints(checkpoint_dir, checkpoint_every, fingerprint)
        self._set_up_optimisation()
        self.evaluators = training_evaluators(corpus, self.tokenizer, self.settings, eval_corpora, eval_mteb)

    def _set_up_optimisation(self) -> None:
        """Frozen layers, pair encoder, optimiser, loss scaler, schedule and the batch stream."""
        settings = self.settings
        if settings.freeze_layers is not None:
            freeze_layers(self.model, settings.freeze_layers)
        self.encoder = PairEncoder(self.model, self.tokenizer, settings, self.device, self.mask_generator)
        self.optimizer = adam(self.model, settings.learning_rate)
        # fp16 autocast (GPUs without bf16) needs loss scaling; bf16 and fp32 do not
        fp16 = autocast_dtype(self.device, precision=settings.precision) == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        steps_per_epoch = -(-len(self.documents) // settings.batch_size)
        self.total_steps = steps_per_epoch * settings.epochs
        if settings.max_steps:
            self.total_steps = min(self.total_steps, settings.max_steps)
        # the authors warm up over a fraction of ONE epoch's steps, however many epochs follow
        warmup_steps = int(settings.warmup_fraction * min(steps_per_epoch, self.total_steps))
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup_steps, self.total_steps)
        self.stream = EpochPairs(
            self.documents, self.maker, self.rng, self.encoder, steps_per_epoch, settings.epochs
        )

    @property
    def trainable(self) -> dict[str, object]:
        """The parts whose state a checkpoint keeps, by name."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
        }

    def evaluate(self) -> tuple[dict[str, float], float]:
        """Every evaluator's score of the model now, and the seconds they took."""
        began = time.perf_counter()
        with global_rng_kept(self.device):
            scores = {column: float(evaluator(self.model)) for column, evaluator in self.evaluators.items()}
        return scores, time.perf_counter() - began

    def start(self) -> TrainingRecord:
        """The record to continue: a checkpoint's, its state restored, or a new one with the
        scores before training."""
        resumed = self.checkpoints.load()
        if resumed is None:
            return TrainingRecord(*(self.evaluate() if self.evaluators else ({}, 0.0)))
        for name, part in self.trainable.items():
            part.load_state_dict(resumed[name])
        record = TrainingRecord(**resumed["record"])
        record.resumed_after.append(record.step)
        self.rng.bit_generator.state = resumed["pairs_rng"]
        restore_rng(resumed["rng"], self.device, {"mask": self.mask_generator})
        LOG.info(
            "run '%s': resuming after batch %d of %d (%s)",
            self.run_name,
            record.step,
            self.total_steps,
            self.checkpoints.path,
        )
        return record

    def train(self, record: TrainingRecord) -> None:
        """The batches left, each logged into ``record``, scored and checkpointed when due."""
        done = record.step
        self.model.train()
        start = time.perf_counter() - record.seconds
        progress = tqdm(total=self.total_steps, initial=done, desc=f"finetune {self.run_name}", unit="batch")
        batches = islice(self.stream.batches(done), self.total_steps - done)
        for step, batch in enumerate(batches, start=done + 1):
            loss, lr = self.optimise(batch)
            if self.evaluators and (scored_after(step, self.settings) or step == self.total_steps):
                scores, seconds = self.evaluate()
                record.scored.append({"step": step, **scores, "eval_seconds": seconds})
            record.log.append((step, loss, lr, time.perf_counter() - start))
            progress.update()
            progress.set_postfix(loss=f"{loss:.3f}")
            if self.checkpoints.due(step, self.total_steps):
                self.checkpoints.save(
                    {
                        **{name: part.state_dict() for name, part in self.trainable.items()},
                        "record": asdict(record),
                        "pairs_rng": self.stream.resume_state(step),
                        "rng": capture_rng(self.device, {"mask": self.mask_generator}),
                    }
                )
        progress.close()

    def optimise(self, batch: PairBatch) -> tuple[float, float]:
        """One optimiser step on one batch: its loss, and the learning rate it was taken with."""
        anchors, positives = self.encoder(batch)
        loss = info_nce_loss(anchors, positives, self.settings.temperature)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item(), lr

    def save(self, out_dir: str | Path, record: TrainingRecord) -> pd.DataFrame:
        """Save the model, ``train_log.csv`` and ``run.json`` into ``out_dir`` (atomically); the log."""
        train_log = pd.DataFrame(record.log, columns=["step", "loss", "lr", "seconds"])
        if self.evaluators:
            columns = [*self.evaluators, "eval_seconds"]
            scored_log = pd.DataFrame(record.scored, columns=["step", *columns])
            train_log = train_log.merge(scored_log, on="step", how="left")
        with atomic_path(out_dir) as tmp:
            save_encoder(self.model, self.tokenizer, tmp, self.settings.pooling)
            write_csv(train_log, tmp / "train_log.csv")
            write_json(
                {
                    "run": self.run_name,
                    "base_model": self.model_source,
                    "settings": asdict(self.settings),
                    "training_documents": len(self.documents),
                    "steps": self.total_steps,
                    "device": str(self.device),
                    "seconds": train_log["seconds"].iloc[-1],
                    "initial_scores": record.initial_scores,
                    "initial_eval_seconds": record.initial_eval_seconds,
                    "resumed_after_steps": record.resumed_after,
                    "versions": library_versions(),
                },
                tmp / "run.json",
            )
        return train_log
