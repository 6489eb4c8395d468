"""The 2×2 transfer experiment (examples/transfer_experiment.py) at a small size: every cell
runs, both directions are measured with intervals, plots are written, and a learning reviewer's
trend goes the way its profile is configured — up with feedback, not without."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transfer_experiment.py"

FAST_LEARNER = """
name: fast-learner
pickup: 30
review_time: 60
skim_rate: 0.0
catch_rate: 0.1
false_alarm_rate: 0.0
changes_share: 0.8
learning: {catch_gain: 0.12, max_catch_rate: 0.95}
"""


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transfer_experiment", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    ex = _example()
    out = tmp_path_factory.mktemp("transfer")
    profile = out / "fast_learner.yaml"
    profile.write_text(FAST_LEARNER)
    settings = ex.Settings(runs=24, buckets=3, profile=str(profile))
    return ex.experiment(settings, 2, out), out


def test_every_cell_runs_and_is_measured_with_intervals(
    outcome: tuple[dict[str, object], Path],
) -> None:
    doc, out = outcome
    cells = doc["cells"]
    assert isinstance(cells, dict)
    assert set(cells) == {
        "memory off, feedback off",
        "memory off, feedback on",
        "memory on, feedback off",
        "memory on, feedback on",
    }
    for measures in cells.values():
        rate = measures["agent first-pass approval"]
        assert rate["n"] == 2 and rate["low"] <= rate["mean"] <= rate["high"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["effects"]["feedback"]["reviewer lessons"]["n"] == 4  # 2 pairs × 2 replicates


def test_each_factor_switches_what_it_should(outcome: tuple[dict[str, object], Path]) -> None:
    cells = outcome[0]["cells"]
    assert isinstance(cells, dict)
    for name, m in cells.items():
        lessons, notes = m["reviewer lessons"]["mean"], m["agent notes per attempt"]["mean"]
        assert (lessons > 0) == ("feedback on" in name), name
        assert (notes > 0) == ("memory on" in name), name


def test_a_learning_reviewer_improves_with_feedback_only(
    outcome: tuple[dict[str, object], Path],
) -> None:
    doc = outcome[0]
    raw = doc["raw"]
    assert isinstance(raw, dict)
    for name, reps in raw.items():
        hits = [0, 0, 0]
        trials = [0, 0, 0]
        for rep in reps:
            for i, (h, n) in enumerate(rep["trends"]["catch rate by gate index"]):
                hits[i] += h
                trials[i] += n
        first, last = hits[0] / trials[0], hits[-1] / trials[-1]
        if "feedback on" in name:
            assert last > first + 0.15, (name, hits, trials)
            slope = doc["cells"][name]["reviewer catch per lesson"]["mean"]  # type: ignore[index]
            assert slope > 0
        else:
            assert last < first + 0.15, (name, hits, trials)


def test_memory_helps_the_simulated_agent(outcome: tuple[dict[str, object], Path]) -> None:
    effects = outcome[0]["effects"]
    assert isinstance(effects, dict)
    assert effects["memory"]["agent first-pass sound"]["mean"] > 0.05


def test_a_png_per_trend(outcome: tuple[dict[str, object], Path]) -> None:
    doc = outcome[0]
    plots = [Path(p) for p in doc["plots"]]  # type: ignore[attr-defined]
    assert len(plots) == 5
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
