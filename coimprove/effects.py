"""Effect nodes: the only place consequences happen, and only with an approval in hand.

An effect checks its approval against the ledger (not just the graph edge that led to it) and
runs at most once per approval: ``effect.started`` is recorded before the function runs and
``effect.finished`` (with the state update it returned) after. On a re-run of the node
(LangGraph is at-least-once) a finished effect returns its recorded update without running; one
that started but never finished is marked interrupted and runs again only if it was declared
idempotent or a reviewer re-approved it (``coimprove resume --reapprove``). With a ledger in
``full`` durability, each record is on disk before the function runs or the node returns.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from coimprove.agents.telemetry import recording
from coimprove.errors import ApprovalRequiredError, CoimproveError, EffectInterruptedError
from coimprove.gates import NodeRole
from coimprove.model import EventType, GateOutcome, LedgerEvent, Proposal
from coimprove.protocols import Ledger
from coimprove.state import (
    GatedState,
    RunContext,
    Vouched,
    check_declared,
    model_recorder,
    run_context,
)

EFFECT_EVENTS: tuple[EventType, ...] = (
    "effect.started",
    "effect.finished",
    "effect.failed",
    "effect.interrupted",
    "effect.reapproved",
)


@dataclass(frozen=True)
class Approved:
    """What an effect function receives: the approved proposal and the approval's identity."""

    gate_id: str
    digest: str
    proposal: Proposal
    outcome: GateOutcome
    key: str
    """Idempotency key ``<gate id>/<effect name>``: pass it to external systems that dedupe."""
    attempt: int


EffectFn = Callable[[Any, Approved], "dict[str, Any] | Awaitable[dict[str, Any] | None] | None"]


def verify_approval(
    ledger: Ledger, state: GatedState, gate: str, effect: str, vouched: Vouched | None = None
) -> tuple[GateOutcome, Proposal, list[LedgerEvent]]:
    """The approval `effect` may act on and the proposal it approves, checked against the
    state *and* the ledger. Also returns the gate's effect events (read in the same query).

    With `vouched` (the runner's reading of the ledger for the gates it is resuming, see
    `Vouched`), the recorded outcome comes from there and there are no effect events yet."""
    raw = (state.get("approvals") or {}).get(gate)
    if raw is None:
        raise ApprovalRequiredError(
            f"effect {effect!r} needs an approval from gate {gate!r} and the run has none "
            "(a path skipped the gate, or the gate did not approve)"
        )
    outcome = GateOutcome.model_validate(raw)
    if outcome.outcome not in ("approve", "edit") or outcome.agent is None:
        raise ApprovalRequiredError(f"effect {effect!r}: gate {gate!r} did not approve")
    current = (state.get("proposals") or {}).get(outcome.agent)
    try:
        proposal = None if current is None else Proposal.from_state(current)
    except (ValidationError, TypeError):  # edited in place: its digest no longer fits
        proposal = None
    if proposal is None or proposal.digest != outcome.digest:
        raise ApprovalRequiredError(
            f"effect {effect!r}: agent {outcome.agent!r}'s proposal changed after gate "
            f"{outcome.gate_id!r} approved it; it must pass the gate again"
        )
    return outcome, proposal, recorded_approval(ledger, outcome, effect, vouched)


def recorded_approval(
    ledger: Ledger, outcome: GateOutcome, effect: str, vouched: Vouched | None = None
) -> list[LedgerEvent]:
    """Check that the ledger resolved `outcome`'s gate as an approval of its digest (else
    `ApprovalRequiredError`) and return the gate's effect events, read in the same query
    (none when `vouched` vouches for the gate: see `Vouched`)."""
    settled = vouched.take(outcome.gate_id, effect) if vouched is not None else None
    if settled is not None:
        events: list[LedgerEvent] = []
    else:
        events = ledger.events(gate_id=outcome.gate_id, types=("gate.resolved", *EFFECT_EVENTS))
        settled = next((e.data["result"] for e in events if e.type == "gate.resolved"), None)
    # a canary resolves as "canary", never as an approval, so it cannot pass this check
    if (
        settled is None
        or settled["outcome"] not in ("approve", "edit")
        or settled["digest"] != outcome.digest
    ):
        raise ApprovalRequiredError(
            f"effect {effect!r}: the ledger has no approval of digest {outcome.digest[:19]}… "
            f"at gate {outcome.gate_id!r}"
        )
    return [e for e in events if e.type != "gate.resolved"]


def _state_update(effect: str, result: Any) -> dict[str, Any]:
    """The effect's return value as a state update that the ledger can record."""
    try:
        update = dict(result or {})
        json.dumps(update, allow_nan=False)  # no NaN or infinities: the ledger refuses them
    except (TypeError, ValueError) as exc:
        raise CoimproveError(
            f"effect {effect!r} must return a JSON-serialisable state update (a dict): {exc}"
        ) from exc
    return update


async def run_once(
    ctx: RunContext,
    *,
    gate_id: str,
    effect: str,
    digest: str,
    idempotent: bool,
    events: Sequence[LedgerEvent],
    act: Callable[[int, str], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run an approved effect at most once per approval and return its recorded update.

    `events` are the gate's effect events (from `verify_approval`). A finished effect returns
    the update its ``effect.finished`` recorded without running; one that started and never
    finished is marked interrupted and runs again only if `idempotent` or re-approved
    (else `EffectInterruptedError`). Otherwise ``effect.started`` is recorded (durably)
    before ``act(attempt, key)`` runs, and ``effect.failed`` or ``effect.finished`` (with the
    JSON update `act` returned) after. Used by `EffectNode` and by the tool calls of
    `coimprove.tool_gates.GateMiddleware`.
    """
    ledger = ctx.ledger
    key = f"{gate_id}/{effect}"
    mine = [e for e in events if e.data.get("effect") == effect]
    for event in mine:
        if event.type == "effect.finished":
            return dict(event.data["update"])
    started = max((e.data["attempt"] for e in mine if e.type == "effect.started"), default=0)
    ended = {e.data["attempt"] for e in mine if e.type in ("effect.failed", "effect.interrupted")}
    common = {"run_id": ctx.run_id, "gate_id": gate_id}
    if started and started not in ended:
        ledger.append(
            "effect.interrupted",
            at=ctx.clock.now(),
            **common,
            data={"effect": effect, "attempt": started, "key": key},
        )
    if started:
        reapproved = any(
            e.type == "effect.reapproved" and e.data["attempt"] == started for e in mine
        )
        if not (idempotent or reapproved):
            failed = [
                e for e in mine if e.type == "effect.failed" and e.data.get("attempt") == started
            ]
            what = (
                f"failed ({failed[-1].data.get('error')})"
                if failed
                else "started and never finished"
            )
            raise EffectInterruptedError(
                f"effect {effect!r} (key {key}) attempt {started} {what}; it is not "
                "declared idempotent, so it will not run again without a fresh approval: "
                f"coimprove resume {ctx.run_id} --reapprove {key} --as YOU"
            )
    attempt = started + 1
    ledger.append(
        "effect.started",
        at=ctx.clock.now(),
        **common,
        data={"effect": effect, "attempt": attempt, "key": key, "digest": digest},
    )
    await ledger.durable()  # the attempt is on record before anything happens
    try:
        with recording(model_recorder(ctx)):
            update = await act(attempt, key)
    except Exception as exc:
        ledger.append(
            "effect.failed",
            at=ctx.clock.now(),
            **common,
            data={
                "effect": effect,
                "attempt": attempt,
                "key": key,
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        await ledger.durable()
        raise
    ledger.append(
        "effect.finished",
        at=ctx.clock.now(),
        **common,
        data={"effect": effect, "attempt": attempt, "key": key, "update": update},
    )
    await ledger.durable()  # before LangGraph checkpoints the step that ran it
    return update


class EffectNode:
    """The node an effect compiles to. Use `coimprove.add_effect` in your own graph."""

    __coimprove_role__: NodeRole = "effect"

    def __init__(self, name: str, fn: EffectFn, *, gate: str, idempotent: bool = False) -> None:
        self.name, self.fn, self.gate, self.idempotent = name, fn, gate, idempotent
        self.__name__ = f"effect:{name}"
        self.channels: Mapping[str, Any] | None = None
        """The state's channels (set by `add_effect`): an update with other keys is refused."""

    async def __call__(self, state: Any) -> dict[str, Any]:
        ctx = run_context()
        outcome, proposal, effect_events = verify_approval(
            ctx.ledger, state, self.gate, self.name, ctx.vouched
        )

        async def act(attempt: int, key: str) -> dict[str, Any]:
            approved = Approved(outcome.gate_id, outcome.digest, proposal, outcome, key, attempt)
            result = self.fn(state, approved)
            if inspect.isawaitable(result):
                result = await result
            return _state_update(self.name, result)

        update = await run_once(
            ctx,
            gate_id=outcome.gate_id,
            effect=self.name,
            digest=outcome.digest,
            idempotent=self.idempotent,
            events=effect_events,
            act=act,
        )
        return self._declared(update)

    def _declared(self, update: dict[str, Any]) -> dict[str, Any]:
        """`update`, if the state declares all its keys. Checked after ``effect.finished`` is
        recorded: the effect ran once and its update is in the ledger; the run fails here
        and, once the state declares the keys, `coimprove resume` hands the recorded update
        on without running the effect again."""
        check_declared(f"effect {self.name!r}", update, self.channels)
        return update
