"""The study plan: from a validated config, every run, its settings and inputs, and the targets of
each table and figure, as plain data; unit-tested without Snakemake, mapped to rules by
``workflow/rules/*.smk``. Entry point: :class:`~embaug.plan.study_plan.StudyPlan`."""

from .runs import OVERRIDE_SEGMENTS, RunPlan, Sweep, plan_runs, run_id, scratch_runs
from .study import Study, study_name
from .study_plan import StudyPlan

__all__ = [
    "OVERRIDE_SEGMENTS",
    "RunPlan",
    "Study",
    "StudyPlan",
    "Sweep",
    "plan_runs",
    "run_id",
    "scratch_runs",
    "study_name",
]
