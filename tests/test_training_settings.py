"""A fine-tuning setting is declared twice only: in the config schema's `training` section and as a
field of TrainSettings. The workflow forwards every `training` key to `embaug finetune --settings`
and the stage builds TrainSettings from that JSON, so no mapping lists the settings."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO_ROOT, output, snakemake, test_config

from embaug.train import TrainSettings

RUN = "tiny__bbc__crops"
NEW_SETTING = {"type": "integer", "minimum": 0, "default": 3, "description": "a setting added by this test"}


def with_new_training_setting(folder: Path) -> Path:
    """A copy of the workflow whose schema declares `training.label_smoothing` (its Snakefile)."""
    shutil.copy(REPO_ROOT / "Snakefile", folder / "Snakefile")
    for part in ("workflow", "envs"):
        shutil.copytree(REPO_ROOT / part, folder / part)
    schema_file = folder / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text())
    schema["properties"]["training"]["properties"]["label_smoothing"] = NEW_SETTING
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
    return folder / "Snakefile"


def finetune_settings(workdir: Path, config: dict, snakefile: Path) -> dict:
    """The `--settings` JSON of RUN's `embaug finetune` in a dry run."""
    target = f"results/test/models/{RUN}"
    result = snakemake(workdir, config, target, "--dry-run", "--printshellcmds", snakefile=snakefile)
    assert result.returncode == 0, output(result)[-4000:]
    (line,) = re.findall(rf"embaug finetune .*--run {RUN} .*", output(result))
    return json.loads(re.search(r"--settings '([^']*)'", line).group(1))


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[Path, Path]:
    """(the copy's Snakefile, a working directory)."""
    copy = tmp_path_factory.mktemp("extended_workflow")
    return with_new_training_setting(copy), tmp_path_factory.mktemp("extended_run")


def test_a_setting_in_the_schema_and_train_settings_reaches_the_run(extended):
    snakefile, workdir = extended
    settings = finetune_settings(workdir, test_config(), snakefile)
    assert settings["label_smoothing"] == NEW_SETTING["default"]  # forwarded with no further edit
    with pytest.raises(TypeError, match="label_smoothing"):
        TrainSettings(**settings)  # the second place a setting is declared: the class
    extended_settings = dataclasses.make_dataclass(
        "ExtendedSettings", [("label_smoothing", int, 0)], bases=(TrainSettings,)
    )
    assert extended_settings(**settings).label_smoothing == 3

    config = test_config()
    config["training"]["label_smoothing"] = 5  # the config sets it like any training setting
    assert extended_settings(**finetune_settings(workdir, config, snakefile)).label_smoothing == 5


def test_every_training_setting_of_the_schema_is_a_train_settings_field(extended):
    snakefile, workdir = extended
    settings = finetune_settings(workdir, test_config(), snakefile)
    del settings["label_smoothing"]
    schema = yaml.safe_load((REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    declared = {
        key
        for key, spec in schema["properties"]["training"]["properties"].items()
        if spec.get("default") is not None
    }
    assert declared - {"checkpoint_every"} <= set(settings)  # checkpoint_every: --checkpoint-every
    trained = TrainSettings(**settings)
    assert {key: getattr(trained, key) for key in settings} == settings
