"""Co-improvement measures from hand-built ledgers whose answers are known: reviewers learning
from feedback, agents learning from notes, people converging on the agent."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from coimprove.ledger.sqlite import SqliteLedger
from coimprove.metrics import (
    agent_learning,
    human_convergence,
    least_squares,
    report,
    reviewer_learning,
    wilson,
)
from coimprove.metrics.trends import slices
from coimprove.protocols import LedgerWriter


class Book:
    def __init__(self, w: LedgerWriter) -> None:
        self.w = w

    def run(self, run_id: str, *, memory: bool | None = None) -> None:
        cfg = None if memory is None else {"enabled": memory, "k": 3}
        self.w.append("run.started", at=0, run_id=run_id, data={"graph": "g", "memory": cfg})

    def opened(
        self,
        gate_id: str,
        *,
        at: float = 0.0,
        canary: bool = False,
        truth: str | None = None,
        min_review_s: float = 0.0,
        has_detail: bool = False,
        title: str = "a proposal",
        payload: dict[str, Any] | None = None,
        recalled: tuple[str, ...] = (),
        agent: str = "propose",
    ) -> None:
        run, gate, round_ = gate_id.split(".")
        self.w.append(
            "gate.opened",
            at=at,
            run_id=run,
            gate_id=gate_id,
            data={
                "graph": "g",
                "gate": gate,
                "round": int(round_),
                "agent": agent,
                "proposal_kind": "experiment",
                "has_detail": has_detail,
                "min_review_s": min_review_s,
                "hidden": {"canary": canary, "truth": "flawed" if canary else truth},
                "request": {
                    "proposal": {
                        "title": title,
                        "body": "",
                        "payload": payload or {},
                        "recalled": list(recalled),
                    }
                },
            },
        )

    def decided(
        self,
        gate_id: str,
        who: str,
        verdict: str,
        *,
        at: float,
        viewed: float | None = None,
        kind: str = "human",
        note: str = "",
        edited: dict[str, Any] | None = None,
    ) -> None:
        run = gate_id.split(".")[0]
        if viewed is not None:
            self.w.append(
                "gate.viewed",
                at=viewed,
                run_id=run,
                gate_id=gate_id,
                actor=who,
                data={"reviewer_kind": kind},
            )
        data: dict[str, Any] = {
            "verdict": verdict,
            "reviewer_kind": kind,
            "decision": {"verdict": verdict, "note": note},
        }
        if edited is not None:
            data["edited_proposal"] = {"payload": edited}
        self.w.append("gate.decided", at=at, run_id=run, gate_id=gate_id, actor=who, data=data)

    def resolved(self, gate_id: str, outcome: str, *, at: float = 0.0) -> None:
        self.w.append(
            "gate.resolved",
            at=at,
            run_id=gate_id.split(".")[0],
            gate_id=gate_id,
            data={"outcome": outcome, "verdict": outcome},
        )

    def lesson(self, who: str, *, at: float, lesson: bool = True) -> None:
        self.w.append(
            "feedback.shown",
            at=at,
            run_id="r0",
            gate_id="r0.review.1",
            actor=who,
            data={"kind": "canary", "lesson": lesson, "verdict": "approve"},
        )


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "l.db")


# -- statistics ---------------------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    low, high = wilson(5, 10) or (0, 0)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(0, 0) is None


def test_least_squares_known_line() -> None:
    slope, intercept, se, low, high = least_squares([0, 1, 2, 3], [0, 0, 1, 1]) or (0,) * 5
    assert (slope, intercept) == (pytest.approx(0.4), pytest.approx(-0.1))
    assert se == pytest.approx(math.sqrt(0.2 / 2 / 5))
    assert low < slope < high
    assert least_squares([1, 1, 1], [0, 1, 0]) is None  # no spread in x
    assert least_squares([1, 2], [0, 1]) is None


def test_slices_are_equal_sized_larger_first() -> None:
    assert [len(s) for s in slices(10, 3)] == [4, 3, 3]
    assert [len(s) for s in slices(2, 5)] == [1, 1]
    assert slices(0, 4) == []


# -- reviewers ----------------------------------------------------------------------------------


def test_reviewer_learning_counts_lessons_before_each_look(ledger: SqliteLedger) -> None:
    """Four flawed gates; lessons shown before looks 2, 3 and 4: x = 0,1,2,3; caught 0,0,1,1."""
    with ledger.transaction() as tx:
        b = Book(tx)
        verdicts = ["approve", "approve", "reject", "request_changes"]
        for i, verdict in enumerate(verdicts):
            gid = f"r{i}.review.1"
            b.opened(gid, at=i * 100, truth="flawed")
            b.decided(gid, "alice", verdict, at=i * 100 + 50, viewed=i * 100 + 10)
            if i < 3:
                b.lesson("alice", at=i * 100 + 60)  # after this decision, before the next look
        b.lesson("alice", at=1000, lesson=False)  # an item that is not a lesson
        b.lesson("bob", at=1)  # someone else's
    m = reviewer_learning(ledger, buckets=2)["alice"]
    assert (m.signal, m.caught, m.lessons, m.feedback_shown) == (4, 2, 3, 4)
    assert m.catch_per_lesson.slope == pytest.approx(0.4)
    assert m.catch_per_lesson.intercept == pytest.approx(-0.1)
    assert [(p.n, p.hits, p.first, p.last) for p in m.catch_by_gate] == [(2, 0, 1, 2), (2, 2, 3, 4)]
    assert m.catch_per_gate.slope == pytest.approx(0.4)


def test_reviewer_sessions_rubber_stamps_and_signal(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        # session 1: a skimmed approval (dwell 2 < 10), a real one (dwell 30)
        b.opened("r1.review.1", at=0, min_review_s=10)
        b.decided("r1.review.1", "carol", "approve", at=2, viewed=0)
        b.opened("r2.review.1", at=0, min_review_s=10)
        b.decided("r2.review.1", "carol", "approve", at=40, viewed=10)
        # session 2 (gap > 30 min): a canary caught, an escalated flaw (not a signal trial)
        b.opened("r3.review.1", at=5000, canary=True)
        b.decided("r3.review.1", "carol", "reject", at=5000, viewed=4990)
        b.opened("r4.review.1", at=5000, truth="dead_end")
        b.decided("r4.review.1", "carol", "escalate", at=5100, viewed=5050)
    m = reviewer_learning(ledger, buckets=4)["carol"]
    assert (m.decisions, m.sessions, m.approvals, m.rubber_stamps) == (4, 2, 2, 1)
    assert (m.signal, m.caught) == (1, 1)
    assert [(p.index, p.n, p.hits) for p in m.rubber_stamp_by_session] == [(1, 2, 1)]
    assert [(p.index, p.n, p.rate) for p in m.catch_by_session] == [(2, 1, 1.0)]
    assert m.catch_per_lesson.slope is None  # one trial: no line
    # the rubber-stamp count agrees with the oversight report's definition
    assert report(ledger).by_reviewer["carol"].rubber_stamps == 1


def test_reviewer_learning_limited_to_one_run(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        for run in ("ra", "rb"):
            b.opened(f"{run}.review.1", truth="flawed")
            b.decided(f"{run}.review.1", "dan", "reject", at=1)
    assert reviewer_learning(ledger, run_id="ra")["dan"].signal == 1
    assert reviewer_learning(ledger)["dan"].signal == 2


# -- agents -------------------------------------------------------------------------------------


def test_agent_episodes_first_pass_and_rounds(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        # memory on
        b.run("ra", memory=True)  # sent back, then approved: 2 rounds
        b.opened("ra.review.1", at=1, recalled=("n1", "n2"))
        b.resolved("ra.review.1", "request_changes")
        b.opened("ra.review.2", at=2, recalled=("n1",))
        b.resolved("ra.review.2", "approve")
        b.run("rb", memory=True)  # a canary first (not the agent's), then approved first pass
        b.opened("rb.review.1", at=3, canary=True)
        b.resolved("rb.review.1", "canary")
        b.opened("rb.review.2", at=4)
        b.resolved("rb.review.2", "approve")
        # memory off
        b.run("rc")  # escalated, then approved higher up: one attempt, first pass approved
        b.opened("rc.review.1", at=5)
        b.resolved("rc.review.1", "escalate")
        b.opened("rc.review.2", at=6)
        b.resolved("rc.review.2", "edit")
        b.run("rd", memory=False)  # rejected outright
        b.opened("rd.review.1", at=7)
        b.resolved("rd.review.1", "reject")
        b.run("re")  # approved; the graph loops back to the gate: a new episode, still open
        b.opened("re.review.1", at=8)
        b.resolved("re.review.1", "approve")
        b.opened("re.review.2", at=9)
        b.resolved("re.review.2", "request_changes")
        b.opened("re.review.3", at=10)
    m = agent_learning(ledger, buckets=2)
    assert set(m.by_memory) == {"on", "off"} and set(m.by_agent) == {"g/propose"}
    on, off = m.by_memory["on"], m.by_memory["off"]
    assert (on.first_passes, on.first_pass_resolved, on.first_pass_approved) == (2, 2, 1)
    assert (on.attempts, on.approved_episodes, on.rounds_to_approval_mean) == (3, 2, 1.5)
    assert on.notes_given_mean == pytest.approx(1.0)  # (2 + 1 + 0) / 3 attempts
    assert (off.first_passes, off.first_pass_resolved, off.first_pass_approved) == (4, 4, 2)
    assert (off.attempts, off.approved_episodes, off.rounds_to_approval_mean) == (5, 2, 1.0)
    assert off.first_pass_approval_rate == 0.5
    overall = m.by_agent["g/propose"]
    assert [(p.n, p.hits) for p in overall.first_pass_trend] == [(3, 2), (3, 1)]
    assert [(p.n, p.mean) for p in on.rounds_trend] == [(1, 2.0), (1, 1.0)]


# -- people -------------------------------------------------------------------------------------


def test_convergence_contribution_similarity_and_diversity(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        b.opened("r1.review.1", title="lower the learning rate")
        b.decided("r1.review.1", "ann", "request_changes", at=1, note="lower the learning rate")
        b.opened("r2.review.1", title="lower the learning rate")
        b.decided("r2.review.1", "ann", "request_changes", at=2, note="lower the learning rate")
        b.opened("r3.review.1", title="x", payload={"lr": 1})
        b.decided("r3.review.1", "ann", "edit", at=3, edited={"lr": 1})
        b.opened("r4.review.1", title="y")
        b.decided("r4.review.1", "ann", "approve", at=4)
        b.opened("r5.review.1", title="z")
        b.decided("r5.review.1", "ai", "request_changes", at=5, kind="model", note="q")
    c = human_convergence(ledger, buckets=2)
    assert (c.decisions, c.changed) == (4, 3)  # the model reviewer is not a person
    first, second = c.trend
    assert (first.n, first.changed, first.rate) == (2, 2, 1.0)
    assert first.similarity == pytest.approx(1.0)  # the notes repeat the proposal verbatim
    assert first.human_diversity == pytest.approx(0.0)  # and each other
    assert first.agent_diversity == pytest.approx(0.0)
    assert (second.n, second.changed) == (2, 1)
    assert second.similarity == pytest.approx(1.0)  # an "edit" that changed nothing
    assert second.human_diversity is None  # one change: no pair
    assert c.contribution_per_decision.slope == pytest.approx(-0.3)


def test_the_report_carries_both_directions(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        b.run("r1", memory=True)
        b.opened("r1.review.1", truth="flawed")
        b.decided("r1.review.1", "eve", "reject", at=1)
        b.resolved("r1.review.1", "reject", at=1)
    rep = report(ledger)
    assert rep.co_improvement.reviewers["eve"].caught == 1
    assert rep.co_improvement.agents.by_memory["on"].first_passes == 1
    assert rep.co_improvement.convergence.decisions == 1
    assert "co_improvement" in rep.model_dump(mode="json")
