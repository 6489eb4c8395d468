"""Measurement validity: 10,000 gates answered by a reviewer with known parameters, measured
from the ledgers, recover those parameters (rubber-stamp and catch rate ±2 pp, d′ ±0.15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coimprove.ablate.cells import CellResult
from coimprove.ablate.validate import (
    VALIDATION_PROFILES,
    ValidityReport,
    check_results,
    expected_measures,
    validate,
)
from coimprove.reviewers.profiles import load_profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def validity(tmp_path_factory: pytest.TempPathFactory) -> ValidityReport:
    out = tmp_path_factory.mktemp("validity")
    return validate(gates=10_000, profiles=["steady"], out=out, workers=2)


def _results(report: ValidityReport) -> list[CellResult]:
    files = sorted(Path(report.out).glob("steady/cells/*/result.json"))
    return [CellResult.model_validate_json(f.read_text()) for f in files]


def test_the_report_recovers_the_configured_parameters(validity: ValidityReport) -> None:
    assert validity.gates >= 10_000
    checks = {c.measure: c for c in validity.checks}
    assert set(checks) == {
        "rubber_stamp_rate",
        "canary_catch_rate",
        "false_alarm_rate",
        "sound_false_alarm_rate",
        "d_prime_sound",
        "d_prime_lower_bound",
        "dead_end_detection",
    }
    # ±2 pp, or 3 standard errors where that is wider (rubber-stamp: ~4,700 approvals, 2.1 pp)
    assert 0.02 <= checks["rubber_stamp_rate"].tolerance <= 0.022
    assert 0.02 <= checks["canary_catch_rate"].tolerance <= 0.022
    assert checks["d_prime_sound"].tolerance == 0.15
    assert checks["d_prime_lower_bound"].tolerance == 0.15
    assert checks["canary_catch_rate"].n > 4_000  # enough canaries for ±2 pp to mean something
    for check in validity.checks:
        assert check.ok, check
    assert validity.ok
    assert (Path(validity.out) / "validity.json").is_file()


def test_the_check_fails_when_the_configuration_differs(validity: ValidityReport) -> None:
    """The same ledgers checked against slightly different parameters must fail."""
    results = _results(validity)
    steady = VALIDATION_PROFILES["steady"]
    _, honest = check_results(steady, results)
    assert all(c.ok for c in honest)
    for change in ({"catch_rate": 0.90}, {"skim_rate": 0.25}, {"false_alarm_rate": 0.16}):
        other = steady.model_copy(update=change)
        _, checks = check_results(other, results)
        assert not all(c.ok for c in checks), change


def test_expected_measures_follow_the_formulas() -> None:
    p = VALIDATION_PROFILES["steady"]
    e = expected_measures(p, canary=100, bad=0, sound=100)
    keep = 1 - p.approval_bias
    catch = (p.skim_rate * p.skim_catch_rate + (1 - p.skim_rate) * p.catch_rate) * keep
    assert e["canary_catch_rate"] == pytest.approx(catch)
    assert e["false_alarm_rate"] == pytest.approx(p.false_alarm_rate * keep)
    # with no bad proposals at all, every approval is a skim with probability skim_rate
    only_sound = expected_measures(p, canary=0, bad=0, sound=100)
    assert only_sound["rubber_stamp_rate"] == pytest.approx(p.skim_rate)


def test_profiles_that_tire_or_edit_cannot_be_validated() -> None:
    with pytest.raises(ValueError, match="fatigue"):
        expected_measures(load_profile("fatigued"), canary=1, bad=1, sound=1)
    with pytest.raises(ValueError, match="edits or escalates"):
        expected_measures(
            VALIDATION_PROFILES["steady"].model_copy(update={"edit_rate": 0.1}),
            canary=1,
            bad=1,
            sound=1,
        )
