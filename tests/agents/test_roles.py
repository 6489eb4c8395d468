"""Every role, end to end: a real Workflow run, the fake model, scripted decisions."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from coimprove.agents import (
    BenchmarkItemAgent,
    CodeAgent,
    ErrorAnalysisAgent,
    ExecutionAnalysisAgent,
    ExperimentAgent,
    FakeChatModel,
    IdeaAgent,
    SafetyCritic,
    WriteupAgent,
)
from coimprove.agents.roles import AgentRole
from coimprove.experiments import code_proposal
from coimprove.model import Proposal
from coimprove.sandbox import GitWorkspace
from coimprove.sandbox.experiment import ExperimentSpec
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import FAST, one_agent_workflow, reply

ROLES: list[tuple[type[AgentRole[Any]], str, str, str]] = [
    (IdeaAgent, "idea", "idea", "problem_identification"),
    (BenchmarkItemAgent, "benchmark_item", "benchmark_item", "benchmark_creation"),
    (CodeAgent, "code", "code", "method_innovation"),
    (ExperimentAgent, "experiment", "experiment", "experiment_design"),
    (ExecutionAnalysisAgent, "analysis", "analysis", "execution"),
    (ErrorAnalysisAgent, "error_analysis", "error_analysis", "error_analysis"),
    (WriteupAgent, "writeup", "writeup", "scientific_communication"),
]


async def _approved(role: Any, *, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await run_scripted(
        one_agent_workflow(f"wf-{type(role).__name__}", role),
        Verdicts(["approve"]),
        inputs=inputs or {"topic": "why does training diverge?"},
    )
    assert result.info.state == "finished", result.info.error
    applied: dict[str, Any] = result.state["applied"]
    return applied


@pytest.mark.parametrize(("cls", "key", "kind", "category"), ROLES)
async def test_each_role_proposes_its_kind_through_a_gate(
    cls: type[AgentRole[Any]], key: str, kind: str, category: str
) -> None:
    model = FakeChatModel(responses=[reply(key)])
    role = cls(model, retry=FAST)
    applied = await _approved(role)
    proposal = Proposal.model_validate({k: v for k, v in applied.items() if k != "digest"})
    assert proposal.kind == kind == role.kind
    assert proposal.title == json.loads(reply(key))["title"]
    assert proposal.author == "agent:agent"
    assert {"model:fake", f"category:{category}"} <= set(proposal.tags)
    assert proposal.body
    payload_model = role.payload_model
    assert payload_model is not None and issubclass(payload_model, BaseModel)
    payload_model.model_validate(proposal.payload)  # the payload fits the gate's edit schema
    prompt = model.calls[0]
    assert "why does training diverge?" in str(prompt[1].content)  # run context reached it


def test_every_role_ships_its_prompt_file() -> None:
    for cls, *_ in ROLES:
        role = cls("fake")
        assert len(role.prompt_text) > 100, cls.__name__


async def test_experiment_payload_is_a_runnable_experiment_spec() -> None:
    role = ExperimentAgent(FakeChatModel(responses=[reply("experiment")]), retry=FAST)
    applied = await _approved(role)
    spec = ExperimentSpec.model_validate(applied["payload"])
    assert spec.command == "python3 train.py"
    assert spec.env == {"LEARNING_RATE": "0.01"}
    assert spec.expected_outcome == "final loss below 0.5"
    assert spec.timeout_s == 30


async def test_code_role_commits_to_the_workspace_and_shows_the_diff(tmp_path: Path) -> None:
    ws = GitWorkspace.create(tmp_path / "ws", run_id="r1", files={"train.py": b"LR = 10\n"})
    role = CodeAgent(
        FakeChatModel(responses=[reply("code")]),
        commit=functools.partial(code_proposal, ws),
        retry=FAST,
    )
    applied = await _approved(role)
    assert applied["commit"] and len(applied["commit"]) == 40
    (diff,) = applied["artifacts"]
    assert diff["name"] == "changes.diff"
    assert "-LR = 10" in diff["content"] and "+LR = 0.01" in diff["content"]
    assert applied["payload"]["paths"] == ["train.py"]
    assert applied["risk"] == "medium"


async def test_code_role_without_a_workspace_carries_files_inline() -> None:
    role = CodeAgent(FakeChatModel(responses=[reply("code")]), retry=FAST)
    applied = await _approved(role)
    (art,) = applied["artifacts"]
    assert art["name"] == "train.py" and "LR = 0.01" in art["content"]


async def test_code_role_refuses_paths_outside_the_repository() -> None:
    bad = reply("code", files=[{"path": "../etc/passwd", "content": "x"}])
    model = FakeChatModel(responses=[bad, reply("code")])
    applied = await _approved(CodeAgent(model, retry=FAST))
    assert applied["payload"]["paths"] == ["train.py"]
    assert "relative path" in str(model.calls[1][-1].content)


async def test_context_keys_limit_what_the_model_sees() -> None:
    model = FakeChatModel(responses=[reply("idea")])
    role = IdeaAgent(model, context=["results"], retry=FAST)
    await _approved(role, inputs={"topic": "SECRET TOPIC", "results": {"loss": 0.3}})
    task = str(model.calls[0][1].content)
    assert '"loss": 0.3' in task and "SECRET TOPIC" not in task
    assert "proposals" not in task  # engine channels never shown


async def test_failed_validation_fails_the_run_naming_agent_model_and_output() -> None:
    model = FakeChatModel(responses=['{"title": "x"}'])
    role = IdeaAgent(model, retry=FAST)
    result = await run_scripted(one_agent_workflow("wf-fail", role), Verdicts(["approve"]))
    assert result.info.state == "failed"
    error = result.info.error or ""
    assert "agent 'agent'" in error and "model 'fake'" in error and '{"title": "x"}' in error
    assert len(model.calls) == FAST.max_attempts


def _critic(verdict_risk: str) -> FakeChatModel:
    return FakeChatModel(responses=[reply("safety", risk=verdict_risk)])


async def test_safety_critic_attaches_a_note_and_raises_the_risk() -> None:
    inner = ExperimentAgent(FakeChatModel(responses=[reply("experiment")]), retry=FAST)
    critic = SafetyCritic(inner, _critic("high"), retry=FAST)
    reviewer = Verdicts(["approve"])
    result = await run_scripted(one_agent_workflow("wf-critic", critic), reviewer)
    shown = reviewer.seen[0]
    assert shown.proposal.kind == "experiment"
    assert shown.proposal.risk == "high"
    assert "Safety critique" in shown.proposal.body
    assert "the reviewer decides" in shown.proposal.body
    assert {"safety-critique", "critic-risk:high"} <= set(shown.proposal.tags)
    # the critic changes nothing the effect acts on
    assert ExperimentSpec.model_validate(result.state["applied"]["payload"]).command == (
        "python3 train.py"
    )
    assert result.info.state == "finished"  # a person (the scripted human) still decided


async def test_safety_critic_never_lowers_the_risk() -> None:
    inner = ExperimentAgent(FakeChatModel(responses=[reply("experiment")]), retry=FAST)
    applied = await _approved(SafetyCritic(inner, _critic("low"), retry=FAST))
    assert applied["risk"] == "medium"
    assert "critic-risk:low" in applied["tags"]


async def test_safety_critic_wraps_a_plain_agent_function() -> None:
    def plain(state: dict[str, Any]) -> Proposal:
        return Proposal(kind="idea", title="plain idea", author="agent:agent")

    critic = SafetyCritic(plain, _critic("critical"), retry=FAST)
    assert critic.kind is None
    reviewer = Verdicts(["reject"])
    result = await run_scripted(one_agent_workflow("wf-plain", critic), reviewer)
    assert reviewer.seen[0].proposal.risk == "critical"
    assert "applied" not in result.state
