"""GateMiddleware: the tool calls of a LangChain v1 agent pass coimprove gates.

Real `create_agent`, real tools, real LangGraph and SQLite; only the model (a scripted
`FakeToolCallingModel`) and the reviewers are fakes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.types import Command

from coimprove import (
    ApprovalRequiredError,
    Decision,
    GateMiddleware,
    InvalidDecisionError,
    Proposal,
    Runner,
    SimClock,
    Workflow,
)
from coimprove.headless import HeadlessSession
from coimprove.metrics import report
from coimprove.policy import policy_from_yaml
from coimprove.testing import FakeToolCallingModel, Verdicts
from coimprove.tool_gates import call_digest

RAN: list[tuple[str, dict[str, Any]]] = []
"""Every real execution of a tool in these tests: (tool, arguments)."""


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    RAN.append(("add", {"a": a, "b": b}))
    return a + b


@tool
def mul(a: int, b: int) -> int:
    """Multiply two integers."""
    RAN.append(("mul", {"a": a, "b": b}))
    return a * b


TASK = {"messages": [{"role": "user", "content": "add 2 and 3"}]}
ADD = [{"name": "add", "args": {"a": 2, "b": 3}}]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    RAN.clear()


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Runner]:
    async with Runner(tmp_path / "ledger.db", clock=SimClock(1000.0)) as r:
        yield r


def agent_workflow(
    script: Sequence[Any] | Callable[[list[BaseMessage]], Any],
    *,
    middleware: Sequence[AgentMiddleware[Any, Any]] = (),
    **gate: Any,
) -> tuple[Workflow, FakeToolCallingModel]:
    model = (
        FakeToolCallingModel(respond=script)
        if callable(script)
        else FakeToolCallingModel(script=list(script))
    )
    gate.setdefault("gated", [add, mul])
    agent = create_agent(model, tools=[add, mul], middleware=[*middleware, GateMiddleware(**gate)])
    return Workflow.from_compiled(agent, name="calc"), model


def tool_replies(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def decision(runner: Runner, gate_id: str, verdict: str, **fields: Any) -> Decision:
    return Decision(
        verdict=verdict,  # type: ignore[arg-type]
        reviewer=fields.pop("reviewer", "alice"),
        digest=runner.gate(gate_id).proposal.digest,
        **fields,
    )


async def test_the_tool_runs_only_after_an_approval_of_that_call(runner: Runner) -> None:
    wf, _ = agent_workflow([ADD, "the sum is 5"])
    info = await runner.start(wf, TASK)
    assert info.state == "waiting" and RAN == []
    (gate_id,) = info.open_gates
    record = runner.gate(gate_id)
    assert record.proposal.kind == "tool:add"
    assert record.proposal.payload == {"a": 2, "b": 3}
    assert record.request.payload_schema is not None  # the tool's own argument schema
    runner.decide(gate_id, decision(runner, gate_id, "approve"))
    assert RAN == []  # a decision is data; the run moves on when it is applied
    await runner.advance(info.run_id)
    assert runner.info(info.run_id).state == "finished"
    assert RAN == [("add", {"a": 2, "b": 3})]
    (reply,) = tool_replies(await runner.state(info.run_id))
    assert reply.content == "5"
    effects = [e for e in runner.ledger.events(gate_id=gate_id) if e.type.startswith("effect.")]
    assert [(e.type, e.data["key"]) for e in effects] == [
        ("effect.started", f"{gate_id}/tool:add"),
        ("effect.finished", f"{gate_id}/tool:add"),
    ]


async def test_an_edit_runs_the_tool_with_the_edited_arguments(runner: Runner) -> None:
    wf, model = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    runner.decide(gate_id, decision(runner, gate_id, "edit", edited_payload={"a": 2, "b": 10}))
    await runner.advance(info.run_id)
    assert RAN == [("add", {"a": 2, "b": 10})]
    (reply,) = tool_replies(await runner.state(info.run_id))
    assert "edited" in str(reply.content) and str(reply.content).endswith("12")
    assert "edited" in str(model.calls[-1][-1].content)  # the model is told what ran


async def test_an_edit_that_does_not_fit_the_tool_schema_is_refused_and_changes_nothing(
    runner: Runner,
) -> None:
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    before = runner.ledger.last_seq()
    bad = decision(runner, gate_id, "edit", edited_payload={"a": "two", "b": 3})
    with pytest.raises(InvalidDecisionError, match=r"edited payload is invalid at a"):
        runner.decide(gate_id, bad)
    assert runner.ledger.last_seq() == before and runner.gate(gate_id).status == "open"


async def test_a_reject_never_runs_the_tool_and_the_model_is_told(runner: Runner) -> None:
    wf, model = agent_workflow([ADD, "understood"])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    runner.decide(gate_id, decision(runner, gate_id, "reject", note="not now"))
    await runner.advance(info.run_id)
    assert runner.info(info.run_id).state == "finished"
    assert RAN == []
    (reply,) = tool_replies(await runner.state(info.run_id))
    assert reply.status == "error" and "rejected" in str(reply.content)
    assert "not now" in str(reply.content)
    assert model.calls[-1][-1] == reply  # the model saw the refusal
    assert not [e for e in runner.ledger.events(gate_id=gate_id) if e.type.startswith("effect")]


def revising(messages: list[BaseMessage]) -> Any:
    """Calls add(2, 3); after a request for changes, add(2, 4); then stops."""
    replies = [m for m in messages if isinstance(m, ToolMessage)]
    if not replies:
        return ADD
    if "asked for changes" in str(replies[-1].content):
        return [{"name": "add", "args": {"a": 2, "b": 4}}]
    return "done"


async def test_request_changes_sends_the_note_to_the_model_and_gates_the_revision(
    runner: Runner,
) -> None:
    wf, _ = agent_workflow(revising)
    info = await runner.start(wf, TASK)
    (first,) = info.open_gates
    runner.decide(first, decision(runner, first, "request_changes", note="use b=4"))
    await runner.advance(info.run_id)
    assert RAN == []
    (second,) = runner.info(info.run_id).open_gates
    assert second.endswith(".tools.2")
    revised = runner.gate(second).request
    assert revised.feedback == "use b=4" and revised.proposal.payload == {"a": 2, "b": 4}
    assert revised.resubmission is not None and revised.resubmission.change == "changed"
    runner.decide(second, decision(runner, second, "approve"))
    await runner.advance(info.run_id)
    assert RAN == [("add", {"a": 2, "b": 4})]
    assert runner.info(info.run_id).state == "finished"


ESCALATING = """
name: escalating
reviewers: {"alice": [reviewer], "lead": [lead]}
defaults: {roles: [reviewer], escalation: [lead]}
"""


async def test_escalate_puts_the_same_call_to_the_next_role(runner: Runner) -> None:
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK, policy=policy_from_yaml(ESCALATING))
    (first,) = info.open_gates
    runner.decide(first, decision(runner, first, "escalate", note="your call"))
    await runner.advance(info.run_id)
    (second,) = runner.info(info.run_id).open_gates
    record = runner.gate(second)
    assert record.request.requirement.roles == ("lead",)
    assert record.proposal.digest == runner.gate(first).proposal.digest
    with pytest.raises(Exception, match="does not hold a role"):
        runner.decide(second, decision(runner, second, "approve"))
    runner.decide(second, decision(runner, second, "approve", reviewer="lead"))
    await runner.advance(info.run_id)
    assert RAN == [("add", {"a": 2, "b": 3})]


async def test_two_calls_in_one_turn_are_gated_one_after_the_other(runner: Runner) -> None:
    both = [{"name": "add", "args": {"a": 1, "b": 2}}, {"name": "mul", "args": {"a": 3, "b": 4}}]
    wf, _ = agent_workflow([both, "done"])
    info = await runner.start(wf, TASK)
    (first,) = info.open_gates
    assert runner.gate(first).proposal.kind == "tool:add"
    runner.decide(first, decision(runner, first, "approve"))
    await runner.advance(info.run_id)
    assert RAN == []  # no tool of the turn runs before every gated call is decided
    (second,) = runner.info(info.run_id).open_gates
    assert runner.gate(second).proposal.kind == "tool:mul"
    runner.decide(second, decision(runner, second, "reject"))
    await runner.advance(info.run_id)
    assert RAN == [("add", {"a": 1, "b": 2})]
    assert runner.info(info.run_id).state == "finished"


RULES = """
name: only-mul
defaults: {roles: [reviewer]}
rules:
  - name: products-need-a-person
    match: {kind: ["tool:mul"]}
"""


async def test_rules_only_gates_just_the_calls_a_policy_rule_matches(runner: Runner) -> None:
    both = [{"name": "add", "args": {"a": 1, "b": 2}}, {"name": "mul", "args": {"a": 3, "b": 4}}]
    wf, _ = agent_workflow([both, "done"], rules_only=True)
    info = await runner.start(wf, TASK, policy=policy_from_yaml(RULES))
    (gate_id,) = info.open_gates
    assert runner.gate(gate_id).proposal.kind == "tool:mul"
    runner.decide(gate_id, decision(runner, gate_id, "approve"))
    await runner.advance(info.run_id)
    assert sorted(name for name, _ in RAN) == ["add", "mul"]


async def test_exempt_tools_run_without_a_gate(runner: Runner) -> None:
    wf, _ = agent_workflow([ADD, "done"], exempt=["add"])
    info = await runner.start(wf, TASK)
    assert info.state == "finished" and RAN == [("add", {"a": 2, "b": 3})]


class ChangeArgs(AgentMiddleware[Any, Any]):
    """Changes a call's arguments after its gate decided it (what the guard must catch)."""

    async def awrap_tool_call(
        self, request: Any, handler: Callable[[Any], Awaitable[ToolMessage | Command[Any]]]
    ) -> ToolMessage | Command[Any]:
        changed = {**request.tool_call, "args": {"a": 2, "b": 3000}}
        return await handler(request.override(tool_call=changed))


async def test_a_call_that_differs_from_the_approved_one_is_refused(runner: Runner) -> None:
    wf, _ = agent_workflow([ADD, "done"], middleware=[ChangeArgs()])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    runner.decide(gate_id, decision(runner, gate_id, "approve"))
    await runner.advance(info.run_id)
    after = runner.info(info.run_id)
    assert after.state == "failed" and RAN == []
    assert after.error is not None and "ApprovalRequiredError" in after.error
    assert "not the call gate" in after.error


async def test_a_tampered_approval_in_the_state_is_refused(runner: Runner) -> None:
    """The approval the gate put in the state names a digest; an approval whose proposal was
    changed behind it (here: the arguments to run with) no longer matches and never runs."""
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    mw = GateMiddleware(gated=[add])
    call: Any = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_0_0", "type": "tool_call"}
    honest = runner.gate(gate_id).proposal
    outcome = {"gate_id": gate_id, "outcome": "approve", "digest": honest.digest}
    tampered = honest.model_copy(update={"payload": {"a": 2, "b": 3000}}).model_dump(mode="json")
    tampered["digest"] = honest.digest  # claims to be what was approved
    state = {
        "coimprove_tool_approvals": {
            "call_0_0": {"call": call_digest(call), "outcome": outcome, "proposal": tampered}
        }
    }
    with pytest.raises(ApprovalRequiredError, match="unreadable"):
        mw.approval(state, call, None)  # type: ignore[arg-type]
    del tampered["digest"]
    with pytest.raises(ApprovalRequiredError, match="not what gate"):
        mw.approval(state, call, None)  # type: ignore[arg-type]
    assert RAN == []


class ArgCanaries:
    """Plants a canary on tool calls: the same call with a wildly different argument."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        payload = {**proposal.payload, "b": 999}
        return proposal.model_copy(update={"payload": payload}), "wrong_argument"


CANARY = """
name: canary-tools
defaults: {roles: [reviewer], canary_rate: 0.99}
"""


async def test_a_canary_call_is_decided_but_never_run(tmp_path: Path) -> None:
    wf, _ = agent_workflow([ADD, "done"])
    async with Runner(tmp_path / "l.db", clock=SimClock(), canaries=ArgCanaries()) as runner:
        info = await runner.start(wf, TASK, policy=policy_from_yaml(CANARY))
        (first,) = info.open_gates
        assert runner.gate(first).proposal.payload == {"a": 2, "b": 999}  # looks real
        runner.decide(first, decision(runner, first, "approve"))  # a missed canary
        await runner.advance(info.run_id)
        assert RAN == []
        (second,) = runner.info(info.run_id).open_gates  # never two canaries in a row
        assert runner.gate(second).proposal.payload == {"a": 2, "b": 3}
        runner.decide(second, decision(runner, second, "approve"))
        await runner.advance(info.run_id)
        revealed = runner.ledger.events(types=["canary.revealed"])
        assert [e.gate_id for e in revealed] == [first] and not revealed[0].data["caught"]
    assert RAN == [("add", {"a": 2, "b": 3})]


async def test_headless_reviewers_answer_tool_gates_and_the_report_counts_them(
    tmp_path: Path,
) -> None:
    wf, _ = agent_workflow([ADD, "done"])
    async with Runner(tmp_path / "l.db", clock=SimClock()) as runner:
        session = HeadlessSession(runner, [Verdicts(["approve"], id="bob")])
        infos = [await runner.start(wf, TASK) for _ in range(3)]
        await session.run()
        assert all(runner.info(i.run_id).state == "finished" for i in infos)
        rep = report(runner.ledger)
    assert rep.gates == 3 and rep.decided == 3
    assert set(rep.by_proposal_kind) == {"tool:add"}
    assert RAN == [("add", {"a": 2, "b": 3})] * 3


async def test_the_agent_refuses_to_run_outside_a_coimprove_runner() -> None:
    wf, _ = agent_workflow([ADD, "done"])
    with pytest.raises(Exception, match="Runner"):
        await wf.compile(None).ainvoke(TASK)
    assert RAN == []


def test_a_gate_name_that_cannot_be_part_of_a_gate_id_is_refused() -> None:
    with pytest.raises(Exception, match="letters, digits"):
        GateMiddleware(gate="tool.calls")


BLOCK_LANGCHAIN = """
import importlib.abc, sys

class NoLangChain(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "langchain" or name.startswith("langchain."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoLangChain())
import coimprove
from coimprove import Runner, Workflow
print("core ok")
try:
    coimprove.GateMiddleware
except ImportError as exc:
    print("error:", exc)
"""


def test_core_import_needs_no_langchain_and_the_middleware_says_what_to_install() -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_LANGCHAIN], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "core ok" in done.stdout
    assert "pip install 'coimprove[agents]'" in done.stdout


TIMEOUT = """
name: quick
defaults: {roles: [reviewer], timeout_s: 60}
"""


async def test_a_gate_that_times_out_fails_closed_and_the_model_is_told(runner: Runner) -> None:
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK, policy=policy_from_yaml(TIMEOUT))
    runner.clock.advance(61)  # type: ignore[attr-defined]
    await runner.advance(info.run_id)
    assert runner.info(info.run_id).state == "finished" and RAN == []
    (reply,) = tool_replies(await runner.state(info.run_id))
    assert reply.status == "error" and "timed out" in str(reply.content)


async def test_a_replayed_tools_step_returns_the_recorded_reply_without_running_again(
    runner: Runner,
) -> None:
    """LangGraph is at-least-once: a step can run again (after a crash, or from an earlier
    checkpoint). The tool call's ``effect.finished`` holds its reply; a re-run hands that on."""
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    runner.decide(gate_id, decision(runner, gate_id, "approve"))
    await runner.advance(info.run_id)
    assert RAN == [("add", {"a": 2, "b": 3})]
    run = runner._run(info.run_id)
    cfg = runner._config(info.run_id, run)
    before_tools = [
        s async for s in run.graph.aget_state_history(cfg) if s.next and s.next[0] == "tools"
    ]
    assert before_tools  # the checkpoint taken before the tool ran
    fork = before_tools[0].config
    configurable = {**cfg["configurable"], **fork["configurable"]}  # the run's context too
    replayed = await run.graph.ainvoke(None, {**fork, "configurable": configurable})
    assert RAN == [("add", {"a": 2, "b": 3})]  # not run a second time
    assert [m.content for m in replayed["messages"] if isinstance(m, ToolMessage)] == ["5"]
    finished = runner.ledger.events(gate_id=gate_id, types=["effect.finished"])
    assert len(finished) == 1


async def test_tool_gates_on_a_postgres_ledger_and_checkpoints(pg_dsn: str) -> None:
    """The team's ledger: the agent pauses, is decided from another Runner (another process's
    view of the same database) and resumes there; the ledger verifies."""
    from coimprove.ledger.postgres import PostgresLedger
    from tests.ledgers import make_backend

    url = make_backend("postgres", pg_dsn).url  # a postgresql:// URL, as --db takes it
    wf, _ = agent_workflow(revising)
    async with Runner(url, clock=SimClock(1000.0)) as starter:
        assert isinstance(starter.ledger, PostgresLedger)
        info = await starter.start(wf, TASK)
        (first,) = info.open_gates
    async with Runner(url, clock=SimClock(2000.0)) as other:
        other.register(wf)
        other.decide(first, decision(other, first, "request_changes", note="use b=4"))
        await other.advance(info.run_id)
        (second,) = other.info(info.run_id).open_gates
        other.decide(second, decision(other, second, "edit", edited_payload={"a": 2, "b": 5}))
        await other.advance(info.run_id)
        assert other.info(info.run_id).state == "finished"
        assert other.ledger.verify().ok
    assert RAN == [("add", {"a": 2, "b": 5})]


def test_a_risk_that_is_not_one_is_refused_when_the_middleware_is_made() -> None:
    with pytest.raises(Exception, match="'severe' is not a risk"):
        GateMiddleware(risk={"add": "severe"})  # type: ignore[dict-item]


async def test_by_default_every_tool_call_is_gated(runner: Runner) -> None:
    wf, _ = agent_workflow([[{"name": "mul", "args": {"a": 3, "b": 4}}], "done"], gated=None)
    info = await runner.start(wf, TASK)
    (gate_id,) = info.open_gates
    record = runner.gate(gate_id)
    assert record.proposal.kind == "tool:mul" and RAN == []
    assert record.request.payload_schema is None  # named by no tool object: edits unchecked
