"""Reward capture: a revision after request_changes that did not change its substance is
flagged on the gate, recorded in gate.opened and counted by the report (ledger only)."""

from __future__ import annotations

from typing import Any

from coimprove import END, START, Decision, Proposal, Runner, Workflow
from coimprove.metrics import report
from coimprove.resubmission import compare
from coimprove.workflow import AgentContext
from tests.helpers import ToyState


def _p(payload: dict[str, Any], title: str = "t", body: str = "") -> Proposal:
    return Proposal(kind="idea", title=title, body=body, payload=payload, author="agent:a")


def test_compare_unchanged_trivial_and_changed() -> None:
    base = _p({"method": "Use the  baseline", "lr": 1.0})
    assert compare(base, _p({"method": "Use the  baseline", "lr": 1.0}, title="v2")).change == (
        "unchanged"
    )
    trivial = compare(base, _p({"lr": 1, "method": "use the baseline "}, body="revised"))
    assert trivial.change == "trivial" and trivial.flagged
    changed = compare(base, _p({"method": "Use the  baseline", "lr": 0.5}))
    assert changed.change == "changed" and not changed.flagged
    assert changed.changed_fields == ("payload",)
    bodies = compare(_p({}, body="a  b"), _p({}, body="A b"))
    assert bodies.compared == "body" and bodies.change == "trivial"


def _workflow(revise: str) -> Workflow:
    """One agent, one gate; on a revision the payload is kept, re-spaced, or changed."""
    wf = Workflow(f"resub-{revise}", state=ToyState)

    def propose(state: dict[str, Any], ctx: AgentContext) -> Proposal:
        text = "train on split A"
        if ctx.feedback is not None:
            text = {"same": text, "space": "Train  on split A ", "new": "train on split B"}[revise]
        title = "plan" if ctx.feedback is None else "plan (revised as asked)"
        return Proposal(kind="idea", title=title, payload={"plan": text}, author="agent:a")

    def apply(state: dict[str, Any], approved: Any) -> dict[str, Any]:
        return {"done": {"0": approved.proposal.payload}}

    wf.agent("propose", propose, kind="idea")
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", apply, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    return wf


async def _sent_back_then_approved(runner: Runner, revise: str) -> str:
    info = await runner.start(_workflow(revise))
    (first,) = runner.open_gates(info.run_id)
    assert first.request.resubmission is None
    runner.decide(
        first.gate_id,
        Decision(
            verdict="request_changes", reviewer="alice", digest=first.proposal.digest, note="why A?"
        ),
    )
    await runner.advance()
    (second,) = runner.open_gates(info.run_id)
    runner.decide(
        second.gate_id,
        Decision(verdict="approve", reviewer="bob", digest=second.proposal.digest),
    )
    await runner.advance()
    return second.gate_id


async def test_unchanged_resubmission_is_flagged_and_counted(runner: Runner) -> None:
    gate_id = await _sent_back_then_approved(runner, "same")
    opened = runner.ledger.events(gate_id=gate_id, types=["gate.opened"])[0]
    recorded = opened.data["request"]["resubmission"]
    assert recorded["change"] == "unchanged" and recorded["previous_gate_id"].endswith(".1")
    r = report(runner.ledger).resubmissions
    assert (r.resubmissions, r.unchanged, r.approved_unchanged) == (1, 1, 1)
    assert r.by_reviewer["bob"].approved_unchanged_rate == 1.0
    assert list(r.by_agent) == ["resub-same/propose"]


async def test_whitespace_only_resubmission_is_counted(runner: Runner) -> None:
    gate_id = await _sent_back_then_approved(runner, "space")
    assert runner.gate(gate_id).request.resubmission.change == "trivial"  # type: ignore[union-attr]
    r = report(runner.ledger).resubmissions
    assert (r.resubmissions, r.unchanged, r.unchanged_rate) == (1, 1, 1.0)


async def test_changed_resubmission_is_not_counted(runner: Runner) -> None:
    gate_id = await _sent_back_then_approved(runner, "new")
    assert runner.gate(gate_id).request.resubmission.change == "changed"  # type: ignore[union-attr]
    r = report(runner.ledger).resubmissions
    assert (r.resubmissions, r.unchanged, r.approved_unchanged) == (1, 0, 0)
    assert r.unchanged_rate == 0.0 and r.approved_unchanged_rate is None
