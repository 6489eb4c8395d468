"""`Runner.advance(run_id)` on its fast path: what the lease holder knows must not hide a timeout
or a decision."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from coimprove import END, START, Decision, Proposal, RunError, Runner, Workflow
from coimprove.state import Vouched
from tests.helpers import ToyState, linear_workflow


async def test_the_lease_holder_still_expires_a_gate_once_its_deadline_passes(
    runner: Runner, tmp_path: Path
) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text("name: fast\ndefaults:\n  timeout_s: 60\n  on_timeout: reject\n")
    info = await runner.start(linear_workflow(pairs=2), policy=str(policy))
    clock = runner.clock
    clock.advance(59)  # type: ignore[attr-defined]
    await runner.advance(info.run_id)  # the runner opened the gate and knows its deadline
    assert runner.info(info.run_id).state == "waiting"
    clock.advance(2)  # type: ignore[attr-defined]
    await runner.advance(info.run_id)
    (timed_out,) = runner.ledger.events(run_id=info.run_id, types=["gate.timed_out"])
    assert timed_out.gate_id == info.open_gates[0]
    assert runner.info(info.run_id).state == "finished"  # rejected: the path ends


async def test_a_decision_recorded_by_another_runner_is_applied_by_the_lease_holder(
    runner: Runner, tmp_path: Path
) -> None:
    workflow = linear_workflow(pairs=2)
    info = await runner.start(workflow)
    where = getattr(runner.ledger, "postgres_dsn", None) or tmp_path / "ledger.db"
    async with Runner(where, clock=runner.clock) as other:  # e.g. the CLI
        (gate_id,) = info.open_gates
        gate = other.gate(gate_id)
        other.decide(
            gate_id, Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest)
        )
    assert await runner.advance(info.run_id) == [info.run_id]
    after = runner.info(info.run_id)
    assert after.state == "waiting" and after.open_gates != info.open_gates
    assert len(runner.ledger.events(gate_id=gate_id, types=["gate.resumed"])) == 1


def _two_gates_at_once() -> Workflow:
    """START fans out to two agents; both gates are pending at the same time."""

    def agent(title: str) -> Any:
        return lambda state: Proposal(kind="idea", title=title, author="agent:x")

    wf = Workflow("fanout", state=ToyState)
    for side in ("a", "b"):
        wf.agent(f"propose_{side}", agent(side))
        wf.gate(f"review_{side}", proposal_from=f"propose_{side}", on_approve=f"apply_{side}")
        wf.effect(f"apply_{side}", lambda s, a: {}, gate=f"review_{side}")
        wf.edge(START, f"propose_{side}")
        wf.edge(f"propose_{side}", f"review_{side}")
        wf.edge(f"apply_{side}", END)
    return wf


def _approve(runner: Runner, gate_id: str) -> None:
    digest = runner.gate(gate_id).proposal.digest
    runner.decide(gate_id, Decision(verdict="approve", reviewer="alice", digest=digest))


async def test_gates_settled_partly_here_and_partly_elsewhere_are_all_resumed(
    runner: Runner, tmp_path: Path
) -> None:
    info = await runner.start(_two_gates_at_once())
    first, second = info.open_gates
    _approve(runner, first)  # this runner knows of this one only
    where = getattr(runner.ledger, "postgres_dsn", None) or tmp_path / "ledger.db"
    async with Runner(where, clock=runner.clock) as other:
        _approve(other, second)
    await runner.advance(info.run_id)
    assert runner.info(info.run_id).state == "finished"
    for gate_id in (first, second):
        assert len(runner.ledger.events(gate_id=gate_id, types=["gate.resumed"])) == 1
        assert len(runner.ledger.events(gate_id=gate_id, types=["effect.finished"])) == 1


async def test_gates_all_settled_here_are_resumed_without_reading_them_back(
    runner: Runner, tmp_path: Path
) -> None:
    info = await runner.start(_two_gates_at_once())
    for gate_id in info.open_gates:
        _approve(runner, gate_id)
    reads: list[str] = []
    query = runner.ledger.query

    def counting(sql: str, params: Any = ()) -> Any:
        reads.append(sql)
        return query(sql, params)

    runner.ledger.query = counting  # type: ignore[method-assign]
    await runner.advance(info.run_id)
    runner.ledger.query = query  # type: ignore[method-assign]
    assert not any("gate.resolved" in sql for sql in reads)  # the settled gates were known
    assert runner.info(info.run_id).state == "finished"
    resumed = runner.ledger.events(run_id=info.run_id, types=["gate.resumed"])
    assert [e.gate_id for e in resumed] == list(info.open_gates)  # in the order decided


class _LoopState(ToyState, total=False):
    again: bool


def _loop_back_once(ran: list[str], forge: bool = False) -> Workflow:
    """propose -> review -> (forge?) -> apply -> again -> apply -> END: one approval, the effect
    reached twice in the step that resumes the gate."""
    wf = Workflow("loop", state=_LoopState)
    wf.agent("propose", lambda s: Proposal(kind="idea", title="v1", author="agent:propose"))
    wf.gate("review", proposal_from="propose", on_approve="forge" if forge else "apply")

    def apply(state: Any, approved: Any) -> dict[str, Any]:
        ran.append(approved.proposal.title)
        return {"done": {**(state.get("done") or {}), "n": len(ran)}}

    def forge_node(state: Any) -> dict[str, Any]:  # approves another version in state only
        other = Proposal(kind="idea", title="v2 (never reviewed)", author="agent:propose")
        approval = {**state["approvals"]["review"], "digest": other.digest}
        return {
            "proposals": {"propose": other.model_dump(mode="json")},
            "approvals": {"review": approval},
        }

    wf.effect("apply", apply, gate="review")
    wf.node("again", lambda s: {"again": True})
    wf.node("forge", forge_node)
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("forge", "apply")
    wf.route(
        "apply",
        lambda s: "end" if s.get("again") else "again",
        {"end": END, "again": "again"},
    )
    wf.edge("again", "apply")
    return wf


async def test_an_effect_of_a_gate_resumed_here_reads_the_ledger_only_when_it_runs_again(
    runner: Runner,
) -> None:
    ran: list[str] = []
    info = await runner.start(_loop_back_once(ran))
    (gate_id,) = info.open_gates
    _approve(runner, gate_id)
    reads: list[Any] = []
    events = runner.ledger.events

    def counting(**kw: Any) -> Any:
        if kw.get("gate_id") == gate_id and "effect.started" in (kw.get("types") or ()):
            reads.append(kw)
        return events(**kw)

    runner.ledger.events = counting  # type: ignore[method-assign]
    await runner.advance(info.run_id)
    runner.ledger.events = events  # type: ignore[method-assign]
    assert runner.info(info.run_id).state == "finished"
    assert ran == ["v1"]  # the second visit returned the recorded update without running
    assert len(reads) == 1  # the first visit had the runner's reading of the ledger
    kinds = [e.type for e in runner.ledger.events(gate_id=gate_id, types=["effect.started"])]
    assert kinds == ["effect.started"]


async def test_a_forged_approval_in_state_is_refused_on_the_fast_path_too(
    runner: Runner,
) -> None:
    ran: list[str] = []
    info = await runner.start(_loop_back_once(ran, forge=True))
    _approve(runner, info.open_gates[0])
    await runner.advance(info.run_id)
    after = runner.info(info.run_id)
    assert after.state == "failed" and "has no approval of digest" in (after.error or "")
    assert ran == []


def test_a_vouched_approval_is_used_once_per_effect_and_not_after_the_lease() -> None:
    vouched = Vouched({"g": {"outcome": "approve"}}, until=time.time() + 60)
    assert vouched.take("g", "apply") == {"outcome": "approve"}
    assert vouched.take("g", "apply") is None  # a second run of the same effect reads the ledger
    assert vouched.take("g", "notify") == {"outcome": "approve"}
    assert vouched.take("other", "apply") is None
    assert Vouched({"g": {}}, until=time.time() - 1).take("g", "apply") is None


async def test_start_reports_what_the_ledger_says(runner: Runner) -> None:
    """`start` describes the run from its own first step (no ledger query); it must agree with
    `info`, which derives the run from ledger events alone: paused at gates, fanned out to two
    gates at once, and finished without any gate."""
    waiting = await runner.start(linear_workflow(pairs=2))
    fanned = await runner.start(_two_gates_at_once())
    empty = Workflow("no-gates", state=ToyState)
    empty.node("noop", lambda state: {})
    empty.edge(START, "noop")
    empty.edge("noop", END)
    finished = await runner.start(empty)
    assert [waiting.state, fanned.state, finished.state] == ["waiting", "waiting", "finished"]
    assert len(fanned.open_gates) == 2 and finished.open_gates == ()
    for info in (waiting, fanned, finished):
        assert info == runner.info(info.run_id)


async def test_inputs_json_cannot_hold_are_refused_before_the_run_exists(runner: Runner) -> None:
    with pytest.raises(RunError, match="run inputs must be JSON data"):
        await runner.start(linear_workflow(), {"budget": float("inf")}, run_id="r-inf")
    assert runner.runs() == []
