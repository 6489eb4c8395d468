"""A LangChain v1 agent whose file writes pass a coimprove gate.

    coimprove run examples/agent_tools.py                      # pauses at the gate
    coimprove pending; coimprove show GATE; coimprove decide GATE approve --as you --digest …
    coimprove run examples/agent_tools.py --reviewer careful --runs 3   # headless
    coimprove report

`create_agent` with two real tools: `mean_and_sd` computes statistics of a list of numbers
(exempt: it only computes) and `write_report` writes a text file into the agent's workspace
(``$COIMPROVE_AGENT_WORKSPACE``, default ``.coimprove/agent-workspace``). `GateMiddleware`
puts every `write_report` call to the gate ``tools`` under the run's policy: the file is
written only after a reviewer approves that exact call (or with the reviewer's edited
arguments); after a reject the model is told and nothing is written. The model is a
deterministic fake (`FakeToolCallingModel`) that computes, writes the summary, then answers;
give the task as ``--input '{"messages": [{"role": "user", "content": "..."}]}'`` or let the
default one below stand.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentState, before_agent
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.runtime import Runtime

from coimprove import GateMiddleware, Workflow
from coimprove.testing import FakeToolCallingModel

TASK = "Summarise the validation losses 0.52, 0.48, 0.47 and 0.61 into summary.md."


def workspace() -> Path:
    """Where `write_report` may write (created on first use)."""
    return Path(os.environ.get("COIMPROVE_AGENT_WORKSPACE", ".coimprove/agent-workspace"))


@tool
def mean_and_sd(values: list[float]) -> str:
    """Mean and sample standard deviation of a list of numbers."""
    if len(values) < 2:
        return "need at least two values"
    return json.dumps({"mean": statistics.fmean(values), "sd": statistics.stdev(values)})


@tool
def write_report(path: str, text: str) -> str:
    """Write `text` to the file `path` inside the agent's workspace."""
    root = workspace().resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        return f"refused: {path!r} is outside the workspace"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return f"wrote {len(text)} characters to {path}"


def scripted_model(messages: list[BaseMessage]) -> str | list[dict[str, Any]]:
    """The fake model's policy: compute, then write the summary, then report what happened."""
    replies = [m for m in messages if isinstance(m, ToolMessage)]
    if not replies:
        task = next((str(m.content) for m in messages if isinstance(m, HumanMessage)), TASK)
        numbers = [float(w.strip(",.")) for w in task.split() if w.strip(",.")[:1].isdigit()]
        return [{"name": "mean_and_sd", "args": {"values": numbers or [0.52, 0.48]}}]
    last = replies[-1]
    if last.name == "mean_and_sd":
        stats = json.loads(str(last.content))
        text = f"Validation loss: mean {stats['mean']:.3f}, sd {stats['sd']:.3f}.\n"
        return [{"name": "write_report", "args": {"path": "summary.md", "text": text}}]
    if last.status == "error":
        return f"I did not write the summary: {last.content}"
    return f"Done: {last.content}"


@before_agent
def default_task(state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
    """`coimprove run` without --input starts with an empty conversation: give it the task."""
    return None if state.get("messages") else {"messages": [HumanMessage(TASK)]}


agent = create_agent(
    FakeToolCallingModel(respond=scripted_model),
    tools=[mean_and_sd, write_report],
    system_prompt="You analyse results and write short reports.",
    middleware=[default_task, GateMiddleware(gated=[write_report], risk="medium")],
)

workflow = Workflow.from_compiled(agent, name="agent_tools", policy="default")
