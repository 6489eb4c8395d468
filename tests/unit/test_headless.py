"""The headless session: a discrete-event simulation of reviewers answering gates."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coimprove import run_headless
from coimprove.ledger import SqliteLedger
from coimprove.model import GateRequest, Review
from coimprove.policy import policy_from_yaml
from coimprove.protocols import ReviewContext
from coimprove.testing import Verdicts
from tests.helpers import linear_workflow


@dataclass
class Recording:
    """A reviewer that approves after `dwell_s` and remembers what it was told."""

    inner: Verdicts
    contexts: list[tuple[str, float, int, float]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def kind(self):  # type: ignore[no-untyped-def]
        return self.inner.kind

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        self.contexts.append(
            (request.gate_id, context.clock.now(), context.queue_length, context.session_elapsed_s)
        )
        return await self.inner.review(request, context)


def _times(db: Path, kind: str) -> list[float]:
    with SqliteLedger(db) as ledger:
        return [e.at for e in ledger.events(types=[kind])]  # type: ignore[list-item]


async def test_runs_arrive_on_schedule_and_wait_only_for_busy_reviewers(tmp_path: Path) -> None:
    reviewer = Recording(Verdicts(["approve"], dwell_s=30))
    result = await run_headless(
        linear_workflow("arrivals"), [reviewer], runs=3, arrival_s=3600, db=tmp_path / "l.db"
    )
    assert [r.state for r in result.runs] == ["finished"] * 3
    assert _times(tmp_path / "l.db", "gate.opened") == [0.0, 3600.0, 7200.0]
    # an idle reviewer picks each gate up the moment it opens: no phantom backlog
    assert _times(tmp_path / "l.db", "gate.decided") == [30.0, 3630.0, 7230.0]
    assert [c[1] for c in reviewer.contexts] == [0.0, 3600.0, 7200.0]


async def test_a_busy_reviewer_sees_the_queue_it_leaves_behind(tmp_path: Path) -> None:
    reviewer = Recording(Verdicts(["approve"], dwell_s=30))
    await run_headless(linear_workflow("queue"), [reviewer], runs=5, db=tmp_path / "l.db")
    assert [c[2] for c in reviewer.contexts] == [4, 3, 2, 1, 0]
    assert [c[3] for c in reviewer.contexts] == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert _times(tmp_path / "l.db", "gate.decided") == [30.0, 60.0, 90.0, 120.0, 150.0]


async def test_quorum_gates_are_read_by_several_reviewers_at_once(tmp_path: Path) -> None:
    policy = policy_from_yaml(
        "name: two\nreviewers: {'*': [reviewer]}\ndefaults: {quorum: 2, timeout_s: 86400}\n"
    )
    a = Recording(Verdicts(["approve"], id="a", dwell_s=30))
    b = Recording(Verdicts(["approve"], id="b", dwell_s=50))
    result = await run_headless(
        linear_workflow("quorum"), [a, b], policy=policy, db=tmp_path / "l.db"
    )
    assert result.runs[0].state == "finished" and result.decisions == 2
    assert [c[1] for c in a.contexts] == [0.0] and [c[1] for c in b.contexts] == [0.0]
    assert _times(tmp_path / "l.db", "gate.resolved") == [50.0]


async def test_a_decision_after_the_deadline_changes_nothing(tmp_path: Path) -> None:
    policy = policy_from_yaml(
        "name: quick\nreviewers: {'*': [reviewer]}\ndefaults: {timeout_s: 10}\n"
    )
    slow = Verdicts(["approve"], dwell_s=30)
    result = await run_headless(
        linear_workflow("late"), [slow], policy=policy, db=tmp_path / "l.db"
    )
    assert result.decisions == 0
    assert _times(tmp_path / "l.db", "gate.timed_out") == [10.0]
    assert _times(tmp_path / "l.db", "gate.decided") == []
    with SqliteLedger(tmp_path / "l.db") as ledger:
        (resolved,) = ledger.events(types=["gate.resolved"])
    assert resolved.data["outcome"] == "reject" and resolved.data["reason"] == "timeout"


async def test_named_runs_make_a_session_reproducible(tmp_path: Path) -> None:
    from coimprove.reviewers.scripted import ScriptedReviewer

    outcomes = []
    for attempt in range(2):
        reviewer = ScriptedReviewer.from_profile_name("random", id="r-1", seed=3)
        db = tmp_path / f"{attempt}.db"
        await run_headless(
            linear_workflow("repro", pairs=2),
            [reviewer],
            runs=6,
            arrival_s=60,
            db=db,
            run_ids=lambda i: f"run-{i}",
        )
        with SqliteLedger(db) as ledger:
            outcomes.append(
                [
                    (e.gate_id, e.at, e.data["verdict"])
                    for e in ledger.events(types=["gate.decided"])
                ]
            )
    assert outcomes[0] == outcomes[1] and len(outcomes[0]) >= 6


async def test_no_more_reviewers_read_a_gate_than_its_quorum_still_needs(tmp_path: Path) -> None:
    policy = policy_from_yaml(
        "name: two\nreviewers: {'*': [reviewer]}\ndefaults: {quorum: 2, timeout_s: 86400}\n"
    )
    a, b, c = (Recording(Verdicts(["approve"], id=rid, dwell_s=30)) for rid in "abc")
    result = await run_headless(
        linear_workflow("quorum3"), [a, b, c], policy=policy, db=tmp_path / "l.db"
    )
    assert result.decisions == 2 and result.runs[0].state == "finished"
    assert [len(r.contexts) for r in (a, b, c)] == [1, 1, 0]
