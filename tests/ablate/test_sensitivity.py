"""Issue 29: d′ where real proposals include flaws.

The synthetic graph proposes 60% sound, 25% flawed and 15% dead-end work; a reviewer who
catches 37% of flaws and raises false alarms on 10% of sound proposals, with canaries at 30%,
has sensitivity z(0.37) − z(0.10) ≈ 0.95. Counting every stop of a non-canary proposal as a
false alarm gives about half that; the sound-only d′ must recover it, and the other one must
be labelled a lower bound wherever it is shown. (The same scenario at the issue's 5,848 gates,
planted straight into a ledger, is `tests/unit/test_metrics.py`'s fast check.)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from statistics import NormalDist

import pytest

from coimprove.ablate.executors import InlineExecutor
from coimprove.ablate.sweep import SweepOutcome, run_sweep
from coimprove.ablate.validate import (
    DEFAULT_PANELS,
    VALIDATION_PANELS,
    check_results,
    validation_spec,
)

pytestmark = pytest.mark.slow  # a seeded sweep of about 3,000 gates: tens of seconds

z = NormalDist().inv_cdf
MIDDLING = VALIDATION_PANELS["middling"]
SENSITIVITY = z(0.37) - z(0.10)  # 0.949


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> SweepOutcome:
    """About 3,000 gates in two seeded cells (a fixed-size sweep: same ledgers every time)."""
    out = tmp_path_factory.mktemp("sensitivity")
    outcome = run_sweep(
        validation_spec(MIDDLING, runs=200, seeds=[0, 1]),
        out,
        executor=InlineExecutor(),
        progress=False,
    )
    assert outcome.ok and outcome.report is not None
    return outcome


def test_the_panel_is_the_issues_scenario() -> None:
    p = MIDDLING.profile
    assert MIDDLING.canary_rate == 0.30
    assert (p.catch_rate, p.skim_catch_rate, p.false_alarm_rate) == (0.37, 0.37, 0.10)
    assert p.approval_bias == 0.0
    assert "middling" in DEFAULT_PANELS  # `coimprove ablate --validate` runs it
    spec = validation_spec(MIDDLING, runs=1, seeds=[0])
    assert spec.synthetic.truth == {"sound": 0.6, "flawed": 0.25, "dead_end": 0.15}


def test_sound_only_d_prime_recovers_the_configured_sensitivity(swept: SweepOutcome) -> None:
    assert swept.report is not None
    m = swept.report.overall
    assert m.gates >= 2_500
    sound = m.d_prime_sound
    assert sound.value is not None and sound.lo is not None and sound.hi is not None
    assert abs(sound.value - SENSITIVITY) <= 0.15
    assert sound.lo < SENSITIVITY < sound.hi
    assert m.sound_false_alarm_rate.value == pytest.approx(0.10, abs=0.025)
    # counting caught real flaws as false alarms drags the other d′ to about half
    lower = m.d_prime_lower_bound
    assert lower.value is not None and lower.hi is not None
    assert lower.hi < SENSITIVITY - 0.15
    assert m.false_alarm_rate.value is not None and m.false_alarm_rate.value > 0.17


def test_every_d_prime_says_which_one_it_is(swept: SweepOutcome) -> None:
    out = swept.out
    md = (out / "report.md").read_text()
    assert "d′ sound-only" in md and "d′ lower bound" in md
    assert "| d′ |" not in md  # no unnamed d′ column left
    assert "a lower bound of sensitivity when real flaws are present" in md
    report = json.loads((out / "report.json").read_text())
    overall = report["overall"]
    assert {"d_prime_sound", "d_prime_lower_bound", "sound_false_alarm_rate"} <= set(overall)
    assert "d_prime" not in overall
    row = next(csv.DictReader((out / "cells.csv").open()))
    assert "d_prime_sound" in row and "d_prime_lower_bound" in row and "d_prime" not in row
    # the ledger report of a cell names them the same way
    cell = json.loads(next(Path(out).glob("cells/*/result.json")).read_text())
    canary = cell["measures"]["report"]["canary"]
    assert canary["d_prime_sound"]["value"] > canary["d_prime_lower_bound"]["value"]


def test_validity_checks_pass_here_and_fail_for_another_configuration(
    swept: SweepOutcome,
) -> None:
    _, checks = check_results(MIDDLING.profile, swept.results)
    by_name = {c.measure: c for c in checks}
    assert by_name["d_prime_sound"].expected == pytest.approx(SENSITIVITY, abs=1e-4)
    # ±0.15, widened to three standard errors at this size (about 0.2 for 2,000 trials)
    assert 0.15 <= by_name["d_prime_sound"].tolerance <= 0.25
    for check in checks:
        assert check.ok, check
    for change in ({"false_alarm_rate": 0.16}, {"catch_rate": 0.5, "skim_catch_rate": 0.5}):
        other = MIDDLING.profile.model_copy(update=change)
        _, wrong = check_results(other, swept.results)
        assert not {c.measure: c for c in wrong}["d_prime_sound"].ok, change
