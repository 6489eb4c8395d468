"""Oversight measures from hand-built ledgers whose answers are known."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from coimprove.ledger import SqliteLedger
from coimprove.metrics import (
    GROUP_BYS,
    MISSING,
    Report,
    cohen_kappa,
    d_prime,
    d_prime_interval,
    fleiss_kappa,
    report,
    summarize,
)
from coimprove.metrics import sql as metrics_sql
from coimprove.protocols import Ledger, LedgerWriter
from tests.ledgers import LedgerBackend

z = NormalDist().inv_cdf


class Book:
    """Writes ledger events the way the runner and gates do, with chosen times."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.w = writer

    def run(self, run_id: str, *, at: float, policy: str = "default") -> None:
        self.w.append("run.started", at=at, run_id=run_id, data={"graph": "g", "policy": policy})

    def finish(self, run_id: str, *, at: float) -> None:
        self.w.append("run.finished", at=at, run_id=run_id, data={})

    def gate(
        self,
        gate_id: str,
        *,
        at: float = 0.0,
        run: str = "r1",
        kind: str = "code",
        policy: str = "default",
        category: str | None = "joint experiment design",
        has_detail: bool = False,
        min_review_s: float = 0.0,
        canary: bool = False,
        truth: str | None = None,
    ) -> None:
        self.w.append(
            "gate.opened",
            at=at,
            run_id=run,
            gate_id=gate_id,
            data={
                "proposal_kind": kind,
                "policy": policy,
                "category": category,
                "has_detail": has_detail,
                "min_review_s": min_review_s,
                "graph": "g",
                "gate": gate_id.split(".")[-2] if "." in gate_id else gate_id,
                "round": 1,
                "hidden": {"canary": canary, "truth": "flawed" if canary else truth},
                "request": {},
            },
        )

    def view(
        self, gate_id: str, who: str, *, at: float, detail: bool = False, kind: str = "human"
    ) -> None:
        self.w.append(
            "detail.viewed" if detail else "gate.viewed",
            at=at,
            run_id=self._run(gate_id),
            gate_id=gate_id,
            actor=who,
            data={"reviewer_kind": kind},
        )

    def decide(
        self, gate_id: str, who: str, verdict: str, *, at: float, kind: str = "human"
    ) -> None:
        self.w.append(
            "gate.decided",
            at=at,
            run_id=self._run(gate_id),
            gate_id=gate_id,
            actor=who,
            data={"verdict": verdict, "reviewer_kind": kind, "decision": {"verdict": verdict}},
        )

    def resolve(self, gate_id: str, outcome: str, *, at: float, reason: str = "decision") -> None:
        self.w.append(
            "gate.resolved",
            at=at,
            run_id=self._run(gate_id),
            gate_id=gate_id,
            data={"outcome": outcome, "verdict": outcome, "reason": reason},
        )

    def timeout(self, gate_id: str, *, at: float) -> None:
        self.w.append("gate.timed_out", at=at, run_id=self._run(gate_id), gate_id=gate_id)
        self.resolve(gate_id, "reject", at=at, reason="timeout")

    def decided(
        self,
        gate_id: str,
        who: str,
        verdict: str,
        *,
        opened: float = 0.0,
        decided: float = 1.0,
        rkind: str = "human",
        **gate: Any,
    ) -> None:
        """A whole single-reviewer gate: opened, decided and resolved."""
        self.gate(gate_id, at=opened, **gate)
        self.decide(gate_id, who, verdict, at=decided, kind=rkind)
        canary = gate.get("canary", False)
        self.resolve(gate_id, "canary" if canary else verdict, at=decided)

    @staticmethod
    def _run(gate_id: str) -> str:
        return gate_id.split(".")[0] if "." in gate_id else "r1"


@pytest.fixture
def ledger(ledger_backend: LedgerBackend) -> Iterator[Ledger]:
    """Every measure is checked on each ledger backend (SQLite and PostgreSQL)."""
    led = ledger_backend.open()
    try:
        yield led
    finally:
        led.close()


@pytest.fixture
def book(ledger: Ledger) -> Book:
    return Book(ledger)


def overall(ledger: Ledger, **kw: Any) -> Report:
    return report(ledger, **kw)


# -- latency and dwell -------------------------------------------------------------------------


def test_latency_percentiles_interpolate_like_statistics_quantiles_inclusive(
    ledger: Ledger, book: Book
) -> None:
    latencies = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.5, 6.5, 3.25, 12.0, 0.5]
    for i, lat in enumerate(latencies):
        book.decided(f"r1.g{i}.1", "ana", "approve", opened=100.0 * i, decided=100.0 * i + lat)

    got = overall(ledger).latency_s
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    assert got.n == len(latencies)
    assert got.p50 == pytest.approx(cuts[49])
    assert got.p90 == pytest.approx(cuts[89])
    assert got.p99 == pytest.approx(cuts[98])
    assert got.mean == pytest.approx(statistics.fmean(latencies))
    assert got.max == pytest.approx(12.0)
    # a value that falls between two order statistics really is interpolated
    assert got.p99 not in latencies


def test_percentiles_of_one_decision_are_that_decision(ledger: Ledger, book: Book) -> None:
    book.decided("r1.g.1", "ana", "approve", opened=10.0, decided=17.5)

    got = overall(ledger).latency_s
    assert (got.p50, got.p90, got.p99) == pytest.approx((7.5, 7.5, 7.5))


def test_dwell_runs_from_the_reviewers_first_view_before_deciding(
    ledger: Ledger, book: Book
) -> None:
    book.gate("r1.g.1", at=0.0)
    book.view("r1.g.1", "bob", at=2.0)  # someone else's view does not count
    book.view("r1.g.1", "ana", at=5.0, detail=True)  # first view by ana (a detail view)
    book.view("r1.g.1", "ana", at=8.0)
    book.decide("r1.g.1", "ana", "approve", at=20.0)
    book.resolve("r1.g.1", "approve", at=20.0)
    book.view("r1.g.1", "ana", at=1.0)  # recorded after the decision: ignored

    got = overall(ledger)
    assert got.dwell_s.p50 == pytest.approx(15.0)
    assert got.latency_s.p50 == pytest.approx(20.0)


def test_dwell_is_zero_when_the_reviewer_never_viewed_the_gate(ledger: Ledger, book: Book) -> None:
    book.gate("r1.g.1", at=0.0)
    book.view("r1.g.1", "bob", at=1.0)
    book.decide("r1.g.1", "ana", "approve", at=30.0)
    book.resolve("r1.g.1", "approve", at=30.0)

    got = overall(ledger).dwell_s
    assert (got.n, got.p50, got.max) == (1, 0.0, 0.0)


# -- rubber stamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("has_detail", "detail_view", "dwell", "verdict", "stamped"),
    [
        pytest.param(False, None, 2.0, "approve", True, id="no-detail-short-dwell"),
        pytest.param(True, "ana-before", 2.0, "approve", False, id="detail-opened"),
        pytest.param(True, None, 2.0, "approve", True, id="detail-never-opened"),
        pytest.param(True, "bob-before", 2.0, "approve", True, id="detail-opened-by-someone-else"),
        pytest.param(True, "ana-after", 2.0, "approve", True, id="detail-opened-after-deciding"),
        pytest.param(False, None, 12.0, "approve", False, id="long-dwell"),
        pytest.param(False, None, 10.0, "approve", False, id="dwell-equal-to-minimum"),
        pytest.param(False, None, 2.0, "edit", False, id="an-edit-is-not-a-stamp"),
    ],
)
def test_rubber_stamp_needs_approval_short_dwell_and_unopened_detail(
    ledger: Ledger,
    book: Book,
    has_detail: bool,
    detail_view: str | None,
    dwell: float,
    verdict: str,
    stamped: bool,
) -> None:
    gid = "r1.g.1"
    book.gate(gid, at=0.0, has_detail=has_detail, min_review_s=10.0)
    book.view(gid, "ana", at=50.0)
    if detail_view == "ana-before":
        book.view(gid, "ana", at=51.0, detail=True)
    elif detail_view == "bob-before":
        book.view(gid, "bob", at=51.0, detail=True)
    book.decide(gid, "ana", verdict, at=50.0 + dwell)
    book.resolve(gid, verdict, at=50.0 + dwell)
    if detail_view == "ana-after":
        book.view(gid, "ana", at=51.0, detail=True)

    got = overall(ledger)
    assert got.rubber_stamps == int(stamped)
    assert got.rubber_stamp_rate == (1.0 if stamped else 0.0)


def test_rubber_stamp_rate_is_over_approvals_and_edits(ledger: Ledger, book: Book) -> None:
    short: dict[str, Any] = {"min_review_s": 30.0}
    book.decided("r1.a.1", "ana", "approve", decided=1.0, **short)  # stamp (never viewed)
    book.decided("r1.b.1", "ana", "approve", decided=1.0, **short)  # stamp
    book.decided("r1.c.1", "ana", "edit", decided=1.0, **short)
    book.decided("r1.d.1", "ana", "reject", decided=1.0, **short)

    got = overall(ledger)
    assert got.rubber_stamps == 2
    assert got.rubber_stamp_rate == pytest.approx(2 / 3)
    assert got.approval_rate == pytest.approx(3 / 4)


# -- canaries and d′ ---------------------------------------------------------------------------


def test_canary_catch_rate_false_alarms_and_d_prime(ledger: Ledger, book: Book) -> None:
    for i, v in enumerate(["reject", "request_changes", "approve", "escalate"]):
        book.decided(f"r1.c{i}.1", "ana", v, canary=True)
    for i, v in enumerate(["approve", "approve", "edit", "reject", "escalate"]):
        book.decided(f"r1.n{i}.1", "ana", v)

    got = overall(ledger).canary
    assert (got.n, got.caught, got.non_canary, got.false_alarms) == (3, 2, 4, 1)
    assert got.catch_rate == pytest.approx(2 / 3)
    assert got.false_alarm_rate == pytest.approx(1 / 4)
    assert got.d_prime_lower_bound.value == pytest.approx(z(2.5 / 4) - z(1.5 / 5))
    # no proposal carries a truth label: no sound-only d′, never a made-up one
    assert (got.sound, got.sound_false_alarm_rate, got.d_prime_sound.value) == (0, None, None)


def test_sound_only_false_alarms_and_d_prime_leave_real_flaws_out(
    ledger: Ledger, book: Book
) -> None:
    """Issue 29: stopping a proposal known to be flawed is a catch, not a false alarm."""
    for i, v in enumerate(["reject", "request_changes", "approve", "approve", "escalate"]):
        book.decided(f"r1.c{i}.1", "ana", v, canary=True)
    sound = ["approve", "approve", "approve", "reject", "escalate"]
    flawed = ["reject", "request_changes", "approve"]
    for i, v in enumerate(sound):
        book.decided(f"r1.s{i}.1", "ana", v, truth="sound")
    for i, v in enumerate(flawed):
        book.decided(f"r1.f{i}.1", "ana", v, truth="flawed" if i else "dead_end")
    book.decided("r1.u.1", "ana", "reject")  # unlabelled: only the lower bound counts it

    got = overall(ledger).canary
    assert (got.n, got.caught) == (4, 2)
    assert (got.sound, got.sound_false_alarms) == (4, 1)
    assert got.sound_false_alarm_rate == pytest.approx(1 / 4)
    assert (got.non_canary, got.false_alarms) == (8, 4)
    assert got.false_alarm_rate == pytest.approx(4 / 8)
    sound_only = z(2.5 / 5) - z(1.5 / 5)
    lower = z(2.5 / 5) - z(4.5 / 9)
    assert got.d_prime_sound.value == pytest.approx(sound_only)
    assert got.d_prime_lower_bound.value == pytest.approx(lower)
    assert got.d_prime_lower_bound.value < got.d_prime_sound.value
    # the interval is the delta-method one, centred on the value
    low, high = d_prime_interval(2, 4, 1, 4) or (0.0, 0.0)
    assert (got.d_prime_sound.low, got.d_prime_sound.high) == pytest.approx((low, high))
    assert low < sound_only < high
    # per reviewer too (the same SQL)
    assert summarize(ledger, "reviewer")["ana"].canary == got


def test_the_issue_29_scenario_gives_the_configured_sensitivity(tmp_path: Path) -> None:
    """5,848 gates of 60% sound, 25% flawed and 15% dead-end proposals, 30% canaries, a
    reviewer stopping a flaw with 0.37 and a sound proposal with 0.10 (seeded draws): the
    sound-only d′ is z(0.37) − z(0.10) ≈ 0.95; the canary-vs-everything one (0.48 in the
    issue) is about half and only a lower bound."""
    rng = random.Random(29)
    with SqliteLedger(tmp_path / "issue29.db") as led:
        with led.transaction() as tx:
            b = Book(tx)
            for k in range(5_848):
                canary = rng.random() < 0.30
                truth = "flawed" if canary else rng.choices(
                    ["sound", "flawed", "dead_end"], [0.60, 0.25, 0.15]
                )[0]  # fmt: skip
                stop = rng.random() < (0.10 if truth == "sound" else 0.37)
                b.decided(f"r1.g{k}.1", "rev", "reject" if stop else "approve",
                          canary=canary, truth=truth)  # fmt: skip
        got = report(led).canary
    expected = z(0.37) - z(0.10)
    assert got.n + got.non_canary == 5_848
    assert got.catch_rate == pytest.approx(0.37, abs=0.03)
    assert got.sound_false_alarm_rate == pytest.approx(0.10, abs=0.015)
    assert got.false_alarm_rate == pytest.approx(0.6 * 0.10 + 0.4 * 0.37, abs=0.02)
    sound, lower = got.d_prime_sound, got.d_prime_lower_bound
    assert sound.value == pytest.approx(expected, abs=0.15)
    assert sound.low is not None and sound.high is not None
    assert sound.low < expected < sound.high
    assert lower.value is not None and lower.high is not None
    assert lower.high < expected - 0.15  # a lower bound here, far below the sensitivity


def test_d_prime_interval_is_the_delta_method_one() -> None:
    h, f = 8.5 / 11, 2.5 / 11
    pdf = NormalDist().pdf
    se = math.sqrt(h * (1 - h) / (11 * pdf(z(h)) ** 2) + f * (1 - f) / (11 * pdf(z(f)) ** 2))
    low, high = d_prime_interval(8, 10, 2, 10) or (0.0, 0.0)
    centre = d_prime(8, 10, 2, 10) or 0.0
    assert (low, high) == pytest.approx((centre - 1.959964 * se, centre + 1.959964 * se))
    assert d_prime_interval(0, 0, 1, 4) is None


def test_d_prime_uses_the_log_linear_correction_for_perfect_scores() -> None:
    assert d_prime(10, 10, 0, 10) == pytest.approx(z(10.5 / 11) - z(0.5 / 11))
    assert math.isfinite(d_prime(0, 5, 5, 5) or math.nan)
    assert d_prime(3, 6, 3, 6) == pytest.approx(0.0)


def test_d_prime_is_none_without_signal_or_noise_trials() -> None:
    assert d_prime(0, 0, 1, 4) is None
    assert d_prime(1, 4, 0, 0) is None
    with pytest.raises(ValueError, match="out of range"):
        d_prime(5, 4, 0, 4)


def test_canary_measures_are_none_without_canaries(ledger: Ledger, book: Book) -> None:
    book.decided("r1.n.1", "ana", "reject")

    got = overall(ledger).canary
    assert got.n == 0
    assert got.catch_rate is None
    assert got.d_prime_sound.value is None
    assert got.d_prime_lower_bound.value is None
    assert got.d_prime_lower_bound.low is None
    assert got.false_alarm_rate == 1.0


# -- agreement ---------------------------------------------------------------------------------

# Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories; κ ≈ 0.210.
FLEISS_1971 = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_reproduces_the_textbook_example() -> None:
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.20993, abs=5e-5)


def test_a_reviewer_who_decided_a_gate_twice_is_one_rater_with_the_last_verdict(
    ledger: Ledger, book: Book
) -> None:
    # a quorum gate: ana approves, bob edits (a new version), ana approves the edited version
    book.gate("r1.q.1")
    book.decide("r1.q.1", "ana", "approve", at=1.0)
    book.decide("r1.q.1", "bob", "edit", at=2.0)
    book.decide("r1.q.1", "ana", "edit", at=3.0)
    book.resolve("r1.q.1", "edit", at=3.0)
    book.gate("r1.solo.1")  # one reviewer deciding twice is not agreement either
    book.decide("r1.solo.1", "cy", "approve", at=1.0)
    book.decide("r1.solo.1", "cy", "approve", at=2.0)
    got = overall(ledger).agreement
    assert (got.gates, got.decisions) == (1, 2)
    assert got.pairs["ana|bob"].n == 1 and got.pairs["ana|bob"].observed == 1.0
    assert got.fleiss_kappa == pytest.approx(fleiss_kappa([[2]]))  # None: one category


def test_fleiss_kappa_perfect_agreement_and_undefined_cases() -> None:
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    assert fleiss_kappa([[2, 0], [2, 0]]) is None  # one category only: chance explains it all
    assert fleiss_kappa([[1, 0]]) is None  # a single rating is not agreement


def test_cohen_kappa_reproduces_the_textbook_example() -> None:
    # Wikipedia: 50 proposals, both yes 20, A yes/B no 5, A no/B yes 10, both no 15 → κ = 0.4
    table = {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}
    assert cohen_kappa(table) == pytest.approx(0.4)
    assert cohen_kappa({}) is None
    assert cohen_kappa({("a", "a"): 4}) is None


def test_agreement_on_quorum_gates_from_the_ledger(ledger: Ledger, book: Book) -> None:
    votes = {  # gate -> (ana, bob, cy)
        "r1.q1.1": ("approve", "approve", "approve"),
        "r1.q2.1": ("approve", "reject", "approve"),
        "r1.q3.1": ("reject", "reject", None),
        "r1.q4.1": ("approve", "request_changes", "reject"),
    }
    for gid, vs in votes.items():
        book.gate(gid)
        for who, v in zip(("ana", "bob", "cy"), vs, strict=True):
            if v is not None:
                book.decide(gid, who, v, at=1.0)
        book.resolve(gid, "reject", at=2.0)
    book.decided("r1.solo.1", "ana", "reject")  # one decision: not part of agreement

    got = overall(ledger).agreement
    cats = ["approve", "reject", "request_changes"]
    table = [[vs.count(c) for c in cats] for vs in votes.values()]
    assert got.gates == 4
    assert got.decisions == 11
    assert got.fleiss_kappa == pytest.approx(fleiss_kappa(table))
    assert set(got.pairs) == {"ana|bob", "ana|cy", "bob|cy"}
    ana_bob = {
        ("approve", "approve"): 1,
        ("approve", "reject"): 1,
        ("reject", "reject"): 1,
        ("approve", "request_changes"): 1,
    }
    assert got.pairs["ana|bob"].n == 4
    assert got.pairs["ana|bob"].observed == pytest.approx(0.5)
    assert got.pairs["ana|bob"].kappa == pytest.approx(cohen_kappa(ana_bob))
    assert got.pairs["bob|cy"].n == 3


# -- overrides, timeouts, pending --------------------------------------------------------------


def test_override_and_timeout_rates_and_pending_gates(ledger: Ledger, book: Book) -> None:
    for i, v in enumerate(["approve", "edit", "reject", "request_changes", "escalate"]):
        book.decided(f"r1.d{i}.1", "ana", v)
    book.gate("r1.late.1", at=0.0)
    book.timeout("r1.late.1", at=600.0)
    book.gate("r1.open.1", at=5.0)

    got = overall(ledger)
    assert (got.gates, got.decided, got.pending) == (7, 6, 1)
    assert got.decisions == 5
    assert got.override.edit == pytest.approx(0.2)
    assert got.override.reject == pytest.approx(0.2)
    assert got.override.request_changes == pytest.approx(0.2)
    assert got.override.escalate == pytest.approx(0.2)
    assert got.override.timeout == pytest.approx(1 / 6)


# -- dead ends ---------------------------------------------------------------------------------


def test_dead_end_detection_counts_resolved_planted_dead_ends(ledger: Ledger, book: Book) -> None:
    book.decided("r1.a.1", "ana", "reject", truth="dead_end")
    book.decided("r1.b.1", "ana", "request_changes", truth="dead_end")
    book.decided("r1.c.1", "ana", "approve", truth="dead_end")
    book.decided("r1.d.1", "ana", "edit", truth="dead_end")
    book.decided("r1.e.1", "ana", "escalate", truth="dead_end")  # passed upwards: not counted
    book.decided("r1.f.1", "ana", "reject", truth="sound")
    book.decided("r1.g.1", "ana", "reject", canary=True)
    book.gate("r1.h.1", truth="dead_end")  # still pending
    book.gate("r1.i.1", truth="dead_end")
    book.timeout("r1.i.1", at=100.0)  # fail-closed timeouts stop it too

    got = overall(ledger).dead_end
    assert (got.n, got.stopped) == (5, 3)
    assert got.rate == pytest.approx(3 / 5)


# -- human contribution ------------------------------------------------------------------------


def test_human_contribution_trend_falls_as_people_stop_changing_proposals(
    ledger: Ledger, book: Book
) -> None:
    verdicts = ["edit", "request_changes", "edit", "approve"] + ["approve"] * 3 + ["edit"]
    # recorded newest first, so only the decision times give the order
    for i, v in reversed(list(enumerate(verdicts))):
        book.decided(f"r1.h{i}.1", "ana", v, opened=10.0 * i, decided=10.0 * i + 1)
    book.decided("r1.m.1", "llm", "edit", opened=0.0, decided=2.0, rkind="model")

    got = report(ledger, trend_buckets=2).human_contribution
    assert (got.decisions, got.changed) == (8, 4)
    assert got.rate == pytest.approx(0.5)
    assert [(b.bucket, b.decisions, b.changed) for b in got.trend] == [(1, 4, 3), (2, 4, 1)]
    assert [b.rate for b in got.trend] == pytest.approx([0.75, 0.25])
    assert got.trend[0].from_at == pytest.approx(1.0)
    assert got.trend[1].to_at == pytest.approx(71.0)


def test_scripted_reviewers_count_as_people_but_models_do_not(ledger: Ledger, book: Book) -> None:
    book.decided("r1.a.1", "sim", "edit", rkind="scripted")
    book.decided("r1.b.1", "llm", "edit", rkind="model")
    book.decided("r1.c.1", "llm", "edit", rkind="model")

    kinds = summarize(ledger, "reviewer_kind")
    assert kinds["scripted"].human_contribution.rate == 1.0
    assert kinds["model"].human_contribution.decisions == 0
    assert kinds["model"].human_contribution.rate is None
    assert overall(ledger).human_contribution.decisions == 1


# -- human wait share --------------------------------------------------------------------------


def test_human_wait_share_averages_finished_runs(ledger: Ledger, book: Book) -> None:
    book.run("r1", at=0.0)
    book.decided("r1.a.1", "ana", "approve", run="r1", opened=10.0, decided=20.0)
    book.decided("r1.b.1", "ana", "approve", run="r1", opened=40.0, decided=70.0)
    book.finish("r1", at=100.0)  # 40 s of 100 waiting
    book.run("r2", at=1000.0)
    book.decided("r2.a.1", "ana", "approve", run="r2", opened=1010.0, decided=1015.0)
    book.finish("r2", at=1050.0)  # 5 s of 50
    book.run("r3", at=0.0)  # never finished: left out
    book.decided("r3.a.1", "ana", "approve", run="r3", opened=0.0, decided=99.0)

    got = overall(ledger)
    assert got.wait_share_runs == 2
    assert got.human_wait_share == pytest.approx((0.4 + 0.1) / 2)
    runs = summarize(ledger, "run")
    assert runs["r1"].human_wait_share == pytest.approx(0.4)
    assert runs["r3"].human_wait_share is None


# -- grouping ----------------------------------------------------------------------------------


def test_grouping_by_reviewer_kind_policy_run_and_category(ledger: Ledger, book: Book) -> None:
    book.decided("r1.a.1", "ana", "approve", rkind="human", policy="strict", decided=4.0)
    book.decided("r1.b.1", "ana", "reject", rkind="human", policy="strict", decided=6.0)
    book.decided("r2.a.1", "sim", "approve", rkind="scripted", run="r2", category=None, decided=2.0)
    book.gate("r2.b.1", run="r2", kind="experiment")  # pending, nobody decided it

    rep = overall(ledger)
    assert set(rep.by_reviewer) == {"ana", "sim"}
    assert rep.by_reviewer["ana"].decisions == 2
    assert rep.by_reviewer["ana"].approval_rate == pytest.approx(0.5)
    assert rep.by_reviewer["ana"].latency_s.p50 == pytest.approx(5.0)
    assert rep.by_reviewer["sim"].approval_rate == 1.0
    # a reviewer's gates are the ones they decided
    assert (rep.by_reviewer["ana"].gates, rep.by_reviewer["ana"].pending) == (2, 0)
    assert set(rep.by_reviewer_kind) == {"human", "scripted"}
    assert rep.by_reviewer_kind["human"].decisions == 2
    assert set(rep.by_policy) == {"default", "strict"}
    assert rep.by_policy["strict"].gates == 2
    assert rep.by_proposal_kind["experiment"].gates == 1
    assert rep.by_proposal_kind["experiment"].decisions == 0
    assert rep.by_proposal_kind["experiment"].approval_rate is None
    assert rep.by_proposal_kind["code"].decisions == 3
    assert rep.by_run["r2"].gates == 2
    assert rep.by_run["r2"].pending == 1
    assert set(rep.by_category) == {"joint experiment design", MISSING}
    assert rep.by_category[MISSING].decisions == 1


def test_summarize_matches_the_report_and_refuses_unknown_groupings(
    ledger: Ledger, book: Book
) -> None:
    book.decided("r1.a.1", "ana", "approve")
    book.decided("r1.b.1", "bob", "edit")

    rep = overall(ledger)
    for group_by in GROUP_BYS:
        assert summarize(ledger, group_by) == getattr(rep, f"by_{group_by}")
    assert summarize(ledger)["all"].decisions == 2
    with pytest.raises(ValueError, match="cannot group"):
        summarize(ledger, "actor; DROP TABLE events")  # type: ignore[arg-type]


def test_run_filter_limits_every_measure_to_that_run(ledger: Ledger, book: Book) -> None:
    book.decided("r1.a.1", "ana", "approve", run="r1")
    book.decided("r2.a.1", "ana", "reject", run="r2")
    book.decided("r2.b.1", "ana", "reject", run="r2")

    got = report(ledger, run_id="r2")
    assert (got.run_id, got.gates, got.decisions) == ("r2", 2, 2)
    assert got.approval_rate == 0.0
    assert set(got.by_run) == {"r2"}
    assert report(ledger, run_id="nope").gates == 0


# -- shape -------------------------------------------------------------------------------------


def test_empty_ledger_gives_zeros_and_nulls(ledger: Ledger) -> None:
    got = report(ledger)
    dumped = got.model_dump()
    assert (got.gates, got.decided, got.pending, got.decisions) == (0, 0, 0, 0)
    assert got.latency_s.p50 is None
    assert got.approval_rate is None
    assert got.rubber_stamp_rate is None
    assert got.canary.d_prime_sound.value is None
    assert got.canary.d_prime_lower_bound.value is None
    assert got.agreement.fleiss_kappa is None
    assert got.by_reviewer == {}
    json.dumps(dumped, allow_nan=False)


def test_report_json_has_the_documented_keys(ledger: Ledger, book: Book) -> None:
    book.decided("r1.a.1", "ana", "approve", has_detail=True, min_review_s=5.0)
    dumped = report(ledger).model_dump(mode="json")

    for key in (
        "gates", "decided", "pending", "latency_s", "dwell_s", "approval_rate",
        "rubber_stamp_rate", "canary", "by_reviewer", "override", "agreement",
        "human_contribution", "dead_end", "human_wait_share", "by_reviewer_kind",
        "by_proposal_kind", "by_policy", "by_run", "by_category",
    ):  # fmt: skip
        assert key in dumped, key
    assert set(dumped["latency_s"]) >= {"p50", "p90", "p99"}
    assert set(dumped["dwell_s"]) >= {"p50", "p90", "p99"}
    assert set(dumped["canary"]) >= {
        "n", "caught", "catch_rate", "false_alarm_rate", "sound_false_alarm_rate",
        "d_prime_sound", "d_prime_lower_bound",
    }  # fmt: skip
    assert "d_prime" not in dumped["canary"]  # renamed: every d′ says which one it is
    assert set(dumped["canary"]["d_prime_sound"]) == {"value", "low", "high"}
    assert set(dumped["by_reviewer"]["ana"]) >= {"latency_s", "approval_rate", "canary"}
    json.dumps(dumped, allow_nan=False)


def test_measures_use_only_portable_sql_without_json_functions() -> None:
    groupings = [None, *GROUP_BYS]
    statements = [
        metrics_sql.decision_query(groupings, "r"),
        metrics_sql.gate_query(groupings, "r"),
        metrics_sql.trend_query(groupings, "r", 3),
        metrics_sql.agreement_cells_query("r"),
        metrics_sql.agreement_pairs_query("r"),
    ]
    for text, params in statements:
        assert "json_" not in text.lower()
        assert text.count("?") == len(params)


@pytest.mark.slow
def test_twenty_thousand_decisions_are_summarised(ledger: Ledger) -> None:
    verdicts = ["approve", "approve", "edit", "reject", "request_changes", "escalate"]
    with ledger.transaction() as tx:
        b = Book(tx)
        t = 0.0
        for r in range(100):
            run = f"r{r}"
            b.run(run, at=t)
            for k in range(200):
                gid = f"{run}.g.{k}"
                n = r * 200 + k
                b.gate(gid, at=t, run=run, has_detail=n % 2 == 0, min_review_s=3.0,
                       canary=n % 10 == 0, truth="dead_end" if n % 7 == 0 else "sound")  # fmt: skip
                who = f"rev{n % 5}"
                b.view(gid, who, at=t + 1, detail=n % 3 == 0)
                t += 1 + n % 11
                b.decide(gid, who, verdicts[n % 6], at=t)
                b.resolve(gid, "canary" if n % 10 == 0 else verdicts[n % 6], at=t)
            b.finish(run, at=t + 1)

    got = report(ledger)
    assert (got.gates, got.decisions, got.pending) == (20_000, 20_000, 0)
    assert sum(m.decisions for m in got.by_reviewer.values()) == 20_000
    assert len(got.by_run) == 100
    assert got.canary.n > 0
