"""The graph state channels coimprove needs, and the per-run context nodes read.

Add coimprove gates to your own graph by deriving your state from `GatedState`::

    class MyState(GatedState):
        topic: str
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.config import get_config

from coimprove.agents.telemetry import ModelCallRecorder, recording
from coimprove.channels import MergedDict
from coimprove.errors import CoimproveError, GraphDefinitionError
from coimprove.memory import ReviewMemory
from coimprove.model import Proposal
from coimprove.policy import Policy
from coimprove.protocols import Clock, Ledger

CONTEXT_KEY = "__coimprove__"
"""Key under ``config["configurable"]`` (dunder keys are not copied into checkpoint metadata)."""


class GatedState(TypedDict, total=False):
    """State channels used by agent, gate and effect nodes (all keyed by node name)."""

    proposals: Annotated[dict[str, Any], MergedDict()]
    """agent name -> latest proposal (dict form)."""
    approvals: Annotated[dict[str, Any], MergedDict()]
    """gate name -> the `GateOutcome` (dict form) of its last approval."""
    feedback: Annotated[dict[str, Any], MergedDict()]
    """agent name -> ``{"note", "gate_id", "previous"}`` from a request_changes."""
    gate_rounds: Annotated[dict[str, int], MergedDict()]
    gate_levels: Annotated[dict[str, int], MergedDict()]
    gate_canary: Annotated[dict[str, int], MergedDict()]
    """gate name -> the last round that showed a canary (never two in a row)."""


class CanarySource(Protocol):
    """Makes a planted-flaw variant of a proposal, or None if it has none for this kind."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        """Return (flawed copy, mutation kind)."""
        ...


@dataclass
class Vouched:
    """Approvals a runner read from the ledger for the gates it resumes in one step, under a
    lease held since those gates opened. No effect of such a gate can have started (its
    effects run only after it is resumed, and only a lease holder resumes it), so each of its
    effects may skip reading the ledger once, while the lease lasts. The effect still records
    ``effect.started`` before it acts, so a runner taking over later sees the attempt."""

    outcomes: dict[str, dict[str, Any]]
    """gate id -> the outcome its ``gate.resolved`` event recorded."""
    until: float
    """Wall-clock expiry of the lease the runner held when it resumed them."""
    used: set[tuple[str, str]] = field(default_factory=set)

    def take(self, gate_id: str, effect: str) -> dict[str, Any] | None:
        """The recorded outcome for `effect` of `gate_id`, once; None if not vouched for."""
        outcome = self.outcomes.get(gate_id)
        if outcome is None or (gate_id, effect) in self.used or time.time() >= self.until:
            return None
        self.used.add((gate_id, effect))
        return outcome


@dataclass
class RunContext:
    """What engine nodes of one run need; passed in the run's config, never checkpointed."""

    run_id: str
    graph: str
    policy: Policy
    ledger: Ledger
    clock: Clock
    canaries: CanarySource | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    memory: ReviewMemory | None = None
    """Agent memory of review, when the run has it on (`coimprove.memory`)."""
    vouched: Vouched | None = None
    """Approvals of the gates this step resumes, as the runner read them (see `Vouched`)."""


def model_recorder(ctx: RunContext) -> ModelCallRecorder:
    """The run's recorder: each chat-model call becomes a ``model.called`` ledger event."""
    recorder = ctx.extra.get("model_recorder")
    if not isinstance(recorder, ModelCallRecorder):
        ledger, clock, run_id = ctx.ledger, ctx.clock, ctx.run_id

        def record(data: dict[str, Any]) -> None:
            agent = data.get("agent")
            ledger.append(
                "model.called",
                at=clock.now(),
                run_id=run_id,
                actor=f"agent:{agent}" if agent else None,
                data=data,
            )

        recorder = ctx.extra["model_recorder"] = ModelCallRecorder(record, name=f"ledger:{run_id}")
    return recorder


def run_context() -> RunContext:
    """The context of the run the calling node belongs to."""
    try:
        ctx = get_config().get("configurable", {}).get(CONTEXT_KEY)
    except RuntimeError as exc:
        raise CoimproveError("coimprove nodes must run inside a graph started by a Runner") from exc
    if not isinstance(ctx, RunContext):
        raise CoimproveError(
            "this graph was invoked without a coimprove run context; start it with "
            "coimprove.Runner (gates need the ledger and policy)"
        )
    return ctx


@contextmanager
def recording_model_calls() -> Iterator[ModelCallRecorder]:
    """Inside an ordinary node of a running workflow, record every chat-model call made in the
    block as a ``model.called`` event of the run (agent and effect nodes always do)."""
    with recording(model_recorder(run_context())) as recorder:
        yield recorder


def check_declared(node: str, keys: Iterable[str], channels: Mapping[str, Any] | None) -> None:
    """Raise `GraphDefinitionError` if a node's state update has keys the graph's state does not
    declare: LangGraph drops those silently, so the value would be lost without a word.

    `channels` is the StateGraph builder's channel map (None: unknown, nothing is checked).
    """
    if channels is None or "__root__" in channels:
        return
    undeclared = sorted(k for k in keys if k not in channels)
    if undeclared:
        raise GraphDefinitionError(
            f"{node} returned state key(s) {undeclared} that the graph's state does not declare, "
            "so LangGraph would drop them; declare them in the state class (e.g. "
            f"`class State(GatedState): {undeclared[0]}: dict` and `Workflow(..., state=State)`)"
        )
