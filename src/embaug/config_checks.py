"""Checks of a study's settings, each failing with one line that names the config key at fault.

Three moments know enough to check something:

* parsing the config (``snakemake -n`` already fails): :func:`check_schema` (unknown keys, with
  the closest declared name, and values the schema rejects) and :func:`check_config` (settings
  that contradict each other, from-scratch architectures, missing local model folders);
* reading a dataset (rule ``check_dataset``, before any fine-tuning; again in the kNN, linear
  and TF-IDF stages): :func:`check_evaluation_data` (labels, test split size, k);
* loading a model (fine-tuning, embedding, MTEB): :func:`check_layers`, :func:`check_vocabulary`
  and :func:`check_max_length`.

The functions are pure (plain values in, an :class:`~embaug.errors.EmbaugError` or a result
out), so each check is tested directly.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EmbaugError, first_line

MIN_TEST_DOCUMENTS = 10
"""The fewest kNN / linear test documents an accuracy is reported on (and never fewer than the
dataset has classes): with fewer, one document moves the score by more than 10 points."""

BERT_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
"""transformers.BertConfig's defaults of the architecture fields the checks read."""

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
"""A Hugging Face hub id (``name`` or ``org/name``); a source that is not one is a local path."""


class ConfigError(EmbaugError):
    """A config value that cannot work; the message starts with ``config:`` and names the key."""

    def __init__(self, message: str) -> None:
        super().__init__(f"config: {message}")


# --- the config file itself ------------------------------------------------------------------------


def check_configfile(path: str | Path) -> None:
    """A config file Snakemake can read: UTF-8 text holding a YAML mapping of config keys; else one
    line naming the file and, for YAML, the line and column at fault (a missing file is left to
    Snakemake)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not "
            "UTF-8); give a YAML config file"
        ) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise ConfigError(f"{path}: not valid YAML ({where}{problem}); fix that line") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path}: holds {type(config).__name__ if config is not None else 'nothing'}, not a mapping "
            "of config keys (device:, datasets:, models:, study: ...)"
        )


# --- the schema: unknown keys and rejected values ------------------------------------------------


def _dotted(path: Iterable[Any]) -> str:
    """A key path as written in messages: ``study.sweeps.pooling``, ``evaluation.knn.metrics[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.removeprefix(".")


def _flattened(errors: Iterable[Any]) -> Iterator[Any]:
    """Schema errors and, depth first, the errors of the alternatives they summarise (oneOf)."""
    for error in errors:
        yield error
        yield from _flattened(error.context or [])


def unknown_key_message(key_path: Sequence[Any], key: str, allowed: Iterable[str]) -> str:
    """``unknown key 'training.learnig_rate' (did you mean 'learning_rate'?)``."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed) or 'none'}"
    return f"unknown key '{_dotted([*key_path, key])}' ({hint})"


def check_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Fail on the first key the schema does not declare, else on the first value it rejects.

    Uses the schema itself (whatever keys it declares), so a key added to the schema is
    accepted everywhere at once. jsonschema's own message is kept for rejected values, prefixed
    by the key and followed by the key's description.
    """
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(config))
    for error in _flattened(errors):
        if error.validator == "additionalProperties" and error.validator_value is False:
            declared = error.schema.get("properties", {})
            patterns = error.schema.get("patternProperties", {})
            for key in error.instance:
                if key not in declared and not any(re.search(p, str(key)) for p in patterns):
                    raise ConfigError(unknown_key_message(error.absolute_path, str(key), declared))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = _dotted(error.absolute_path)
        description = " ".join(str(error.schema.get("description", "")).split())
        raise ConfigError(
            f"{where + ': ' if where else ''}{error.message}" + (f" ({description})" if description else "")
        )


# --- settings that contradict each other ------------------------------------------------------


def is_local_path(source: str) -> bool:
    """A model or dataset source that can only be a local path, not a hub id."""
    return source.startswith(("/", ".", "~")) or not HUB_ID.fullmatch(source)


def meant_as_folder(source: str) -> bool:
    """A source that can only be a local path, or a relative one whose first folder exists here
    (``models/mine`` beside a ``models/`` folder), which is never meant as a hub id."""
    parts = Path(source).parts
    return is_local_path(source) or (len(parts) > 1 and Path(parts[0]).is_dir())


def model_folder_problem(source: str) -> str | None:
    """What makes a local model folder unusable (``None`` if nothing): it does not exist, is a
    file, or has no ``config.json`` (not a folder a model was saved to with save_pretrained)."""
    path = Path(source).expanduser()
    where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
    if not path.exists():
        return f"no such folder '{source}'{where}"
    if not path.is_dir():
        return f"'{source}' is a file; give the folder a model was saved to (save_pretrained)"
    if not (path / "config.json").is_file():
        return (
            f"folder '{source}' has no config.json, so it holds no saved model; give the folder "
            "a model was saved to (save_pretrained), not a folder above or beside it"
        )
    return None


def check_model_source(name: str, source: str) -> None:
    """A local model folder must exist and hold a saved model (a hub id is looked up when it is
    loaded)."""
    if source == "scratch" or source.startswith(("package:", PRETRAINED)):
        return
    if not meant_as_folder(source) and not Path(source).expanduser().exists():
        return  # a hub id
    problem = model_folder_problem(source)
    if problem:
        raise ConfigError(f"models.{name}.source: {problem}")


PATH_KEYS = ("cache_dir", "datasets.*.source", "models.*.source", "mteb_tasks.*.path", "study.name")
"""Config keys whose values become file paths of the workflow (``*``: every entry of a map)."""


def _values_at(config: dict[str, Any], pattern: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every key matching ``pattern`` (``datasets.*.source``)."""
    nodes = [("", config)]
    for part in pattern.split("."):
        found = []
        for key, node in nodes:
            if not isinstance(node, dict):
                continue
            names = node if part == "*" else [part] if part in node else []
            found += [(f"{key}.{name}".removeprefix("."), node[name]) for name in names]
        nodes = found
    return iter(nodes)


def check_path_values(config: dict[str, Any]) -> None:
    """No ``{`` or ``}`` in a value that becomes a file path: Snakemake would read it as a wildcard
    (and fail with a message about wildcards that names no config key)."""
    for pattern in PATH_KEYS:
        for key, value in _values_at(config, pattern):
            if isinstance(value, str) and ("{" in value or "}" in value):
                raise ConfigError(
                    f"{key}: '{value}' contains '{{' or '}}', which Snakemake reads as a wildcard in a "
                    "file path; rename the file or folder (or link it from a path without braces)"
                )


PRETRAINED = "pretrained:"
"""The source prefix of a model pretrained by the workflow (``pretrained:BASE``, rule pretrain)."""


def pretraining_base(spec: dict[str, Any]) -> str | None:
    """The model a ``pretrained:BASE`` source pretrains, or ``None`` for any other source."""
    source = spec["source"]
    return source.removeprefix(PRETRAINED) if source.startswith(PRETRAINED) else None


def pretraining_origin(models: dict[str, Any], name: str) -> str:
    """The model at the start of a chain of ``pretrained:`` sources (``name`` itself if none)."""
    seen = [name]
    while (base := pretraining_base(models[name])) is not None:
        if base not in models:
            raise ConfigError(
                f"models.{name}.source: pretrained:{base} names a model that is not under models "
                f"(defined: {', '.join(models)})"
            )
        if base in seen:
            raise ConfigError(
                f"models.{seen[0]}.source: pretrained: sources form a loop ({' -> '.join([*seen, base])})"
            )
        seen.append(base)
        name = base
    return name


def check_pretraining(config: dict[str, Any]) -> None:
    """``pretrained:BASE`` models: a known base with a masked-LM head, `pretraining` settings,
    known corpora, replacement shares that add up to at most 1."""
    for name, spec in config["models"].items():
        base = pretraining_base(spec)
        settings = spec.get("pretraining")
        if base is None:
            if settings is not None:
                raise ConfigError(f"models.{name}.pretraining is only read for source: pretrained:MODEL")
            continue
        origin = pretraining_origin(config["models"], name)
        if config["models"][origin].get("kind") == "embedding_only" and origin != name:
            raise ConfigError(
                f"models.{name}.source: {origin} is an embedding_only model; masked-language-model "
                "pretraining needs a BERT"
            )
        if settings is None:
            raise ConfigError(
                f"models.{name}.pretraining: required for source: {spec['source']} (at least corpora)"
            )
        for dataset in settings["corpora"]:
            if dataset not in config["datasets"]:
                raise ConfigError(
                    f"models.{name}.pretraining.corpora names '{dataset}', which is not under datasets "
                    f"(defined: {', '.join(config['datasets'])})"
                )
        replaced = settings["mask_replace_prob"] + settings["random_replace_prob"]
        if replaced > 1:
            raise ConfigError(
                f"models.{name}.pretraining: mask_replace_prob + random_replace_prob is {replaced:g}, "
                "more than all the chosen tokens"
            )


def check_architecture(name: str, architecture: dict[str, Any]) -> None:
    """A from-scratch BERT's invariants: its width splits evenly into its attention heads."""
    width = architecture.get("hidden_size", BERT_DEFAULTS["hidden_size"])
    heads = architecture.get("num_attention_heads", BERT_DEFAULTS["num_attention_heads"])
    if width % heads:
        raise ConfigError(
            f"models.{name}.architecture: hidden_size {width} is not a multiple of "
            f"num_attention_heads {heads} (each head gets hidden_size / num_attention_heads dimensions)"
        )


def check_layers(layers: Sequence[int] | None, n_layers: int, key: str, model: str) -> list[int]:
    """Layer indices of a model with ``n_layers`` layers (embedding layer + blocks), made positive.

    Only negative indices wrap (``-1`` is the last layer); ``None`` is every layer.
    """
    if layers is None:
        return list(range(n_layers))
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise EmbaugError(
                f"{key}: layer {layer} is out of range for model '{model}', which has {n_layers} "
                f"layers: 0 (embedding layer) to {n_layers - 1}, or -1 (last) to -{n_layers}"
            )
    return [layer % n_layers for layer in layers]


def check_config(config: dict[str, Any], pair_makers: Iterable[str]) -> None:
    """Cross-field checks of a config the schema accepted (with its defaults filled in).

    ``pair_makers``: the names of the registered pair makers (:data:`embaug.augment.PAIR_MAKERS`).
    """
    check_path_values(config)
    for name, spec in config["models"].items():
        scratch = spec["source"] == "scratch"
        if not scratch:
            for key in ("architecture", "tokenizer_corpus"):
                if spec.get(key):
                    raise ConfigError(f"models.{name}.{key} is only read for source: scratch")
            check_model_source(name, spec["source"])
            continue
        check_architecture(name, spec["architecture"])
        blocks = spec["architecture"].get("num_hidden_layers", BERT_DEFAULTS["num_hidden_layers"])
        if name in config["study"]["models"]:
            try:
                check_layers(config["embedding"]["layers"], blocks + 1, "embedding.layers", name)
            except EmbaugError as exc:
                raise ConfigError(str(exc)) from None
    check_pretraining(config)
    known = set(pair_makers)
    for name, spec in config["augmentations"].items():
        if spec["pairs"] not in known:
            raise ConfigError(
                f"augmentations.{name}.pairs: unknown pair maker '{spec['pairs']}' "
                f"(known: {', '.join(sorted(known))})"
            )
    chunking = config["chunking"]
    if chunking["min_chars"] > chunking["max_chars"]:
        raise ConfigError(
            f"chunking.min_chars ({chunking['min_chars']}) is above chunking.max_chars "
            f"({chunking['max_chars']}): no sentence could be kept"
        )
    study = config["study"]
    if "table2_model" in study and study["table2_model"] not in study["models"]:
        raise ConfigError(
            f"study.table2_model names '{study['table2_model']}', which is not in study.models "
            f"({', '.join(study['models'])}): only those are fine-tuned"
        )
    for augmentation in study["paired_difference"] if study["seeds"] else []:
        if augmentation not in study["augmentations"]:
            raise ConfigError(
                f"study.paired_difference names '{augmentation}', which is not in study.augmentations "
                f"({', '.join(study['augmentations'])})"
            )
    training = config["training"]
    if training["eval_every"] and training["eval_k"] >= training["eval_docs"]:
        raise ConfigError(
            f"training.eval_k ({training['eval_k']}) must be below training.eval_docs "
            f"({training['eval_docs']}): each held document needs k neighbours"
        )


# --- a dataset's labels against the evaluation ----------------------------------------------


def check_evaluation_data(
    labels: Sequence[str] | np.ndarray,
    dataset: str,
    k: int | None,
    test_fraction: float,
    seed: int,
) -> dict[str, int]:
    """What the kNN and linear evaluation need of a dataset's labels: checked before any model is
    trained (rule check_dataset) and again by every stage that scores on the split.

    At least two classes among the labelled documents; a test split (``test_fraction`` of them,
    drawn with ``seed``) of at least :data:`MIN_TEST_DOCUMENTS` documents and at least one per
    class; and, for kNN (``k`` not ``None``), more reference documents (the labelled ones outside
    the test split) than ``k``. Returns the counts.
    """
    from .data.split import UNLABELED, labelled_split

    labels = np.asarray(labels, dtype=str)
    labelled = labels[labels != UNLABELED]
    classes = len(np.unique(labelled))
    if classes < 2:
        raise EmbaugError(
            f"dataset '{dataset}': {len(labelled)} labelled documents in {classes} class"
            f"{'' if classes == 1 else 'es'} ({len(labels) - len(labelled)} '{UNLABELED}'); kNN and "
            f"linear evaluation need at least 2 classes (key datasets.{dataset}.label names the "
            "label column)"
        )
    train, test = labelled_split(labels, test_fraction, seed)
    needed = max(MIN_TEST_DOCUMENTS, classes)
    if len(test) < needed:
        raise EmbaugError(
            f"evaluation.test_fraction: {test_fraction:g} of the {len(labelled)} labelled documents "
            f"of dataset '{dataset}' is {len(test)} test documents; an accuracy needs at least "
            f"{needed} ({MIN_TEST_DOCUMENTS}, and one per class: {classes} classes)"
        )
    if k is not None and k >= len(train):
        raise EmbaugError(
            f"evaluation.knn.k: {k} neighbours need more than {k} reference documents, but "
            f"dataset '{dataset}' has {len(train)} (its labelled documents outside the test split)"
        )
    return {
        "documents": len(labels),
        "labelled": len(labelled),
        "classes": classes,
        "reference": len(train),
        "test": len(test),
    }


# --- a loaded model against the settings ------------------------------------------------------


def check_vocabulary(tokenizer_size: int, embedding_rows: int, model: str) -> None:
    """Every token id the tokenizer can produce must have a row in the model's embedding matrix."""
    if tokenizer_size > embedding_rows:
        raise EmbaugError(
            f"model '{model}': its tokenizer has {tokenizer_size} tokens but the model's embedding "
            f"matrix has {embedding_rows} rows (vocab_size), so ids >= {embedding_rows} cannot be "
            f"embedded; use the tokenizer the model was saved with (key models.{model}.source)"
        )


def check_max_length(max_length: int, length: int, positions: int, key: str, model: str) -> None:
    """``length`` (``max_length`` after the tokenizer's own cap) must fit the model's positions."""
    if length > positions:
        raise EmbaugError(
            f"{key}: {max_length} tokens exceed the {positions} position embeddings of model "
            f"'{model}' (its tokenizer does not cap inputs there); set {key} to at most {positions}"
        )
