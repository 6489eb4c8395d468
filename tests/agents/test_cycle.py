"""Roles chained into one research cycle: each agent sees what earlier gates approved and
effects produced, and every proposal passes its own gate."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from coimprove import END, START, Approved, GatedState, Workflow
from coimprove.agents import (
    ExecutionAnalysisAgent,
    ExperimentAgent,
    FakeChatModel,
    IdeaAgent,
    WriteupAgent,
)
from coimprove.ledger import SqliteLedger
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import FAST, reply


class CycleState(GatedState, total=False):
    topic: str
    idea: dict[str, Any]
    experiment: dict[str, Any]
    analysis: dict[str, Any]
    report: str


def _respond(messages: list[BaseMessage]) -> str:
    """One fake model for every role: it answers according to the role's system prompt."""
    system = str(messages[0].content)
    for marker, key in (
        ("research collaborator", "idea"),
        ("designing ONE experiment", "experiment"),
        ("analyse the result", "analysis"),
        ("write up a research run", "writeup"),
    ):
        if marker in system:
            return reply(key)
    raise AssertionError(f"unexpected prompt: {system[:80]}")


def cycle(model: FakeChatModel) -> Workflow:
    wf = Workflow("cycle", state=CycleState)
    IdeaAgent(model, context=["topic"], retry=FAST).add_to(wf, "ideas")
    ExperimentAgent(model, context=["topic", "idea"], retry=FAST).add_to(wf, "design")
    ExecutionAnalysisAgent(model, context=["experiment"], retry=FAST).add_to(wf, "analyse")
    WriteupAgent(model, retry=FAST).add_to(wf, "write")

    def keep_idea(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        return {"idea": approved.proposal.payload}

    def run(state: dict[str, Any], approved: Approved) -> dict[str, Any]:  # a stand-in sandbox
        return {"experiment": {"spec": approved.proposal.payload, "metrics": {"loss": 0.31}}}

    def keep_analysis(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        return {"analysis": approved.proposal.payload}

    def publish(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        return {"report": approved.proposal.body}

    for agent, gate, effect, fn in (
        ("ideas", "idea_gate", "keep_idea", keep_idea),
        ("design", "experiment_gate", "run", run),
        ("analyse", "analysis_gate", "keep_analysis", keep_analysis),
        ("write", "writeup_gate", "publish", publish),
    ):
        wf.gate(gate, proposal_from=agent, on_approve=effect)
        wf.effect(effect, fn, gate=gate)
        wf.edge(agent, gate)
    wf.edge(START, "ideas")
    wf.edge("keep_idea", "design")
    wf.edge("run", "analyse")
    wf.edge("keep_analysis", "write")
    wf.edge("publish", END)
    return wf


async def test_a_full_cycle_of_roles_runs_through_four_gates() -> None:
    model = FakeChatModel(respond=_respond)
    reviewer = Verdicts(["approve"])
    result = await run_scripted(cycle(model), reviewer, inputs={"topic": "divergence"})
    assert result.info.state == "finished", result.info.error
    assert [r.proposal.kind for r in reviewer.seen] == [
        "idea",
        "experiment",
        "analysis",
        "writeup",
    ]
    design_prompt = str(model.calls[1][1].content)
    assert "Stop a direction when its learning curve" in design_prompt  # the approved idea
    analyse_prompt = str(model.calls[2][1].content)
    assert '"loss": 0.31' in analyse_prompt  # the experiment's result
    assert result.state["report"].startswith("**Abstract.**")
    with SqliteLedger(result.db) as ledger:
        actors = [e.actor for e in ledger.events(types=["model.called"])]
    assert actors == ["agent:ideas", "agent:design", "agent:analyse", "agent:write"]
