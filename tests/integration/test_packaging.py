"""Built-in policies, reviewer profiles, graphs and sandboxes ship inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_carries_the_built_in_data(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("coimprove-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "coimprove/_builtin/policies/default.yaml",
        "coimprove/_builtin/policies/strict.yaml",
        "coimprove/_builtin/policies/canary.yaml",
        "coimprove/_builtin/policies/reviewers/careful.yaml",
        "coimprove/_builtin/sandboxes/python/Dockerfile",
        "coimprove/_builtin/sandboxes/python/sandbox.yaml",
        "coimprove/_builtin/graphs/README.md",
        "coimprove/_builtin/graphs/research_cycle.py",
        "coimprove/_builtin/graphs/assets/research_cycle/train.py",
        "coimprove/_builtin/graphs/assets/research_cycle/data.py",
        "coimprove/_builtin/graphs/assets/research_cycle/method.md",
        "coimprove/_builtin/graphs/benchmark_cocreation.py",
        "coimprove/_builtin/graphs/behavior_diff.py",
        "coimprove/_builtin/graphs/data/behavior_prompts.yaml",
        "coimprove/_builtin/graphs/data/stable_reflectivity/task.yaml",
        "coimprove/_builtin/graphs/data/stable_reflectivity/grader.py",
        "coimprove/_builtin/policies/benchmark_pilot.yaml",
        "coimprove/cli.py",
    ):
        assert required in names, required
