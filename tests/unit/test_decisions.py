"""Deciding gates through the runner: every verdict, and every refusal changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coimprove import (
    Decision,
    DigestMismatchError,
    DuplicateReviewerError,
    GateClosedError,
    InvalidDecisionError,
    ReviewerNotAllowedError,
    Runner,
    SelfApprovalError,
    UnknownGateError,
)
from coimprove.gates import GateRecord
from tests.helpers import linear_workflow


def _decision(gate: GateRecord, verdict: str, reviewer: str = "alice", **kw: Any) -> Decision:
    return Decision(verdict=verdict, reviewer=reviewer, digest=gate.proposal.digest, **kw)  # type: ignore[arg-type]


async def _started(runner: Runner, tmp_path: Path, **kw: Any) -> tuple[str, GateRecord, Path]:
    effects = tmp_path / "effects.txt"
    info = await runner.start(linear_workflow(side_effects=effects, **kw))
    assert info.state == "waiting"
    (gate,) = runner.open_gates(info.run_id)
    return info.run_id, gate, effects


def _types(runner: Runner, run_id: str) -> list[str]:
    return [e.type for e in runner.ledger.events(run_id=run_id)]


async def test_approve_runs_the_effect_once_and_finishes(runner: Runner, tmp_path: Path) -> None:
    run_id, gate, effects = await _started(runner, tmp_path)
    recorded = runner.decide(gate.gate_id, _decision(gate, "approve"))
    assert recorded.outcome is not None and recorded.outcome.outcome == "approve"
    assert not effects.exists()  # deciding only writes the ledger
    await runner.advance()
    assert runner.info(run_id).state == "finished"
    assert effects.read_text().count("\n") == 1
    assert _types(runner, run_id) == [
        "run.started",
        "gate.opened",
        "gate.decided",
        "gate.resolved",
        "effect.started",
        "effect.finished",
        "gate.resumed",
        "run.finished",
    ]
    state = await runner.state(run_id)
    assert state["done"] == {"0": {"lr": 0.1, "step": 0}}
    assert runner.ledger.verify().ok


async def test_request_changes_sends_the_note_back_to_the_agent(
    runner: Runner, tmp_path: Path
) -> None:
    run_id, gate, _ = await _started(runner, tmp_path)
    runner.decide(gate.gate_id, _decision(gate, "request_changes", note="cite the baseline"))
    await runner.advance()
    (second,) = runner.open_gates(run_id)
    assert second.request.round == 2
    assert second.request.feedback == "cite the baseline"
    assert second.proposal.title == "idea 0 v2"
    assert second.proposal.body == "revised after: cite the baseline"
    assert second.proposal.revises == gate.proposal.id


async def test_reject_ends_the_path_without_the_effect(runner: Runner, tmp_path: Path) -> None:
    run_id, gate, effects = await _started(runner, tmp_path)
    runner.decide(gate.gate_id, _decision(gate, "reject", note="unsafe"))
    await runner.advance()
    assert runner.info(run_id).state == "finished"
    assert not effects.exists()
    assert "effect.started" not in _types(runner, run_id)


async def test_edit_changes_the_payload_and_the_digest_the_effect_uses(
    runner: Runner, tmp_path: Path
) -> None:
    run_id, gate, effects = await _started(runner, tmp_path)
    recorded = runner.decide(
        gate.gate_id, _decision(gate, "edit", edited_payload={"lr": 0.01, "step": 0})
    )
    assert recorded.outcome is not None and recorded.outcome.outcome == "edit"
    assert recorded.outcome.digest != gate.proposal.digest
    await runner.advance()
    assert "{'lr': 0.01, 'step': 0}" in effects.read_text()
    started = runner.ledger.events(run_id=run_id, types=["effect.started"])
    assert started[0].data["digest"] == recorded.outcome.digest


async def test_escalate_reopens_the_gate_for_the_next_role(runner: Runner, tmp_path: Path) -> None:
    run_id, gate, effects = await _started(runner, tmp_path)
    runner.decide(gate.gate_id, _decision(gate, "escalate", note="above my pay grade"))
    await runner.advance()
    (lead_gate,) = runner.open_gates(run_id)
    assert lead_gate.request.requirement.roles == ("lead",)
    assert lead_gate.request.requirement.level == 1
    with pytest.raises(ReviewerNotAllowedError, match="lead"):
        runner.decide(lead_gate.gate_id, _decision(lead_gate, "approve", reviewer="bob"))
    with pytest.raises(InvalidDecisionError, match="nobody to escalate to"):
        runner.decide(lead_gate.gate_id, _decision(lead_gate, "escalate", reviewer="lead-carol"))
    runner.decide(lead_gate.gate_id, _decision(lead_gate, "approve", reviewer="lead-carol"))
    await runner.advance()
    assert effects.read_text().count("\n") == 1
    assert "gate.escalated" in _types(runner, run_id)


async def test_refusals_name_the_problem_and_record_nothing(runner: Runner, tmp_path: Path) -> None:
    _run_id, gate, _ = await _started(runner, tmp_path)
    before = runner.ledger.last_seq()
    with pytest.raises(UnknownGateError, match="no gate 'nope'"):
        runner.decide("nope", _decision(gate, "approve"))
    stale = Decision(verdict="approve", reviewer="alice", digest="sha256:" + "0" * 64)
    with pytest.raises(DigestMismatchError, match="proposal changed"):
        runner.decide(gate.gate_id, stale)
    with pytest.raises(SelfApprovalError, match="separation of duties"):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="agent:propose0"))
    assert runner.ledger.last_seq() == before
    runner.decide(gate.gate_id, _decision(gate, "approve"))
    with pytest.raises(GateClosedError, match="already resolved"):
        runner.decide(gate.gate_id, _decision(gate, "reject", reviewer="bob"))


async def test_the_author_of_a_proposal_cannot_approve_it(runner: Runner, tmp_path: Path) -> None:
    _run_id, gate, _ = await _started(runner, tmp_path)
    with pytest.raises(SelfApprovalError):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer=gate.proposal.author))


async def test_a_reviewer_the_policy_does_not_know_is_refused(
    runner: Runner, tmp_path: Path
) -> None:
    policy = tmp_path / "closed.yaml"
    policy.write_text("name: closed\nreviewers:\n  alice: [reviewer]\n")
    info = await runner.start(linear_workflow(), policy=str(policy))
    (gate,) = runner.open_gates(info.run_id)
    with pytest.raises(ReviewerNotAllowedError, match="'mallory' does not hold"):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="mallory"))
    runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="alice"))


async def test_a_reviewer_kind_the_rule_excludes_is_refused(runner: Runner, tmp_path: Path) -> None:
    info = await runner.start(linear_workflow(risk="high"))  # default: high risk -> human/scripted
    (gate,) = runner.open_gates(info.run_id)
    with pytest.raises(ReviewerNotAllowedError, match="not 'model'"):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer_kind="model"))


async def test_quorum_needs_distinct_reviewers(runner: Runner, tmp_path: Path) -> None:
    _run_id, gate, effects = await _started(runner, tmp_path, policy="strict", kind="code")
    assert gate.request.requirement.quorum == 2
    first = runner.decide(gate.gate_id, _decision(gate, "approve"))
    assert first.outcome is None
    with pytest.raises(DuplicateReviewerError, match="cannot count twice"):
        runner.decide(gate.gate_id, _decision(gate, "approve"))
    await runner.advance()
    assert not effects.exists()
    second = runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="bob"))
    assert second.outcome is not None and second.outcome.reviewers == ("alice", "bob")
    await runner.advance()
    assert effects.read_text().count("\n") == 1


async def test_open_gates_lists_every_run_oldest_first_with_the_decisions_so_far(
    runner: Runner, tmp_path: Path
) -> None:
    _, first, _ = await _started(runner, tmp_path, policy="strict", kind="code")
    second_run, second, _ = await _started(runner, tmp_path)
    done_run, done, _ = await _started(runner, tmp_path)
    runner.decide(first.gate_id, _decision(first, "approve"))  # one of a quorum of two
    runner.decide(done.gate_id, _decision(done, "reject"))
    listed = runner.open_gates()
    assert [g.gate_id for g in listed] == [first.gate_id, second.gate_id]
    assert [d.reviewer for _, d in listed[0].decisions] == ["alice"]
    assert listed[0].approvers() == ["alice"] and listed[1].decisions == []
    assert [g.gate_id for g in runner.open_gates(second_run)] == [second.gate_id]
    assert runner.open_gates(done_run) == []
    assert listed[0].request == runner.gate(first.gate_id).request


async def test_an_edit_under_quorum_needs_approval_of_the_edited_version(
    runner: Runner, tmp_path: Path
) -> None:
    _run_id, gate, effects = await _started(runner, tmp_path, policy="strict", kind="code")
    runner.decide(gate.gate_id, _decision(gate, "approve"))
    edited = runner.decide(
        gate.gate_id, _decision(gate, "edit", reviewer="bob", edited_payload={"lr": 0.5})
    )
    assert edited.outcome is None  # alice approved the old digest; only bob counts for the new
    with pytest.raises(DigestMismatchError):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="carol"))
    current = runner.gate(gate.gate_id)
    done = runner.decide(gate.gate_id, _decision(current, "approve"))
    assert done.outcome is not None and done.outcome.outcome == "edit"
    await runner.advance()
    assert "{'lr': 0.5}" in effects.read_text()


async def test_request_changes_needs_a_note() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a note"):
        Decision(verdict="request_changes", reviewer="a", digest="sha256:" + "0" * 64)


async def test_an_overdue_gate_is_rejected_never_approved(runner: Runner, tmp_path: Path) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text("name: fast\ndefaults:\n  timeout_s: 60\n  on_timeout: reject\n")
    effects = tmp_path / "effects.txt"
    info = await runner.start(linear_workflow(side_effects=effects), policy=str(policy))
    (gate,) = runner.open_gates(info.run_id)
    clock = runner.clock
    clock.advance(59)  # type: ignore[attr-defined]
    await runner.advance()
    assert runner.info(info.run_id).state == "waiting"
    clock.advance(2)  # type: ignore[attr-defined]
    await runner.advance()
    assert runner.info(info.run_id).state == "finished"
    resolved = runner.ledger.events(gate_id=gate.gate_id, types=["gate.resolved"])[0]
    assert resolved.data["outcome"] == "reject" and resolved.data["reason"] == "timeout"
    assert not effects.exists()
    with pytest.raises(GateClosedError, match="timed out"):
        runner.decide(gate.gate_id, _decision(gate, "approve"))


async def test_views_are_recorded_with_the_reviewer(runner: Runner, tmp_path: Path) -> None:
    _run_id, gate, _ = await _started(runner, tmp_path)
    runner.view(gate.gate_id, "alice")
    runner.view(gate.gate_id, "alice", "detail")
    views = runner.ledger.events(gate_id=gate.gate_id, types=["gate.viewed", "detail.viewed"])
    assert [(v.type, v.actor) for v in views] == [
        ("gate.viewed", "alice"),
        ("detail.viewed", "alice"),
    ]


async def test_many_runs_with_several_gates_each(runner: Runner, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    wf = linear_workflow(side_effects=effects, pairs=3)
    runs = [await runner.start(wf) for _ in range(5)]
    for _ in range(3):
        for gate in runner.open_gates():
            runner.decide(gate.gate_id, _decision(gate, "approve"))
        await runner.advance()
    assert all(runner.info(r.run_id).state == "finished" for r in runs)
    lines = effects.read_text().splitlines()
    assert len(lines) == 15 and len({line.split()[0] for line in lines}) == 15


async def test_a_decision_after_the_deadline_is_refused_before_the_timeout_is_recorded(
    runner: Runner, tmp_path: Path
) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text("name: fast\ndefaults:\n  timeout_s: 60\n  on_timeout: reject\n")
    effects = tmp_path / "effects.txt"
    info = await runner.start(linear_workflow(side_effects=effects), policy=str(policy))
    (gate,) = runner.open_gates(info.run_id)
    before = runner.ledger.last_seq()
    runner.clock.advance(60)  # type: ignore[attr-defined]
    # nobody has called advance(), so no gate.timed_out is recorded yet: the gate still fails
    # closed at its deadline (the same instant expire_gate uses)
    with pytest.raises(GateClosedError, match=r"passed its deadline .*fails closed"):
        runner.decide(gate.gate_id, _decision(gate, "approve"))
    assert runner.ledger.last_seq() == before
    await runner.advance()
    resolved = runner.ledger.events(gate_id=gate.gate_id, types=["gate.resolved"])[0]
    assert resolved.data["outcome"] == "reject" and resolved.data["reason"] == "timeout"
    assert not effects.exists()


async def test_a_view_dated_after_its_decision_is_refused(runner: Runner, tmp_path: Path) -> None:
    from coimprove import ViewEvent

    _run_id, gate, _ = await _started(runner, tmp_path)
    opened = gate.opened.at
    before = runner.ledger.last_seq()
    late_view = ViewEvent(what="detail", at=opened + 20)
    with pytest.raises(
        InvalidDecisionError, match=r"detail view dated .* comes after the decision"
    ):
        runner.decide(gate.gate_id, _decision(gate, "approve"), views=[late_view], at=opened + 10)
    assert runner.ledger.last_seq() == before
    view = ViewEvent(what="gate", at=opened + 5)
    runner.decide(gate.gate_id, _decision(gate, "approve"), views=[view], at=opened + 10)


@pytest.mark.parametrize("reviewer", [" alice", "alice ", "", "   ", "al\tice", "bob\n"])
def test_a_reviewer_id_with_stray_whitespace_is_refused(reviewer: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reviewer"):
        Decision(verdict="approve", reviewer=reviewer, digest="sha256:" + "0" * 64)


async def test_ids_that_differ_only_in_case_are_one_reviewer(
    runner: Runner, tmp_path: Path
) -> None:
    _run_id, gate, effects = await _started(runner, tmp_path, policy="strict", kind="code")
    assert runner.decide(gate.gate_id, _decision(gate, "approve")).outcome is None
    before = runner.ledger.last_seq()
    with pytest.raises(DuplicateReviewerError, match="cannot count twice"):
        runner.decide(gate.gate_id, _decision(gate, "approve", reviewer="Alice"))
    author = gate.proposal.author  # agent:propose0
    for reviewer in (author.upper(), "Agent:someone", author.capitalize()):
        with pytest.raises(SelfApprovalError, match="separation of duties"):
            runner.decide(gate.gate_id, _decision(gate, "approve", reviewer=reviewer))
    with pytest.raises(InvalidDecisionError, match="whitespace"):
        runner.view(gate.gate_id, "alice ")
    assert runner.ledger.last_seq() == before
    assert not effects.exists()


def test_an_edited_payload_that_is_not_json_is_refused_with_its_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"edited_payload .field 'lr'. is not JSON data"):
        Decision(
            verdict="edit",
            reviewer="bob",
            digest="sha256:" + "0" * 64,
            edited_payload={"lr": float("nan"), "step": 1},
        )


async def test_a_ledger_recorded_before_reviewer_ids_were_checked_still_reads(
    runner: Runner, tmp_path: Path
) -> None:
    # an older coimprove recorded " bob" as it was given; reading the gate shows it as recorded
    run_id, gate, _ = await _started(runner, tmp_path, policy="strict", kind="code")
    old = {"verdict": "approve", "reviewer": " bob", "digest": gate.proposal.digest}
    runner.ledger.append(
        "gate.decided",
        at=1001.0,
        run_id=run_id,
        gate_id=gate.gate_id,
        actor=" bob",
        data={"verdict": "approve", "reviewer_kind": "human", "decision": old},
    )
    (listed,) = runner.open_gates(run_id)
    assert [d.reviewer for _, d in listed.decisions] == [" bob"]
    assert runner.gate(gate.gate_id).approvers() == [" bob"]
