"""ModelReviewer: a chat model answers gates through the Reviewer protocol (kind ``model``)."""

from __future__ import annotations

import pytest

from coimprove import Decision, run_headless
from coimprove.agents import FakeChatModel, ModelReviewer
from coimprove.ledger import SqliteLedger
from coimprove.model import GateRequest, Requirement
from coimprove.protocols import ReviewContext, Reviewer
from coimprove.reviewers import FixedClock
from coimprove.testing import proposal
from tests.agents.conftest import FAST, reply
from tests.helpers import linear_workflow


def _decisions(db: object) -> list[tuple[float, Decision]]:
    with SqliteLedger(db) as ledger:  # type: ignore[arg-type]
        return [
            (e.at, Decision.model_validate(e.data["decision"]))
            for e in ledger.events(types=["gate.decided"])
        ]


def test_model_reviewer_is_a_reviewer_of_kind_model() -> None:
    reviewer = ModelReviewer("fake", id="ai-1")
    assert isinstance(reviewer, Reviewer)
    assert reviewer.kind == "model" and reviewer.id == "ai-1"
    assert ModelReviewer(FakeChatModel()).id == "model:fake"


async def test_model_reviewer_approves_gates_headless_and_is_recorded_as_model() -> None:
    model = FakeChatModel(responses=[reply("review_approve")])
    reviewer = ModelReviewer(model, id="ai-1", think_s=12.0, retry=FAST)
    result = await run_headless(linear_workflow("wf-ai", pairs=2), [reviewer])
    assert [r.state for r in result.runs] == ["finished"]
    decided = _decisions(result.db)
    assert len(decided) == 2
    for _, decision in decided:
        assert decision.verdict == "approve"
        assert decision.reviewer == "ai-1" and decision.reviewer_kind == "model"
        assert decision.note == "Sound and small."
    with SqliteLedger(result.db) as ledger:
        opened = {e.gate_id: e.at for e in ledger.events(types=["gate.opened"])}
        decided_at = {e.gate_id: e.at for e in ledger.events(types=["gate.decided"])}
        views = ledger.events(types=["gate.viewed", "detail.viewed"])
    for gate_id, at in decided_at.items():
        assert at - opened[gate_id] == pytest.approx(12.0)  # timed on the simulated clock
    assert {v.type for v in views} == {"gate.viewed", "detail.viewed"}  # it read the payload
    prompt = str(model.calls[0][1].content)
    assert "idea 0 v1" in prompt and '"lr": 0.1' in prompt


async def test_model_reviewer_request_changes_loops_back_with_its_rationale() -> None:
    model = FakeChatModel(responses=[reply("review_changes"), reply("review_approve")])
    reviewer = ModelReviewer(model, id="ai-1", think_s=5.0, retry=FAST)
    result = await run_headless(linear_workflow("wf-ai-rc"), [reviewer])
    assert result.runs[0].state == "finished"
    (_, first), (_, second) = _decisions(result.db)
    assert first.verdict == "request_changes" and first.note == "Add a baseline run."
    assert second.verdict == "approve"
    assert "Earlier reviewer note this proposal answers: Add a baseline run." in str(
        model.calls[1][1].content
    )


async def test_model_reviewer_cannot_answer_high_risk_gates_under_the_default_policy() -> None:
    model = FakeChatModel(responses=[reply("review_approve")])
    reviewer = ModelReviewer(model, id="ai-1", think_s=1.0, retry=FAST)
    result = await run_headless(linear_workflow("wf-ai-high", risk="high"), [reviewer])
    assert model.calls == []  # the policy keeps high-risk gates for people
    assert _decisions(result.db) == []
    with SqliteLedger(result.db) as ledger:  # nobody eligible: it failed closed at the timeout
        assert len(ledger.events(types=["gate.timed_out"])) == 1


def _request(allowed: tuple[str, ...]) -> GateRequest:
    requirement = Requirement(
        policy="p",
        rule="r",
        roles=("reviewer",),
        quorum=1,
        reviewer_kinds=("model",),
        allowed=allowed,  # type: ignore[arg-type]
        timeout_s=None,
        on_timeout="reject",
        min_review_seconds=0,
        escalation=(),
    )
    return GateRequest(
        gate_id="r-1.g.1",
        run_id="r-1",
        graph="g",
        gate="g",
        round=1,
        proposal=proposal(),
        requirement=requirement,
    )


async def test_a_verdict_the_gate_does_not_allow_falls_back_and_says_so() -> None:
    model = FakeChatModel(responses=[reply("review_changes")])
    reviewer = ModelReviewer(model, id="ai-1", think_s=3.0, retry=FAST)
    review = await reviewer.review(
        _request(("approve", "reject")), ReviewContext(clock=FixedClock(100.0))
    )
    assert review.decision.verdict == "reject"
    assert review.decision.note.startswith("(model said request_changes; not allowed here)")
    assert review.decided_at == 103.0
    assert [v.what for v in review.views] == ["gate"]  # no detail to open


async def test_an_unparsable_review_fails_loudly_not_as_an_approval() -> None:
    from coimprove.agents import AgentOutputError

    model = FakeChatModel(responses=['{"verdict": "maybe"}'])
    reviewer = ModelReviewer(model, id="ai-1", retry=FAST)
    with pytest.raises(AgentOutputError, match="reviewer:ai-1"):
        await reviewer.review(_request(("approve", "reject")), ReviewContext(FixedClock(0.0)))


async def test_a_recorder_passed_to_the_reviewer_sees_its_model_calls() -> None:
    from coimprove.agents import ModelCallRecorder

    seen: list[dict[str, object]] = []
    model = FakeChatModel(responses=[reply("review_approve")])
    reviewer = ModelReviewer(
        model, id="ai-1", retry=FAST, callbacks=[ModelCallRecorder(seen.append)]
    )
    await reviewer.review(_request(("approve", "reject")), ReviewContext(FixedClock(0.0)))
    assert len(seen) == 1 and seen[0]["agent"] == "reviewer:ai-1" and seen[0]["model"] == "fake"


async def test_a_headless_model_reviewers_calls_are_in_the_ledger_and_the_report() -> None:
    from coimprove.metrics import report

    model = FakeChatModel(responses=[reply("review_approve")])
    reviewer = ModelReviewer(model, id="ai-1", think_s=12.0, retry=FAST)
    result = await run_headless(linear_workflow("wf-ai-rec", pairs=2), [reviewer])
    with SqliteLedger(result.db) as ledger:
        calls = ledger.events(types=["model.called"])
        usage = report(ledger).model
    assert [(c.actor, c.gate_id is not None) for c in calls] == [("ai-1", True)] * 2
    assert usage.calls == 2 and usage.by_actor["ai-1"]["calls"] == 2
    assert usage.tokens > 0
    assert usage.human_wait_s == pytest.approx(24.0)  # two gates, 12 s each
    assert reviewer.callbacks == []  # the session's recorder is detached afterwards
