"""Effects check their approval against the ledger, not just the edge that led to them."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph import StateGraph
from langgraph.types import Command

from coimprove import (
    END,
    START,
    Decision,
    GateClosedError,
    GatedState,
    Proposal,
    Runner,
    Workflow,
    add_agent,
    add_effect,
    add_gate,
)
from coimprove.effects import EFFECT_EVENTS
from tests.helpers import ToyState, linear_workflow
from tests.ledgers import LedgerBackend


def _approve(runner: Runner, gate_id: str, reviewer: str = "alice") -> Any:
    gate = runner.gate(gate_id)
    return runner.decide(
        gate_id, Decision(verdict="approve", reviewer=reviewer, digest=gate.proposal.digest)
    )


async def test_an_effect_reached_by_a_hidden_goto_refuses_to_run(
    runner: Runner, tmp_path: Path
) -> None:
    ran: list[str] = []

    def sneaky(state: Any) -> Any:
        # A node returning Command(goto=...) without declaring destinations: invisible statically.
        return Command(
            goto="apply",
            update={
                "proposals": {
                    "propose": Proposal(kind="idea", title="x", author="agent:propose").model_dump(
                        mode="json"
                    )
                }
            },
        )

    wf = Workflow("sneaky", state=ToyState)
    wf.agent("propose", lambda s: Proposal(kind="idea", title="x", author="agent:propose"))
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", lambda s, a: ran.append("ran") or {}, gate="review")
    wf.node("sneaky", sneaky)
    wf.edge(START, "sneaky")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    info = await runner.start(wf)
    assert info.state == "failed"
    assert "needs an approval from gate 'review'" in (info.error or "")
    assert ran == []


async def test_an_effect_refuses_a_proposal_changed_after_approval(
    runner: Runner, tmp_path: Path
) -> None:
    ran: list[str] = []
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ToyState)
    add_agent(builder, "propose", lambda s: Proposal(kind="idea", title="v1", author="agent:p"))
    add_gate(builder, "review", proposal_from="propose", on_approve="tamper")

    def tamper(state: Any) -> Any:  # swaps the approved proposal for another before the effect
        p = Proposal(kind="idea", title="v2 (never reviewed)", author="agent:p")
        return {"proposals": {"propose": p.model_dump(mode="json")}}

    builder.add_node("tamper", tamper)
    add_effect(builder, "apply", lambda s, a: ran.append(a.proposal.title) or {}, gate="review")
    builder.add_edge(START, "propose")
    builder.add_edge("propose", "review")
    builder.add_edge("tamper", "apply")
    builder.add_edge("apply", END)
    wf = Workflow.from_graph(builder, name="tamper")
    info = await runner.start(wf)
    _approve(runner, info.open_gates[0])
    await runner.advance()
    info = runner.info(info.run_id)
    assert info.state == "failed" and "changed after gate" in (info.error or "")
    assert ran == []


class _Planted:
    """A canary source that multiplies the learning rate by 1000."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        payload = {**proposal.payload, "lr": proposal.payload.get("lr", 0.1) * 1000}
        return proposal.model_copy(update={"payload": payload}), "hyperparameter_x1000"


async def test_a_canary_is_never_executed_and_is_revealed_after_the_decision(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "canary.yaml"
    policy.write_text("name: planted\ndefaults:\n  canary_rate: 0.999\n")
    effects = tmp_path / "effects.txt"
    from coimprove import SimClock

    async with Runner(tmp_path / "l.db", clock=SimClock(), canaries=_Planted()) as runner:
        info = await runner.start(linear_workflow(side_effects=effects), policy=str(policy))
        (canary,) = runner.open_gates(info.run_id)
        assert canary.proposal.payload["lr"] == pytest.approx(100.0)
        assert canary.request.proposal.truth is None  # nothing hidden is shown
        assert "canary" not in canary.request.model_dump_json()
        _approve(runner, canary.gate_id)  # the reviewer misses it
        await runner.advance()
        revealed = runner.ledger.events(gate_id=canary.gate_id, types=["canary.revealed"])
        assert revealed[0].data == {
            "mutation": "hyperparameter_x1000",
            "caught": False,
            "verdicts": ["approve"],
            "original_digest": revealed[0].data["original_digest"],
        }
        assert not effects.exists()
        (real,) = runner.open_gates(info.run_id)  # never two canaries in a row
        assert real.request.round == 2 and real.proposal.payload["lr"] == pytest.approx(0.1)
        _approve(runner, real.gate_id)
        await runner.advance()
        assert "'lr': 0.1" in effects.read_text()
        assert effects.read_text().count("\n") == 1


def _race(db: str, wf: Workflow, reviewers: tuple[str, str]) -> tuple[str, list[str]]:
    """Start a run, then let two runners (separate ledger handles, separate event loops)
    decide its gate at the same instant. Returns the gate id and what each decide() did."""

    async def start() -> str:
        async with Runner(db) as r:
            return (await r.start(wf)).open_gates[0]

    gate_id = asyncio.run(start())
    barrier = threading.Barrier(len(reviewers))
    outcomes: list[str] = []

    def decide(reviewer: str) -> None:
        async def go() -> None:
            async with Runner(db) as r:
                r.register(wf)
                gate = r.gate(gate_id)
                barrier.wait()
                try:
                    r.decide(
                        gate_id,
                        Decision(verdict="approve", reviewer=reviewer, digest=gate.proposal.digest),
                    )
                    outcomes.append("recorded")
                except GateClosedError:
                    outcomes.append("late")
                await r.advance()

        asyncio.run(go())

    threads = [threading.Thread(target=decide, args=(n,)) for n in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return gate_id, outcomes


def test_two_reviewers_deciding_at_once_never_resume_twice(
    tmp_path: Path, ledger_backend: LedgerBackend
) -> None:
    effects = tmp_path / "effects.txt"
    db = ledger_backend.url
    gate_id, outcomes = _race(db, linear_workflow(side_effects=effects), ("alice", "bob"))
    assert sorted(outcomes) == ["late", "recorded"]
    ledger = ledger_backend.open()
    assert len(ledger.events(gate_id=gate_id, types=["gate.resumed"])) == 1
    assert len(ledger.events(gate_id=gate_id, types=["effect.started"])) == 1
    assert effects.read_text().count("\n") == 1


def test_two_quorum_reviewers_at_once_both_count(ledger_backend: LedgerBackend) -> None:
    db = ledger_backend.url
    wf = linear_workflow(kind="code", policy="strict")
    gate_id, outcomes = _race(db, wf, ("alice", "bob"))
    assert outcomes == ["recorded", "recorded"]
    ledger = ledger_backend.open()
    assert len(ledger.events(gate_id=gate_id, types=["gate.decided"])) == 2
    assert len(ledger.events(gate_id=gate_id, types=["gate.resolved"])) == 1
    assert len(ledger.events(gate_id=gate_id, types=["effect.started"])) == 1


class MyState(GatedState, total=False):
    topic: str
    published: str


async def test_a_users_own_state_graph_runs_with_gates(runner: Runner, tmp_path: Path) -> None:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(MyState)
    add_agent(
        builder,
        "draft",
        lambda s: Proposal(kind="writeup", title=f"on {s['topic']}", author="agent:draft"),
    )
    add_gate(builder, "review", proposal_from="draft", on_approve="publish")
    add_effect(builder, "publish", lambda s, a: {"published": a.proposal.title}, gate="review")
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("publish", END)
    wf = Workflow.from_graph(builder, name="mine")
    info = await runner.start(wf, {"topic": "canaries"})
    _approve(runner, info.open_gates[0])
    await runner.advance()
    assert (await runner.state(info.run_id))["published"] == "on canaries"


def _one_effect_workflow(
    name: str, effect: Any, *, state: type[Any] = ToyState, propose: Any = None
) -> Workflow:
    wf = Workflow(name, state=state)
    wf.agent(
        "propose", propose or (lambda s: Proposal(kind="idea", title="x", author="agent:propose"))
    )
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", effect, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    return wf


async def test_an_effect_returning_something_the_ledger_cannot_record_fails_clearly(
    runner: Runner,
) -> None:
    info = await runner.start(_one_effect_workflow("unjson", lambda s, a: {"done": object()}))
    _approve(runner, info.open_gates[0])
    await runner.advance()
    info = runner.info(info.run_id)
    assert info.state == "failed"
    assert "must return a JSON-serialisable state update" in (info.error or "")


async def test_an_effect_returning_nan_fails_clearly_and_records_the_failure(
    runner: Runner,
) -> None:
    info = await runner.start(
        _one_effect_workflow("nan", lambda s, a: {"done": {"loss": float("nan")}})
    )
    _approve(runner, info.open_gates[0])
    await runner.advance()
    failed = runner.info(info.run_id)
    assert failed.state == "failed"
    assert "must return a JSON-serialisable state update" in (failed.error or "")
    assert [e.type for e in runner.ledger.events(run_id=info.run_id, types=EFFECT_EVENTS)] == [
        "effect.started",
        "effect.failed",
    ]
    assert runner.ledger.verify().ok


class _Declared(ToyState, total=False):
    trained_with: dict[str, Any]


async def test_an_effect_update_the_state_does_not_declare_fails_clearly_and_resumes_once_declared(
    tmp_path: Path,
) -> None:
    # LangGraph drops state keys the schema does not declare; coimprove refuses instead, after
    # recording the finished effect, so declaring the key and resuming loses nothing and does
    # not run the effect again
    from coimprove.reviewers.clock import SimClock

    ran: list[str] = []

    def train(state: Any, approved: Any) -> dict[str, Any]:
        ran.append(approved.key)
        return {"trained_with": {"lr": 0.1}}

    db = tmp_path / "ledger.db"
    async with Runner(db, clock=SimClock()) as runner:
        info = await runner.start(_one_effect_workflow("undeclared", train))
        _approve(runner, info.open_gates[0])
        await runner.advance()
        failed = runner.info(info.run_id)
    assert failed.state == "failed" and len(ran) == 1
    assert "effect 'apply' returned state key(s) ['trained_with']" in (failed.error or "")
    assert "does not declare" in (failed.error or "")
    async with Runner(db, clock=SimClock()) as runner:
        runner.register(_one_effect_workflow("undeclared", train, state=_Declared))
        await runner.resume(info.run_id)
        assert runner.info(info.run_id).state == "finished"
        assert (await runner.state(info.run_id))["trained_with"] == {"lr": 0.1}
    assert len(ran) == 1


async def test_an_agent_returning_undeclared_state_keys_fails_clearly(runner: Runner) -> None:
    def propose(state: Any) -> Any:
        return Proposal(kind="idea", title="x", author="agent:propose"), {"notes": "n"}

    info = await runner.start(_one_effect_workflow("extra", lambda s, a: {}, propose=propose))
    assert info.state == "failed"
    assert "agent 'propose' returned state key(s) ['notes']" in (info.error or "")


async def test_an_effects_own_error_is_reported_as_its_own(runner: Runner) -> None:
    def broken(state: Any, approved: Any) -> dict[str, Any]:
        raise ValueError("could not parse the JSON config")

    info = await runner.start(_one_effect_workflow("own-error", broken))
    _approve(runner, info.open_gates[0])
    await runner.advance()
    info = runner.info(info.run_id)
    assert info.error == "ValueError: could not parse the JSON config"
    failed = runner.ledger.events(run_id=info.run_id, types=["effect.failed"])
    assert failed[0].data["error"] == "ValueError: could not parse the JSON config"


async def test_model_calls_in_an_ordinary_node_are_recorded_when_asked(tmp_path: Path) -> None:
    from coimprove import SqliteLedger, recording_model_calls
    from coimprove.testing import FakeChatModel, Verdicts, run_scripted

    model = FakeChatModel(responses=["hi"])
    wf = Workflow("plain-node-calls", state=ToyState)

    async def recorded(state: Any) -> dict[str, Any]:
        with recording_model_calls():
            await model.ainvoke("one")
        await model.ainvoke("two (not recorded)")
        return {}

    wf.node("call", recorded)
    wf.edge(START, "call")
    wf.edge("call", END)
    result = await run_scripted(wf, Verdicts(["approve"]), db=tmp_path / "l.db")
    assert result.info.state == "finished"
    with SqliteLedger(tmp_path / "l.db") as ledger:
        calls = ledger.events(types=["model.called"])
    assert [(c.actor, c.data["model"]) for c in calls] == [("agent:call", "fake")]


@pytest.mark.parametrize("where", ["before the gate", "after the gate"])
async def test_an_effect_refuses_a_proposal_changed_in_place(
    runner: Runner, tmp_path: Path, where: str
) -> None:
    """Gates reuse the proposal an agent of this process made for the dict it put in state;
    a node that edits that dict in place cannot get the edit past the effect: only the
    reviewed version ever runs."""
    ran: list[str] = []
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(ToyState)
    add_agent(builder, "propose", lambda s: Proposal(kind="idea", title="v1", author="agent:p"))

    def edit_in_place(state: Any) -> Any:
        state["proposals"]["propose"]["title"] = "v2 (never reviewed)"
        return {}

    builder.add_node("edit", edit_in_place)
    add_effect(builder, "apply", lambda s, a: ran.append(a.proposal.title) or {}, gate="review")
    builder.add_edge(START, "propose")
    if where == "before the gate":
        add_gate(builder, "review", proposal_from="propose", on_approve="apply")
        builder.add_edge("propose", "edit")
        builder.add_edge("edit", "review")
    else:
        add_gate(builder, "review", proposal_from="propose", on_approve="edit")
        builder.add_edge("propose", "review")
        builder.add_edge("edit", "apply")
    builder.add_edge("apply", END)
    info = await runner.start(Workflow.from_graph(builder, name="in-place"))
    assert runner.gate(info.open_gates[0]).proposal.title == "v1"
    _approve(runner, info.open_gates[0])
    await runner.advance()
    info = runner.info(info.run_id)
    if info.state == "finished":  # the edit stayed in the node's copy (the checkpointer's)
        assert ran == ["v1"]
    else:  # the edit reached the effect's state: refused, with the reason
        assert info.state == "failed" and "changed after gate" in (info.error or "")
        assert ran == []


async def test_with_full_durability_nothing_acts_on_a_ledger_commit_before_it_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every resume (a graph invocation) and every effect sees a ledger whose newest event was
    fsynced before it: the decision, ``run.started`` and ``effect.started`` (an OS crash or
    power loss then cannot leave a checkpoint or a side effect that the ledger lacks)."""
    from langgraph.pregel import Pregel

    from coimprove import SimClock, SqliteLedger

    path = tmp_path / "ledger.db"
    synced = [0]  # the newest seq on disk
    acted: list[tuple[str, int, int]] = []  # (what, newest seq then, synced seq then)

    def newest() -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seq = newest()  # the loop waits on this fsync: nothing commits meanwhile
        real_fsync(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("ledger.db-wal"):
            synced[0] = max(synced[0], seq)

    real_ainvoke = Pregel.ainvoke

    async def ainvoke(self: Any, *args: Any, **kwargs: Any) -> Any:
        acted.append(("resume", newest(), synced[0]))
        return await real_ainvoke(self, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Pregel, "ainvoke", ainvoke)
    wf = Workflow("durable", state=ToyState)
    prev = START
    for i in range(2):

        def apply(state: Any, approved: Any) -> dict[str, Any]:
            acted.append(("effect", newest(), synced[0]))
            return {}

        wf.agent(f"propose{i}", lambda s, i=i: Proposal(kind="idea", title=f"t{i}", author="a:p"))
        wf.gate(f"review{i}", proposal_from=f"propose{i}", on_approve=f"apply{i}")
        wf.effect(f"apply{i}", apply, gate=f"review{i}")
        wf.edge(prev, f"propose{i}")
        wf.edge(f"propose{i}", f"review{i}")
        wf.edge(f"review{i}", f"apply{i}")
        prev = f"apply{i}"
    wf.edge(prev, END)
    with SqliteLedger(path, synchronous="full") as ledger:
        async with Runner(ledger=ledger, clock=SimClock()) as runner:
            info = await runner.start(wf)
            for _ in range(2):
                (gate,) = runner.open_gates(info.run_id)
                _approve(runner, gate.gate_id)
                await runner.advance(info.run_id)
            assert runner.runs(info.run_id)[0].state == "finished"
    assert [what for what, _, _ in acted] == ["resume", "resume", "effect", "resume", "effect"]
    for what, seq, on_disk in acted:
        assert on_disk >= seq, (what, seq, on_disk)
