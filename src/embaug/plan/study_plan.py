"""The whole plan of a study, as the workflow reads it: the core (:class:`~.study.Study`), its MTEB
part, its tables and figures, each training run's settings and the default targets."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from .figures import FigurePlan
from .mteb import MtebPlan
from .study import Study
from .tables import TablePlan

NOT_TRAINING_SETTINGS = {"checkpoint_every"}
"""`training:` settings that say how a run is carried out, not what it trains."""


class StudyPlan(Study):
    """A :class:`~.study.Study` with its MTEB jobs (``mteb``), tables and figures."""

    def __init__(self, config: dict[str, Any], schema: dict[str, Any], name: str) -> None:
        super().__init__(config, schema, name)
        self.mteb = MtebPlan(self)
        self.tables = TablePlan(self)
        self.figures = FigurePlan(self, self.tables, self.mteb)

    def train_settings(self, run: str) -> str:
        """A run's training parameters (JSON): training defaults, its dataset's, its augmentation,
        its overrides and own settings, the device and precision."""
        spec, config = self.runs[run], self.config
        training = {k: v for k, v in config["training"].items() if k not in NOT_TRAINING_SETTINGS}
        settings = {
            **training,
            **config["datasets"][self.settings_dataset(run)].get("training", {}),
            **config["augmentations"][spec["augmentation"]],
        }
        settings.update({k: v for k, v in spec["overrides"].items() if k != "sentences"})
        settings.update(
            augmentation=spec["augmentation"], device=config["device"], precision=config["precision"]
        )
        settings.update(spec.get("settings", {}))
        settings.update(self.mteb.training_settings(run))
        # An unset option (null) is left to TrainSettings' default, so adding a new option to the
        # schema never changes existing runs' params (which would re-train them).
        return json.dumps({k: v for k, v in settings.items() if v is not None}, sort_keys=True)

    # --- targets ------------------------------------------------------------------------------

    @cached_property
    def targets(self) -> list[str]:
        """Everything `snakemake` builds by default: tables, scores, maps and figures."""
        config = self.config
        targets = self.tables.targets()
        families = ["knn"] + (["linear"] if config["evaluation"]["linear"]["enabled"] else [])
        targets += [
            self.scores(family, model, dataset)
            for family in families
            for model, dataset in self.evaluations()
            if self.is_reported(model)
        ]
        targets += self.figures.targets()
        targets += self.mteb.targets()
        return targets
