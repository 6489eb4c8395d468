"""Workflows and helpers shared by the test suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coimprove import END, START, Approved, GatedState, Proposal, Workflow
from coimprove.workflow import AgentContext


class ToyState(GatedState, total=False):
    done: dict[str, Any]


def linear_workflow(
    name: str = "linear",
    *,
    policy: str = "default",
    kind: str = "idea",
    risk: str = "low",
    side_effects: Path | None = None,
    idempotent: bool = False,
    pairs: int = 1,
) -> Workflow:
    """START -> (propose_i -> review_i -> apply_i) * pairs -> END.

    Each effect appends ``<gate id>/<effect> <title> <payload>`` to `side_effects` (if given)
    so tests can count real executions.
    """
    wf = Workflow(name, policy=policy, state=ToyState)
    prev = START
    for i in range(pairs):
        agent, gate, effect = f"propose{i}", f"review{i}", f"apply{i}"

        def propose(state: dict[str, Any], ctx: AgentContext, i: int = i) -> Proposal:
            version = 1 if ctx.feedback is None else 2
            return Proposal(
                kind=kind,
                title=f"idea {i} v{version}",
                body="" if ctx.feedback is None else f"revised after: {ctx.feedback.note}",
                payload={"lr": 0.1, "step": i},
                author=f"agent:{ctx.name}",
                risk=risk,  # type: ignore[arg-type]
            )

        def apply(state: dict[str, Any], approved: Approved, i: int = i) -> dict[str, Any]:
            if side_effects is not None:
                with side_effects.open("a") as f:
                    f.write(
                        f"{approved.key} {approved.proposal.title} {approved.proposal.payload}\n"
                    )
            done = dict(state.get("done") or {})
            done[str(i)] = approved.proposal.payload
            return {"done": done}

        wf.agent(agent, propose, kind=kind)
        wf.gate(gate, proposal_from=agent, on_approve=effect)
        wf.effect(effect, apply, gate=gate, idempotent=idempotent)
        wf.edge(prev, agent)
        wf.edge(agent, gate)
        prev = effect
    wf.edge(prev, END)
    return wf
