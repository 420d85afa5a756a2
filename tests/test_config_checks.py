"""Bad configs, datasets and models: each gives one line naming the config key, before a job runs
where that can be known then (embaug.config_checks, embaug.plan).

The tables call the check functions directly (the workflow calls the same functions at parse
time); a few dry runs show the workflow wiring. No shared data: corpora and models are built here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate

from embaug.augment import PAIR_MAKERS
from embaug.cli import main
from embaug.config_checks import (
    MIN_TEST_DOCUMENTS,
    ConfigError,
    check_config,
    check_evaluation_data,
    check_layers,
    check_max_length,
    check_schema,
    check_vocabulary,
    is_local_path,
)
from embaug.errors import EmbaugError
from embaug.store import EmbeddingStore, EmbeddingWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())

# The .test study's shape, with a source that need not exist (the schema never opens it).
BASE = {
    "device": "cpu",
    "datasets": {"bbc": {"source": "bbc.parquet", "id": "id", "subsample": {"n": 160, "seed": 1}}},
    "models": {
        "tiny": {
            "source": "scratch",
            "tokenizer_corpus": ["bbc"],
            "architecture": {
                "vocab_size": 2000,
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 128,
            },
        }
    },
    "training": {"batch_size": 16, "learning_rate": 1.0e-3, "max_length": 64},
    "embedding": {"batch_size": 32, "max_length": 128},
    "study": {"models": ["tiny"], "train_on": ["bbc"], "augmentations": ["dropout", "crops"]},
    "mteb": {"enabled": False, "blocks": {"sts": ["STS16"]}, "layer_tasks": ["STS16"], "layers": [0, 2]},
    "mteb_tasks": {"STS16": {"path": "sts16.parquet"}},
}


def changed(path: str, value) -> dict:
    """BASE with the value at a dotted key path set (``...=DELETE`` removes the key)."""
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if value == "DELETE":
        del node[last]
    else:
        node[last] = value
    return config


def with_defaults(config: dict) -> dict:
    """The config as the workflow checks it: schema-valid, defaults filled in."""
    check_schema(config, SCHEMA)
    validate(config, str(SCHEMA_FILE), set_default=True)
    return config


# --- unknown keys and values the schema rejects ------------------------------------------------

SCHEMA_CASES = [
    # unknown keys, at every level, with the closest declared name
    ("trainig", {}, "unknown key 'trainig' (did you mean 'training'?)"),
    ("training.learnig_rate", 1e-3, "unknown key 'training.learnig_rate' (did you mean 'learning_rate'?)"),
    ("chunking.sentence", 3, "unknown key 'chunking.sentence' (did you mean 'sentences'?)"),
    ("evaluation.knn.kk", 5, "unknown key 'evaluation.knn.kk' (did you mean 'k'?)"),
    (
        "evaluation.linear.max_iters",
        5,
        "unknown key 'evaluation.linear.max_iters' (did you mean 'max_iter'?)",
    ),
    ("evaluation.tsne.perplexty", 5, "unknown key 'evaluation.tsne.perplexty' (did you mean 'perplexity'?)"),
    ("datasets.bbc.txt", "body", "unknown key 'datasets.bbc.txt' (did you mean 'text'?)"),
    ("datasets.bbc.subsample.size", 5, "unknown key 'datasets.bbc.subsample.size' (allowed: n, seed)"),
    ("models.tiny.sorce", "x", "unknown key 'models.tiny.sorce' (did you mean 'source'?)"),
    (
        "models.tiny.architecture.num_hidden_layer",
        3,
        "unknown key 'models.tiny.architecture.num_hidden_layer' (did you mean 'num_hidden_layers'?)",
    ),
    (
        "augmentations",
        {"crops": {"pair": "crops"}},
        "unknown key 'augmentations.crops.pair' (did you mean 'pairs'?)",
    ),
    ("mteb.layer_task", [], "unknown key 'mteb.layer_task' (did you mean 'layer_tasks'?)"),
    ("mteb.tables", {"t1": {"models": ["tiny"], "refs": []}}, "unknown key 'mteb.tables.t1.refs'"),
    ("mteb_tasks.STS16.pth", "x", "unknown key 'mteb_tasks.STS16.pth' (did you mean 'path'?)"),
    ("baselines.tfidf", {"min_dff": 2}, "unknown key 'baselines.tfidf.min_dff' (did you mean 'min_df'?)"),
    ("table_s3.dataset", ["bbc"], "unknown key 'table_s3.dataset' (did you mean 'datasets'?)"),
    ("study.train", ["bbc"], "unknown key 'study.train' (did you mean 'train_on'?)"),
    ("study.sweeps", {"poolng": ["cls"]}, "unknown key 'study.sweeps.poolng' (did you mean 'pooling'?)"),
    (
        "study.sweeps",
        {"pooling": {"values": ["cls"], "augmentaions": ["crops"]}},
        "unknown key 'study.sweeps.pooling.augmentaions' (did you mean 'augmentations'?)",
    ),
    (
        "study.from_scratch",
        {"tiny": {"epoch": 3}},
        "unknown key 'study.from_scratch.tiny.epoch' (did you mean 'epochs'?)",
    ),
    (
        "embedding.xyz",
        1,
        "unknown key 'embedding.xyz' (allowed: batch_size, dtype, layers, max_length, pooling)",
    ),
    # wrong types, values out of range, empty lists, unknown names
    ("training.batch_size", 1, "training.batch_size: 1 is less than the minimum of 2"),
    ("training.batch_size", "64", "training.batch_size: '64' is not of type 'integer'"),
    (
        "training.learning_rate",
        -1e-5,
        "training.learning_rate: -1e-05 is less than or equal to the minimum of 0",
    ),
    ("training.epochs", 0, "training.epochs: 0 is less than the minimum of 1"),
    ("training.pooling", "max", "training.pooling: 'max' does not match"),
    ("embedding.pooling", "token", "embedding.pooling: 'token' does not match"),
    ("embedding.dtype", "float8", "embedding.dtype: 'float8' is not one of ['float32', 'float16', None]"),
    ("embedding.layers", [], "embedding.layers: [] should be non-empty"),
    ("embedding.layers", [1, 1], "embedding.layers: [1, 1] has non-unique elements"),
    ("evaluation.knn.k", 0, "evaluation.knn.k: 0 is less than the minimum of 1"),
    ("evaluation.knn.metrics", [], "evaluation.knn.metrics: [] should be non-empty"),
    ("evaluation.knn.metrics", ["manhattan"], "evaluation.knn.metrics[0]: 'manhattan' is not one of"),
    ("evaluation.test_fraction", 0, "evaluation.test_fraction: 0 is less than or equal to the minimum of 0"),
    (
        "evaluation.test_fraction",
        1.5,
        "evaluation.test_fraction: 1.5 is greater than or equal to the maximum of 1",
    ),
    ("evaluation.tsne.learning_rate", "fast", "evaluation.tsne.learning_rate: 'fast' is not valid"),
    ("chunking.sentences", 0, "chunking.sentences: 0 is less than the minimum of 1"),
    ("mteb.layers", [-1], "mteb.layers[0]: -1 is less than the minimum of 0"),
    # seeds numpy and torch both accept: 0 .. 2**32 - 1
    ("training.seed", -1, "training.seed: -1 is less than the minimum of 0 (a random seed: 0 to 4294967295"),
    ("evaluation.seed", 2**32, "evaluation.seed: 4294967296 is greater than the maximum of 4294967295"),
    ("evaluation.tsne.seed", 2**63, "evaluation.tsne.seed: 9223372036854775808 is greater than the maximum"),
    ("models.tiny.seed", -5, "models.tiny.seed: -5 is less than the minimum of 0"),
    ("datasets.bbc.subsample.seed", 2**32, "datasets.bbc.subsample.seed: 4294967296 is greater than"),
    ("study.seeds", [1, -2], "study.seeds[1]: -2 is less than the minimum of 0"),
    ("device", "$(touch x)cpu", "device: '$(touch x)cpu' does not match"),
    ("device", "gpu", "device: 'gpu' does not match"),
    (
        "models.tiny.architecture.num_attention_heads",
        0,
        "num_attention_heads: 0 is less than the minimum of 1",
    ),
    (
        "models.tiny.architecture.hidden_dropout_prob",
        1.0,
        "hidden_dropout_prob: 1.0 is greater than or equal",
    ),
    ("models.tiny.source", "DELETE", "models.tiny: 'source' is a required property"),
    ("study.models", [], "study.models: [] should be non-empty"),
    ("datasets", {}, "datasets: {} should be non-empty"),
    ("datasets", {"bad name": {"source": "x"}}, "datasets: 'bad name' does not match"),
    ("study", "DELETE", "config: 'study' is a required property"),
]


@pytest.mark.parametrize(("path", "value", "message"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_errors_name_the_key(path, value, message):
    with pytest.raises(ConfigError) as info:
        check_schema(changed(path, value), SCHEMA)
    text = str(info.value)
    assert text.startswith("config: ") and message in text and "\n" not in text


def test_rejected_value_message_carries_the_key_description():
    with pytest.raises(ConfigError, match=r"in-batch|other pairs' positives, so at least 2"):
        check_schema(changed("training.batch_size", 1), SCHEMA)


def test_base_config_is_valid():
    check_config(with_defaults(copy.deepcopy(BASE)), PAIR_MAKERS)


def test_every_schema_object_is_closed_or_a_declared_map():
    """No object silently accepts keys: each is closed or types its entries (a map of names)."""
    open_objects = []

    def walk(node, path):
        if isinstance(node, dict):
            if ("properties" in node or node.get("type") == "object") and "additionalProperties" not in node:
                open_objects.append(".".join(map(str, path)))
            for key, child in node.items():
                walk(child, [*path, key])
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, [*path, i])

    walk(SCHEMA, [])
    assert open_objects == []


def test_keys_declared_in_the_schema_are_accepted_without_a_list_in_code():
    """The check reads the schema: a key declared there (as other features add them) is valid."""
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["training"]["properties"]["a_future_option"] = {"type": "integer"}
    check_schema(changed("training.a_future_option", 100), schema)
    with pytest.raises(ConfigError, match="training.a_future_option"):
        check_schema(changed("training.a_future_option", 100), SCHEMA)


# --- the config file itself -------------------------------------------------------------------

CONFIGFILE_CASES = {
    "binary": (bytes(range(128, 256)), "config.yaml: not a text file (byte 0x80 at offset 0 is not UTF-8); "
               "give a YAML config file"),
    "utf-16": ("device: cpu\n".encode("utf-16"), "config.yaml: not a text file (byte 0xff at offset 0"),
    "not yaml": (b"device: cpu\n  datasets: [\n", "config.yaml: not valid YAML (line 2, column 11: mapping "
                 "values are not allowed here); fix that line"),
    "a list": (b"- device\n", "config.yaml: holds list, not a mapping of config keys"),
    "empty": (b"", "config.yaml: holds nothing, not a mapping of config keys"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONFIGFILE_CASES)
def test_config_file_that_is_not_yaml_text_is_one_line(tmp_path, monkeypatch, case):
    from embaug.config_checks import check_configfile

    content, message = CONFIGFILE_CASES[case]
    monkeypatch.chdir(tmp_path)
    Path("config.yaml").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        check_configfile("config.yaml")
    assert str(info.value).startswith(f"config: {message}") and "\n" not in str(info.value)
    check_configfile("absent.yaml")  # left to Snakemake


def test_check_config_names_the_overlay_and_its_line(tmp_path, capsys):
    """Snakemake reads --configfile files before the workflow: `embaug check-config` names the
    file and line that Snakemake's own message leaves out."""
    good, bad = tmp_path / "good.yaml", tmp_path / "overlay.yaml"
    good.write_text("device: cpu\n")
    bad.write_bytes(CONFIGFILE_CASES["not yaml"][0])
    assert main(["check-config", "--configfile", str(good)]) == 0
    assert main(["check-config", "--configfile", str(good), str(bad)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"config: {bad}: not valid YAML (line 2, column 11: mapping values are not allowed "
                          "here); fix that line")  # fmt: skip


def test_workflow_stops_on_a_config_yaml_that_is_not_yaml(tmp_path):
    """`snakemake` without --configfile reads config.yaml itself: a binary one stops the dry run."""
    import subprocess
    import sys

    from test_workflow import REPO_ROOT

    (tmp_path / "config.yaml").write_bytes(CONFIGFILE_CASES["binary"][0])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "earlier.csv").write_text("kept\n")
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--directory",
               str(tmp_path), "--cores", "1", "--dry-run"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and f"config: {CONFIGFILE_CASES['binary'][1]}" in text, text[-2000:]
    assert "Traceback" not in text and "UnicodeDecodeError" not in text
    assert (tmp_path / "results" / "earlier.csv").read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "results"]


# --- settings that contradict each other (parse time) ------------------------------------------

CONFIG_CASES = [
    (
        "models.tiny.architecture.hidden_size",
        33,
        "models.tiny.architecture: hidden_size 33 is not a multiple of num_attention_heads 2",
    ),
    (
        "models.tiny.architecture",
        {"hidden_size": 100},
        "hidden_size 100 is not a multiple of num_attention_heads 12",  # BERT's default heads
    ),
    (
        "embedding.layers",
        [0, 5],
        "embedding.layers: layer 5 is out of range for model 'tiny', which has 3 layers",
    ),
    ("embedding.layers", [-4], "embedding.layers: layer -4 is out of range"),
    (
        "models.tiny",
        {"source": "/no/such/dir"},
        "models.tiny.source: no such folder '/no/such/dir'",
    ),
    (
        "models.tiny",
        {"source": "./my-model"},
        "models.tiny.source: no such folder './my-model' (relative to the working directory ",
    ),
    (
        "augmentations",
        {"dropout": {"pairs": "dropout"}, "crops": {"pairs": "crop"}},
        "augmentations.crops.pairs: unknown pair maker 'crop' (known: crops, document, dropout)",
    ),  # fmt: skip
    (
        "chunking",
        {"min_chars": 300, "max_chars": 250},
        "chunking.min_chars (300) is above chunking.max_chars (250)",
    ),
    ("training.eval_k", 20, "training.eval_k (20) must be below training.eval_docs (11)"),
    # a { or } in a value that becomes a file path would be a Snakemake wildcard
    (
        "cache_dir",
        "data/{cache}",
        "config: cache_dir: 'data/{cache}' contains '{' or '}', which Snakemake reads as a wildcard in a "
        "file path; rename the file or folder (or link it from a path without braces)",
    ),
    (
        "datasets.bbc.source",
        "/data/d{x}/bbc.parquet",
        "datasets.bbc.source: '/data/d{x}/bbc.parquet' contains",
    ),
    ("models.tiny", {"source": "/models/m}"}, "models.tiny.source: '/models/m}' contains '{' or '}'"),
    ("mteb_tasks.STS16.path", "sts{16}.parquet", "mteb_tasks.STS16.path: 'sts{16}.parquet' contains"),
    ("study.table2_model", "other", "study.table2_model names 'other', which is not in study.models (tiny)"),
    (
        "study.seeds",
        [1, 2],
        "study.paired_difference names 'crops', which is not in study.augmentations (dropout, masking)",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_name_the_key(path, value, message):
    config = changed(path, value)
    if path == "training.eval_k":
        config["training"]["eval_docs"] = 11
    if path == "study.seeds":
        config["study"]["augmentations"] = ["dropout", "masking"]
    with pytest.raises(ConfigError) as info:
        check_config(with_defaults(config), PAIR_MAKERS)
    assert str(info.value).startswith("config: ") and message in str(info.value)


def test_architecture_and_tokenizer_corpus_only_for_scratch_models():
    config = changed("models.hub", {"source": "org/model", "architecture": {"hidden_size": 64}})
    with pytest.raises(ConfigError, match=r"models\.hub\.architecture is only read for source: scratch"):
        check_config(with_defaults(config), PAIR_MAKERS)
    config = changed("models.hub", {"source": "org/model", "tokenizer_corpus": ["bbc"]})
    with pytest.raises(ConfigError, match=r"models\.hub\.tokenizer_corpus is only read"):
        check_config(with_defaults(config), PAIR_MAKERS)


def test_existing_local_model_folder_and_hub_ids_pass(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    config = changed("models.local", {"source": str(tmp_path)})
    config["models"]["hub"] = {"source": "sentence-transformers/all-MiniLM-L6-v2"}
    check_config(with_defaults(config), PAIR_MAKERS)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file; give the folder"):
        check_config(
            with_defaults(changed("models.local", {"source": str(tmp_path / "weights.bin")})), PAIR_MAKERS
        )


def test_model_folder_without_config_json_is_refused(tmp_path):
    (tmp_path / "weights").mkdir()
    config = changed("models.local", {"source": str(tmp_path)})
    with pytest.raises(ConfigError) as info:
        check_config(with_defaults(config), PAIR_MAKERS)
    assert str(info.value) == (
        f"config: models.local.source: folder '{tmp_path}' has no config.json, so it holds no saved model; "
        "give the folder a model was saved to (save_pretrained), not a folder above or beside it"
    )


def test_relative_model_path_is_a_missing_folder_not_a_hub_model(tmp_path, monkeypatch):
    """``models/mine`` also reads as a hub id; beside a ``models/`` folder it is a path that is missing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    config = changed("models.local", {"source": "models/mine"})
    with pytest.raises(ConfigError) as info:
        check_config(with_defaults(config), PAIR_MAKERS)
    assert str(info.value) == (
        f"config: models.local.source: no such folder 'models/mine' (relative to the working directory "
        f"{tmp_path})"
    )
    check_config(with_defaults(changed("models.hub", {"source": "org/mine"})), PAIR_MAKERS)  # a hub id


def test_missing_hub_model_with_a_slash_also_says_no_such_folder(tmp_path, monkeypatch):
    from embaug.models import load_encoder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(EmbaugError) as info:
        load_encoder("org/mine", "cpu", "m")
    message = str(info.value)
    assert message.startswith(
        "model 'm': cannot load hub model 'org/mine', and there is no folder 'org/mine' in the working "
        f"directory {tmp_path} either (HF_HUB_OFFLINE is set, and it is not in the local cache)"
    ), message
    assert "hub cache" not in message


@pytest.mark.parametrize(
    ("source", "local"),
    [("microsoft/mpnet-base", False), ("bert-base-uncased", False), ("/abs/dir", True), ("./rel", True),
     ("../rel/dir", True), ("~/models/x", True), ("results/models/run", True)],
)  # fmt: skip
def test_local_paths_are_told_from_hub_ids(source, local):
    assert is_local_path(source) is local


def test_layers_only_negative_indices_wrap():
    assert check_layers([0, 2, -1, -3], 3, "embedding.layers", "m") == [0, 2, 2, 0]
    assert check_layers(None, 3, "embedding.layers", "m") == [0, 1, 2]
    with pytest.raises(
        EmbaugError, match=r"embedding.layers: layer 3 is out of range .* 0 \(embedding layer\) to 2"
    ):
        check_layers([3], 3, "embedding.layers", "m")


def _merged(files: list[Path]) -> dict:
    """Config files merged as snakemake --configfile merges them (later ones key by key)."""

    def update(into: dict, new: dict) -> None:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                update(into[key], value)
            else:
                into[key] = value

    merged: dict = {}
    for path in files:
        update(merged, yaml.safe_load(path.read_text()))
    return merged


OVERLAY_BASES = {"config/demo_pretrain_steps.yaml": "config/demo_pretrain.yaml"}
"""Overlays of another study than config.yaml (each config's header command names its base)."""

SHIPPED = [
    ["config.yaml"],
    ["config/demo.yaml"],
    ["config/shared_minilm.yaml"],
    ["config/shared_minilm.yaml", "config/cpu_short.yaml", "config/shared_minilm_variants.yaml"],
    *[
        [OVERLAY_BASES.get(name, "config.yaml"), name]
        for name in (str(p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / "config").glob("*.yaml")))
    ],
    [".test/config.yaml"],
    *[
        [".test/config.yaml", str(p.relative_to(REPO_ROOT))]
        for p in sorted((REPO_ROOT / ".test").glob("*.yaml"))
    ],
]


@pytest.mark.parametrize("files", SHIPPED, ids=["+".join(f) for f in SHIPPED])
def test_shipped_configs_declare_every_key(files):
    config = with_defaults(_merged([REPO_ROOT / f for f in files]))
    for spec in config["models"].values():  # a model package may not be installed here
        if spec["source"].startswith("package:"):
            spec["source"] = "org/model"
    check_config(config, PAIR_MAKERS)


# --- a dataset's labels against the evaluation (rule check_dataset, kNN and linear stages) ------


def labels_of(counts: dict[str, int]) -> np.ndarray:
    return np.array([label for label, n in counts.items() for _ in range(n)])


DATA_CASES = [
    ({"unlabeled": 50}, {}, "dataset 'd': 0 labelled documents in 0 classes (50 'unlabeled')"),
    ({"a": 50, "unlabeled": 10}, {}, "dataset 'd': 50 labelled documents in 1 class (10 'unlabeled')"),
    (
        {"a": 50, "b": 50},
        {"test_fraction": 0.001},
        "evaluation.test_fraction: 0.001 of the 100 labelled documents",
    ),
    ({"a": 30, "b": 30}, {"test_fraction": 0.1}, "is 6 test documents; an accuracy needs at least 10"),
    (
        {str(i): 4 for i in range(30)},
        {"test_fraction": 0.1},
        "is 12 test documents; an accuracy needs at least 30",
    ),
    (
        {"a": 50, "b": 50},
        {"k": 500},
        "evaluation.knn.k: 500 neighbours need more than 500 reference documents",
    ),
    ({"a": 50, "b": 50}, {"k": 90}, "but dataset 'd' has 90 (its labelled documents outside the test split)"),
]


@pytest.mark.parametrize(("counts", "settings", "message"), DATA_CASES)
def test_dataset_checks_name_the_key(counts, settings, message):
    settings = {"k": 10, "test_fraction": 0.1, "seed": 42, **settings}
    with pytest.raises(EmbaugError) as info:
        check_evaluation_data(labels_of(counts), "d", **settings)
    assert message in str(info.value)


def test_dataset_check_counts():
    counts = check_evaluation_data(labels_of({"a": 60, "b": 40, "unlabeled": 7}), "d", 10, 0.1, 42)
    assert counts == {"documents": 107, "labelled": 100, "classes": 2, "reference": 90, "test": 10}
    assert MIN_TEST_DOCUMENTS == 10


def test_knn_stage_names_k(tmp_path, capsys, corpus):
    raw = tmp_path / "mini.parquet"
    corpus.to_parquet(raw)
    store = tmp_path / "e"
    with EmbeddingWriter(store, [0], len(corpus), 4, "float16", corpus["doc_id"]) as writer:
        writer.write(np.arange(len(corpus)), 0, np.zeros((len(corpus), 4)))
    out = tmp_path / "s.csv"
    assert (
        main(["knn", "--embeddings", str(store), "--corpus", str(raw), "--k", "50", "--test-fraction", "0.25",
              "--out", str(out)]) == 1
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluation.knn.k: 50" in err[0] and "dataset 'mini' has 30" in err[0]
    assert not out.exists()


def _scoring_stage(stage: str, tmp_path: Path, corpus) -> list[str]:
    """``embaug STAGE`` arguments scoring a 40-document corpus with the default 10% test split."""
    raw = tmp_path / "mini.parquet"
    corpus.to_parquet(raw)
    if stage == "tfidf":
        out = ["--out-tfidf", str(tmp_path / "t.csv"), "--out-svd", str(tmp_path / "s.csv")]
        return ["tfidf", "--corpus", str(raw), "--k", "3", *out]
    store = tmp_path / "e"
    with EmbeddingWriter(store, [0], len(corpus), 4, "float16", corpus["doc_id"]) as writer:
        writer.write(np.arange(len(corpus)), 0, np.zeros((len(corpus), 4)))
    return [stage, "--embeddings", str(store), "--corpus", str(raw), "--out", str(tmp_path / "s.csv")]


@pytest.mark.parametrize("stage", ["knn", "linear", "tfidf"])
def test_every_scoring_stage_refuses_a_test_split_too_small(tmp_path, capsys, corpus, stage):
    """Not only fine-tuning (rule check_dataset): base-model and baseline scores too."""
    earlier = tmp_path / "s.csv"
    earlier.write_text("layer,metric,accuracy\n0,euclidean,50.0\n")
    assert main(_scoring_stage(stage, tmp_path, corpus)) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"embaug {stage}: error: evaluation.test_fraction: 0.1 of the 40 labelled documents of dataset "
        "'mini' is 4 test documents; an accuracy needs at least 10 (10, and one per class: 4 classes)"
    ]
    assert earlier.read_text() == "layer,metric,accuracy\n0,euclidean,50.0\n"
    assert not (tmp_path / "t.csv").exists()


def test_check_dataset_stage_writes_counts_or_one_line(tmp_path, capsys, corpus):
    raw = tmp_path / "raw.parquet"
    corpus.to_parquet(raw)
    out = tmp_path / "check.json"
    args = ["check-dataset", "--corpus", str(raw), "--dataset", "syn", "--out", str(out)]
    assert main([*args, "--test-fraction", "0.25"]) == 0
    assert json.loads(out.read_text()) == {
        "classes": 4,
        "documents": 40,
        "labelled": 40,
        "reference": 30,
        "test": 10,
    }
    out.unlink()
    assert main(args) == 1  # 10% of 40 is 4 test documents
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embaug check-dataset: error: evaluation.test_fraction")
    assert not out.exists()


# --- a loaded model against the settings -------------------------------------------------------


def test_model_limit_checks():
    check_vocabulary(100, 100, "m")
    with pytest.raises(
        EmbaugError, match=r"model 'm': its tokenizer has 120 tokens .* 100 rows .* models.m.source"
    ):
        check_vocabulary(120, 100, "m")
    check_max_length(1024, 512, 512, "training.max_length", "m")  # the tokenizer caps it
    with pytest.raises(
        EmbaugError, match="training.max_length: 1024 tokens exceed the 512 position embeddings"
    ):
        check_max_length(1024, 1024, 512, "training.max_length", "m")


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, tiny_model_dir):
    """The tiny model saved with a tokenizer larger than its embedding matrix, and with a
    tokenizer that does not cap inputs at its 128 positions."""
    from transformers import AutoModel, AutoTokenizer

    root = tmp_path_factory.mktemp("broken")
    model, tokenizer = (
        AutoModel.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    small_vocab = root / "small_vocab"
    model.resize_token_embeddings(len(tokenizer) - 10)
    model.save_pretrained(small_vocab)
    tokenizer.save_pretrained(small_vocab)
    uncapped = root / "uncapped"
    AutoModel.from_pretrained(tiny_model_dir).save_pretrained(uncapped)
    tokenizer.model_max_length = 10**30
    tokenizer.save_pretrained(uncapped)
    return small_vocab, uncapped


def _embed(tmp_path, model_dir, corpus, *extra):
    raw = tmp_path / "raw.parquet"
    corpus.head(8).to_parquet(raw)
    args = ["embed", "--model", str(model_dir), "--name", "m", "--corpus", str(raw), "--device", "cpu"]
    return main([*args, *extra, "--out", str(tmp_path / "e")])


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        (
            "small_vocab",
            [],
            "model 'm': its tokenizer has 250 tokens but the model's embedding matrix has 240 rows",
        ),
        (
            "uncapped",
            ["--max-length", "256"],
            "embedding.max_length: 256 tokens exceed the 128 position embeddings",
        ),
        (
            "tiny",
            ["--layers", "0", "5"],
            "embedding.layers: layer 5 is out of range for model 'm', which has 3 layers",
        ),
        ("missing", [], "model 'm': no such folder '"),
        ("no_config", [], "model 'm': folder '"),
    ],
)
def test_embed_stage_model_errors(
    tmp_path, capsys, corpus, tiny_model_dir, broken_models, which, extra, message
):
    model_dir = {"small_vocab": broken_models[0], "uncapped": broken_models[1], "tiny": tiny_model_dir,
                 "missing": tmp_path / "no_such_dir", "no_config": tmp_path}[which]  # fmt: skip
    assert _embed(tmp_path, model_dir, corpus, *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[-1], err
    assert not (tmp_path / "e").exists()


def test_embed_stage_keeps_positive_layers_and_wraps_negative_ones(
    tmp_path, corpus, tiny_model_dir, broken_models
):
    assert _embed(tmp_path, tiny_model_dir, corpus, "--layers", "0", "-1") == 0
    assert EmbeddingStore(tmp_path / "e").layers == [0, 2]
    assert _embed(tmp_path, broken_models[1], corpus, "--max-length", "128") == 0  # within positions


# --- the workflow: parse-time errors stop a dry run; data checks run before fine-tuning --------


def _workflow():
    from test_workflow import output, snakemake

    return snakemake, output


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "training.learnig_rate",
            1e-3,
            "config: unknown key 'training.learnig_rate' (did you mean 'learning_rate'?)",
        ),
        ("embedding.layers", [0, 5], "config: embedding.layers: layer 5 is out of range for model 'tiny'"),
        ("cache_dir", "data/{x}", "config: cache_dir: 'data/{x}' contains '{' or '}', which Snakemake reads"),
        (
            "study.sweeps",
            {"seed": [1, 2**32]},
            "config: study.sweeps.seed: 4294967296 is not a valid seed (4294967296 is greater than",
        ),
    ],
)
def test_dry_run_fails_before_any_job(tmp_path, path, value, message):
    snakemake, output = _workflow()
    result = snakemake(tmp_path, changed(path, value), "--dry-run")
    text = output(result)
    assert result.returncode != 0 and message in text, text[-2000:]
    assert "Job stats" not in text and not (tmp_path / "results" / "test").exists()


def one_class_study(tmp_path, corpus) -> dict:
    source = tmp_path / "one.parquet"
    corpus.assign(label="sport").to_parquet(source)
    config = copy.deepcopy(BASE)
    config["datasets"] = {"bbc": {"source": str(source), "id": "doc_id"}}
    return config


def test_fine_tuning_waits_for_the_dataset_check(tmp_path, corpus):
    snakemake, output = _workflow()
    plan = output(
        snakemake(tmp_path, one_class_study(tmp_path, corpus), "results/test/models/tiny__bbc__crops", "-n")
    )
    finetune = plan[plan.index("rule finetune:") :].split("\n\n")[0]
    assert "data/test/checks/bbc.json" in finetune, finetune
    assert "rule check_dataset:" in plan


@pytest.mark.slow
def test_one_class_dataset_fails_its_check(tmp_path, corpus):
    snakemake, _ = _workflow()
    result = snakemake(tmp_path, one_class_study(tmp_path, corpus), "data/test/checks/bbc.json")
    assert result.returncode != 0
    log = (tmp_path / "logs" / "test" / "check_dataset" / "bbc.log").read_text()
    assert "dataset 'bbc': 40 labelled documents in 1 class" in log and "datasets.bbc.label" in log
    assert not (tmp_path / "data" / "test" / "checks" / "bbc.json").exists()
