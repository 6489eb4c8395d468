"""Evaluating benchmark releases: a panel of answerers with known skill and models, graded by
the task's grader, and measures of how well a release discriminates between them."""

from coimprove.evals.discrimination import (
    Estimate,
    ReleaseDiscrimination,
    measure,
    pooled,
)
from coimprove.evals.grading import Grader, SandboxGrader
from coimprove.evals.panel import (
    Answerer,
    FailsSubtask,
    FirstOption,
    MajorityLabel,
    ModelAnswerer,
    Oracle,
    Panel,
    PanelScores,
    RandomGuess,
    Skilled,
    default_panel,
)
from coimprove.evals.release import EvalError, EvalTask, PanelItem, Release, load_release, load_task

__all__ = [
    "Answerer",
    "Estimate",
    "EvalError",
    "EvalTask",
    "FailsSubtask",
    "FirstOption",
    "Grader",
    "MajorityLabel",
    "ModelAnswerer",
    "Oracle",
    "Panel",
    "PanelItem",
    "PanelScores",
    "RandomGuess",
    "Release",
    "ReleaseDiscrimination",
    "SandboxGrader",
    "Skilled",
    "default_panel",
    "load_release",
    "load_task",
    "measure",
    "pooled",
]
