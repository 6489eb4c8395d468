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


async def test_after_an_edit_under_quorum_earlier_approvers_review_the_new_version(
    tmp_path: Path,
) -> None:
    # strict: code needs two approvals of the same version. alice approves at 30 s, bob edits
    # at 60 s: only bob's edit counts for the new version, so alice must be offered it again
    db = tmp_path / "ledger.db"
    result = await run_headless(
        linear_workflow(policy="strict", kind="code"),
        [Verdicts(["approve"], id="alice"), Verdicts(["edit"], id="bob", dwell_s=60)],
        db=db,
    )
    assert [r.state for r in result.runs] == ["finished"]
    with SqliteLedger(db) as ledger:
        decided = [(e.actor, e.data["verdict"]) for e in ledger.events(types=["gate.decided"])]
        (resolved,) = ledger.events(types=["gate.resolved"])
        assert not ledger.events(types=["gate.timed_out"])
    assert decided == [("alice", "approve"), ("bob", "edit"), ("alice", "approve")]
    assert resolved.data["outcome"] == "edit" and resolved.data["reason"] == "decision"


@dataclass
class WithRole(Recording):
    """A reviewer acting in one role (what `ScriptedReviewer(role=...)` declares)."""

    role: str = "reviewer"

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        review = await super().review(request, context)
        decision = review.decision.model_copy(update={"role": self.role})
        return review.model_copy(update={"decision": decision})


async def test_reviewers_a_gate_does_not_accept_are_not_offered_it(tmp_path: Path) -> None:
    # a reviewer acting as `lead` (level-0 gates need `reviewer`), and an agent id (never
    # decides): neither is offered the gates, and the session finishes with the eligible one
    db = tmp_path / "ledger.db"
    lead = WithRole(Verdicts(["approve"], id="lead-1"), role="lead")
    result = await run_headless(
        linear_workflow(),
        [lead, Verdicts(["approve"], id="agent:bot"), Verdicts(["approve"], id="bob")],
        runs=3,
        db=db,
    )
    assert [r.state for r in result.runs] == ["finished"] * 3
    with SqliteLedger(db) as ledger:
        assert {e.actor for e in ledger.events(types=["gate.decided"])} == {"bob"}


async def test_a_refused_decision_is_logged_and_the_session_goes_on(tmp_path: Path) -> None:
    # a reviewer whose decision the gate refuses (here: escalating with nobody to escalate to)
    # does not stop the session; the gate waits for someone else
    from coimprove import Decision

    def escalate(request: GateRequest) -> Decision:
        return Decision(verdict="escalate", reviewer="eve", digest=request.proposal.digest)

    policy = tmp_path / "flat.yaml"
    policy.write_text("name: flat\ndefaults:\n  escalation: []\n")
    db = tmp_path / "ledger.db"
    result = await run_headless(
        linear_workflow(),
        [Verdicts([escalate], id="eve", dwell_s=5), Verdicts(["approve"], id="bob", dwell_s=50)],
        db=db,
        policy=str(policy),
    )
    assert [r.state for r in result.runs] == ["finished"]
    with SqliteLedger(db) as ledger:
        assert [e.actor for e in ledger.events(types=["gate.decided"])] == ["bob"]
