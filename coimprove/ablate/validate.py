"""Measurement validity: do the measures recover what scripted reviewers were set up to do?

Scripted reviewers with known, stationary parameters (no fatigue, edits or escalations) answer
about 10,000 gates of the synthetic graph (60% sound, 25% flawed, 15% dead-end proposals) under
a policy that plants canaries. The measures are then read from the ledgers exactly as for any
sweep and compared with what the parameters imply. Each panel (`ValidationPanel`) is a profile
and its canary rate; ``middling`` is a reviewer who catches 37% of flaws and raises false alarms
on 10% of sound proposals with canaries at 30%, where the canary-vs-everything d′ (0.5) is half
the sensitivity (0.95) because the reviewer's catches of real flaws count as false alarms.

With skim rate *s*, catch rates *c* (reviewing) and *c₀* (skimming), false-alarm rate *f* and
approval bias *b*, a decision on a bad proposal (a canary, flawed or a dead end) stops it with
``P_bad = (s·c₀ + (1−s)·c)(1−b)`` and one on a sound proposal with ``P_sound = f(1−b)``. A skim
is always below the minimum review time and never opens the detail, a review never is, so a
rubber stamp is exactly an approving skim. Given how many decisions fell on each kind of
proposal (the design, read from the ledger's hidden labels), the configuration implies:

* canary catch rate = ``P_bad``;
* sound false-alarm rate (proposals labelled sound) = ``P_sound``;
* false-alarm rate over every non-canary gate (organically bad ones included) =
  ``(n_sound·P_sound + n_bad·P_bad) / (n_sound + n_bad)``;
* rubber-stamp rate = E[approving skims] / E[approvals], with per-gate
  ``P(approve ∧ skim) = s(1 − c₀(1−b))`` (bad) or ``s(1 − f(1−b))`` (sound);
* sound-only d′ = z(P_bad) − z(P_sound), the configured sensitivity; the lower-bound d′ =
  z(P_bad) − z(false alarm over every non-canary gate); dead-end detection = ``P_bad``.

Checks: rubber-stamp and catch rate within ±2 percentage points and both d′ within ±0.15 (the
acceptance bounds; widened to three standard errors for a panel with too few trials for them
to mean anything), the false-alarm rates and dead-end detection within four standard errors.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from coimprove.ablate.cells import CellResult
from coimprove.ablate.executors import Executor
from coimprove.ablate.report import write_atomic
from coimprove.ablate.spec import SweepSpec
from coimprove.ablate.summary import summarize
from coimprove.ablate.sweep import run_sweep
from coimprove.reviewers.profiles import ReviewerProfile

__all__ = [
    "DEFAULT_PANELS",
    "VALIDATION_PANELS",
    "VALIDATION_PROFILES",
    "Check",
    "ValidationPanel",
    "ValidityReport",
    "check_results",
    "expected_measures",
    "validate",
    "validation_spec",
]

_Z = NormalDist()


class ValidationPanel(BaseModel):
    """A stationary reviewer profile and the canary rate of the policy it is validated under."""

    model_config = ConfigDict(frozen=True)

    profile: ReviewerProfile
    canary_rate: float = Field(gt=0, lt=1)


def _panel(canary_rate: float, **profile: Any) -> ValidationPanel:
    return ValidationPanel(profile=ReviewerProfile.model_validate(profile), canary_rate=canary_rate)


VALIDATION_PANELS: dict[str, ValidationPanel] = {
    "steady": _panel(
        0.95,
        name="steady",
        description="Mostly reads; catches most flaws; stationary (validation).",
        pickup={"dist": "exponential", "mean_s": 60, "max_s": 600},
        skim_rate=0.2,
        skim_time={"dist": "lognormal", "median_s": 4, "sigma": 0.5},
        review_time={"dist": "lognormal", "median_s": 90, "sigma": 0.5},
        p_open_detail=0.8,
        catch_rate=0.95,
        skim_catch_rate=0.2,
        false_alarm_rate=0.08,
        changes_share=0.6,
        approval_bias=0.05,
    ),
    "sloppy": _panel(
        0.95,
        name="sloppy",
        description="Skims most gates; misses most flaws; stationary (validation).",
        pickup={"dist": "exponential", "mean_s": 30, "max_s": 300},
        skim_rate=0.65,
        skim_time={"dist": "lognormal", "median_s": 3, "sigma": 0.5},
        review_time={"dist": "lognormal", "median_s": 45, "sigma": 0.5},
        p_open_detail=0.5,
        catch_rate=0.7,
        skim_catch_rate=0.05,
        false_alarm_rate=0.03,
        changes_share=0.5,
        approval_bias=0.2,
    ),
    "middling": _panel(
        0.30,
        name="middling",
        description="Catches 37% of flaws, false alarms on 10% of sound proposals, canaries "
        "at 30%: sensitivity z(0.37) − z(0.10) ≈ 0.95 (validation).",
        pickup={"dist": "exponential", "mean_s": 45, "max_s": 450},
        skim_rate=0.3,
        skim_time={"dist": "lognormal", "median_s": 3, "sigma": 0.5},
        review_time={"dist": "lognormal", "median_s": 60, "sigma": 0.5},
        p_open_detail=0.7,
        catch_rate=0.37,
        skim_catch_rate=0.37,
        false_alarm_rate=0.10,
        changes_share=0.6,
        approval_bias=0.0,
    ),
}
"""Built-in validation panels (``--profile`` picks among them; default `DEFAULT_PANELS`)."""

VALIDATION_PROFILES: dict[str, ReviewerProfile] = {
    name: panel.profile for name, panel in VALIDATION_PANELS.items()
}
"""The panels' profiles by name."""

DEFAULT_PANELS: tuple[str, ...] = ("steady", "middling")
"""What `validate` runs without ``profiles``: a careful reviewer, and one whose catches of real
flaws would drag a canary-vs-everything d′ to half its sensitivity."""

_STEPS = 5
_TRUTH = {"sound": 0.6, "flawed": 0.25, "dead_end": 0.15}
_FIX_RATE = 0.6
#: Bounds in absolute units (the acceptance criteria); the rest are four standard errors.
_FIXED_TOLERANCE = {
    "rubber_stamp_rate": 0.02,
    "canary_catch_rate": 0.02,
    "d_prime_sound": 0.15,
    "d_prime_lower_bound": 0.15,
}


class Check(BaseModel):
    """One configured-vs-measured comparison."""

    model_config = ConfigDict(frozen=True)

    profile: str
    measure: str
    expected: float
    measured: float | None
    tolerance: float
    n: int
    ok: bool


class ValidityReport(BaseModel):
    """The outcome of `validate`."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    gates: int
    checks: list[Check]
    out: str
    wall_s: float


def _z(p: float) -> float:
    return _Z.inv_cdf(min(max(p, 1e-9), 1 - 1e-9))


def expected_measures(
    profile: ReviewerProfile, *, canary: int, bad: int, sound: int
) -> dict[str, float]:
    """What `profile` implies for decisions on `canary` canaries, `bad` other flawed or dead-end
    proposals and `sound` sound ones (see the module docstring)."""
    if any(profile.fatigue.model_dump().values()):
        raise ValueError(f"profile {profile.name!r} has fatigue; validation needs a stationary one")
    if profile.edit_rate or profile.escalate_rate:
        raise ValueError(f"profile {profile.name!r} edits or escalates; validation cannot use it")
    s, keep = profile.skim_rate, 1.0 - profile.approval_bias
    p_bad = (s * profile.skim_catch_rate + (1 - s) * profile.catch_rate) * keep
    p_sound = profile.false_alarm_rate * keep
    n_bad = canary + bad
    stamp = n_bad * s * (1 - profile.skim_catch_rate * keep) + sound * s * (1 - p_sound)
    approve = n_bad * (1 - p_bad) + sound * (1 - p_sound)
    noise = sound + bad
    fa = (sound * p_sound + bad * p_bad) / noise if noise else 0.0
    return {
        "rubber_stamp_rate": stamp / approve if approve else 0.0,
        "canary_catch_rate": p_bad,
        "sound_false_alarm_rate": p_sound,
        "false_alarm_rate": fa,
        "d_prime_sound": _z(p_bad) - _z(p_sound),
        "d_prime_lower_bound": _z(p_bad) - _z(fa),
        "dead_end_detection": p_bad,
    }


def _gates_per_run(panel: ValidationPanel) -> float:
    """A rough expected number of gates per run, to size the sweep (checked afterwards)."""
    profile = panel.profile
    keep = 1.0 - profile.approval_bias
    s = profile.skim_rate
    p_bad = (s * profile.skim_catch_rate + (1 - s) * profile.catch_rate) * keep
    bad = _TRUTH["flawed"] + _TRUTH["dead_end"]
    p_neg = bad * p_bad + (1 - bad) * profile.false_alarm_rate * keep
    p_back = min(p_neg * profile.changes_share, 0.9)
    return _STEPS * (1 + panel.canary_rate) / (1 - p_back)


def validation_spec(panel: ValidationPanel, runs: int, seeds: list[int]) -> SweepSpec:
    """The synthetic sweep that validates `panel`: `runs` runs of five proposals per seed."""
    profile = panel.profile
    return SweepSpec.model_validate(
        {
            "name": f"validity-{profile.name}",
            "description": f"Measurement validity with the stationary profile {profile.name!r}.",
            "graph": "synthetic",
            "synthetic": {"truth": _TRUTH, "fix_rate": _FIX_RATE},
            "models": ["fake"],
            "policies": [
                {"ref": "default", "label": "canaries", "set": {"canary_rate": panel.canary_rate}}
            ],
            "reviewers": [
                {
                    "name": profile.name,
                    "profile": f"validation:{profile.name}",
                    "profile_doc": profile.model_dump(),
                }
            ],
            "seeds": seeds,
            "runs_per_cell": runs,
            "gates_per_run": _STEPS,
            "arrival_s": 1800,
        }
    )


def _rate_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n) if n else 0.0


def _d_prime_se(hit: float, n_signal: int, false_alarm: float, n_noise: int) -> float:
    """The delta-method standard error of d′ at the expected rates (`d_prime_interval`)."""
    if not (n_signal and n_noise):
        return 0.0

    def part(p: float, n: int) -> float:
        p = min(max(p, 1e-9), 1 - 1e-9)
        return p * (1 - p) / (n * _Z.pdf(_Z.inv_cdf(p)) ** 2)

    return math.sqrt(part(hit, n_signal) + part(false_alarm, n_noise))


def check_results(
    profile: ReviewerProfile, results: Sequence[CellResult]
) -> tuple[int, list[Check]]:
    """Compare what `results` measured with what `profile` implies; returns (gates, checks)."""
    measures = summarize(profile.name, results)
    canary = measures.canary_catch_rate.n
    noise = measures.false_alarm_rate.n
    sound = measures.sound_false_alarm_rate.n
    bad = sum(r.measures.truth.bad_decisions for r in results if r.measures is not None)
    expected = expected_measures(profile, canary=canary, bad=bad, sound=sound)
    measured: dict[str, Any] = {
        "rubber_stamp_rate": measures.rubber_stamp_rate,
        "canary_catch_rate": measures.canary_catch_rate,
        "sound_false_alarm_rate": measures.sound_false_alarm_rate,
        "false_alarm_rate": measures.false_alarm_rate,
        "d_prime_sound": measures.d_prime_sound,
        "d_prime_lower_bound": measures.d_prime_lower_bound,
        "dead_end_detection": measures.dead_end_detection,
    }
    hit = expected["canary_catch_rate"]
    se = {
        "d_prime_sound": _d_prime_se(hit, canary, expected["sound_false_alarm_rate"], sound),
        "d_prime_lower_bound": _d_prime_se(hit, canary, expected["false_alarm_rate"], noise),
    }
    checks = []
    for name, est in measured.items():
        value = est.value
        n = est.n if name not in se else (canary + (sound if name == "d_prime_sound" else noise))
        error = se[name] if name in se else _rate_se(expected[name], est.n)
        # the acceptance bound (unless too few trials for it to mean anything), else 4 SE
        fixed = _FIXED_TOLERANCE.get(name)
        tol = 4 * error if fixed is None else max(fixed, 3 * error)
        ok = value is not None and abs(value - expected[name]) <= tol
        checks.append(
            Check(
                profile=profile.name,
                measure=name,
                expected=round(expected[name], 4),
                measured=None if value is None else round(value, 4),
                tolerance=round(tol, 4),
                n=n,
                ok=ok,
            )
        )
    return measures.gates, checks


def validate(
    *,
    gates: int = 10_000,
    profiles: list[str] | None = None,
    out: str | Path | None = None,
    executor: Executor | None = None,
    workers: int = 2,
    cells: int = 4,
    progress: bool = False,
    console: Console | None = None,
) -> ValidityReport:
    """Run the validity sweep (`gates` gates per panel, split into `cells` cells) and check
    that the report recovers the configured parameters. `profiles` names panels of
    `VALIDATION_PANELS` (default `DEFAULT_PANELS`). Writes ``validity.json`` into `out`."""
    import time

    began = time.perf_counter()
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="coimprove-validity-"))
    names = profiles or list(DEFAULT_PANELS)
    unknown = [n for n in names if n not in VALIDATION_PANELS]
    if unknown:
        raise ValueError(
            f"unknown validation profile(s) {unknown}; choose from {sorted(VALIDATION_PANELS)}"
        )
    checks: list[Check] = []
    total = 0
    for name in names:
        panel = VALIDATION_PANELS[name]
        runs = max(math.ceil(gates * 1.05 / _gates_per_run(panel) / cells), 1)
        seeds = list(range(cells))
        while True:
            outcome = run_sweep(
                validation_spec(panel, runs, seeds),
                folder / name,
                executor=executor,
                workers=workers,
                progress=progress,
                console=console,
                report=False,
            )
            if outcome.failed:
                raise RuntimeError(
                    f"validity sweep {name!r}: {len(outcome.failed)} cell(s) failed: "
                    f"{outcome.failed[0].error}"
                )
            done = sum(r.decisions for r in outcome.results)
            if done >= gates:
                break
            seeds.append(len(seeds))  # the estimate fell short: one more replicate
        n, found = check_results(panel.profile, outcome.results)
        total += n
        checks += found
    report = ValidityReport(
        ok=all(c.ok for c in checks),
        gates=total,
        checks=checks,
        out=str(folder),
        wall_s=round(time.perf_counter() - began, 3),
    )
    write_atomic(folder / "validity.json", report.model_dump_json(indent=1))
    return report
