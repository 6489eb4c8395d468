"""coimprove gates on the tool calls of LangChain v1 agents (`create_agent`).

```python
from langchain.agents import create_agent
from coimprove import GateMiddleware, Workflow

agent = create_agent(model, tools=[write_file, add], middleware=[GateMiddleware()])
workflow = Workflow.from_compiled(agent, name="writer", policy="default")
# coimprove run path/to/this.py:workflow  (pending / decide / review / report as for any run)
```

`GateMiddleware` is the counterpart of LangChain's ``HumanInTheLoopMiddleware`` with coimprove's
gate machinery behind it. After each model turn (``after_model``) every gated tool call becomes a
`Proposal` (kind ``tool:<name>``, the arguments as payload, the tool's argument schema as the
payload schema) put to a gate with `coimprove.gates.gate_request`, one ``interrupt()`` at a time,
so the policy's requirement, quorum, separation of duties, timeouts, escalation and canaries
all apply and every decision is in the ledger. Outcomes:

- **approve** — the call runs as proposed.
- **edit** — the call runs with the reviewer's arguments (checked against the tool's JSON schema
  when the decision is recorded; a payload that does not fit is refused, naming the field).
- **reject** (or a timeout) — the tool never runs; the model gets an error `ToolMessage` saying
  so, with the reviewer's note.
- **request_changes** — the tool does not run; the model gets the note as an error
  `ToolMessage` and may propose a revised call, whose gate shows the note and what changed.
- **escalate** — the same call is put to the next role of the policy's escalation chain.
- a **canary** — a planted variant was shown and decided (never run); the real call is shown next.

The tool itself runs only inside ``wrap_tool_call``, and only with an approval whose digest
matches the call being made — checked against the state and the ledger, as an effect node
checks its approval — recorded as an effect (``effect.started`` / ``effect.finished`` with the
tool's reply, key ``<gate id>/tool:<name>``), so a re-run step replays the recorded reply
instead of calling the tool twice.

Why after the model turn, not per call as the tool starts (``HumanInTheLoopMiddleware``'s
``per_call`` mode): `create_agent` runs each tool call as its own parallel task, and LangGraph
mishandles interrupts answered in parallel tasks (#6533, #5952; see the LangGraph notes), while
gate ids (``<run>.<gate>.<round>``) must be handed out in one place to be unique and stable
across re-runs. So the calls of one turn are gated one after another in one node; none of
them runs before all are decided.

This module needs ``langchain>=1.1`` (``pip install 'coimprove[agents]'``); the rest of
coimprove does not import it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired

try:
    from langchain.agents.middleware.types import (
        AgentMiddleware,
        AgentState,
        PrivateStateAttr,
    )
    from langchain.tools.tool_node import ToolCallRequest
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "coimprove.tool_gates (GateMiddleware) needs LangChain v1: "
        "pip install 'coimprove[agents]' (or 'langchain>=1.1')"
    ) from exc

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, interrupt
from pydantic import ValidationError

from coimprove.channels import MergedDict
from coimprove.effects import recorded_approval, run_once
from coimprove.errors import ApprovalRequiredError, CoimproveError, GraphDefinitionError
from coimprove.gates import gate_id_for, gate_request, resumed_outcome
from coimprove.model import (
    RISKS,
    GateOutcome,
    LedgerEvent,
    Proposal,
    Risk,
    Truth,
    canonical_json,
    sha256_digest,
)
from coimprove.state import RunContext, run_context

GATES_KEY = "coimprove_tool_gates"
"""State key: gate name -> ``{"round": last round opened, "feedback": {tool: sent back}}``."""
APPROVALS_KEY = "coimprove_tool_approvals"
"""State key: tool call id -> ``{"outcome": GateOutcome, "proposal": approved Proposal}``."""

_GATE_NAME = re.compile(r"[A-Za-z0-9_-]+")

Label = Callable[[str, Mapping[str, Any]], Truth | None]
"""Hidden ground truth of a tool call (name, arguments) for headless studies."""


class ToolGateState(AgentState[Any]):
    """The agent state `GateMiddleware` adds (private: neither input nor output)."""

    coimprove_tool_gates: NotRequired[Annotated[dict[str, Any], MergedDict(), PrivateStateAttr]]
    coimprove_tool_approvals: NotRequired[Annotated[dict[str, Any], MergedDict(), PrivateStateAttr]]


def tool_kind(name: str) -> str:
    """The proposal kind of a call to tool `name` (what policy rules match)."""
    return f"tool:{name}"


def _args_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of the arguments a model gives `tool` (injected ones excluded)."""
    params = convert_to_openai_tool(tool)["function"].get("parameters") or {}
    return dict(params)


@dataclass(frozen=True)
class _Gated:
    """One gated call's result after its gate settled."""

    approval: dict[str, Any] | None
    reply: ToolMessage | None
    feedback: dict[str, Any] | None


class GateMiddleware(AgentMiddleware[ToolGateState, Any]):
    """Put the tool calls of a LangChain agent through coimprove gates.

    `gated`: the tools whose calls are gated — tool objects (their argument schema then
    validates edits) or names; None (the default) gates every call. `exempt`: tool names never
    gated. With `rules_only`, a call is gated only when a rule of the run's policy (not its
    `defaults`) matches its proposal — the policy then says which calls need a person.
    `gate` names the gate (policy ``match.gate``; gate ids are ``<run>.<gate>.<round>``).
    `risk`: the proposals' risk, one for all or by tool name (default ``medium``). `author`
    (default ``agent:<graph name>``) is the proposer barred from deciding its own calls.
    `idempotent`: tools that may run again when an earlier attempt was interrupted.
    `label`: hidden ground truth of a call (name, args) for headless studies.

    Run the agent with coimprove's `Runner` (`Workflow.from_compiled`): the gate needs the run's
    ledger and policy, and the agent is driven asynchronously.
    """

    state_schema = ToolGateState

    def __init__(
        self,
        *,
        gate: str = "tools",
        gated: Sequence[BaseTool | str] | None = None,
        exempt: Collection[str] = (),
        rules_only: bool = False,
        risk: Risk | Mapping[str, Risk] = "medium",
        author: str | None = None,
        idempotent: Collection[str] = (),
        label: Label | None = None,
        category: str | None = None,
    ) -> None:
        super().__init__()
        if not _GATE_NAME.fullmatch(gate):
            raise GraphDefinitionError(
                f"gate name {gate!r} must be letters, digits, '_' or '-' (it is part of gate ids)"
            )
        risks = [risk] if isinstance(risk, str) else list(risk.values())
        if bad := [r for r in risks if r not in RISKS]:
            raise GraphDefinitionError(
                f"GateMiddleware(risk=...): {bad[0]!r} is not a risk ({', '.join(RISKS)})"
            )
        self.gate, self.rules_only, self.risk = gate, rules_only, risk
        self.author, self.label, self.category = author, label, category
        self.exempt, self.idempotent = frozenset(exempt), frozenset(idempotent)
        self.schemas: dict[str, dict[str, Any]] = {}
        """Argument schemas of the gated tools given as objects, by name."""
        self.descriptions: dict[str, str] = {}
        self.names: frozenset[str] | None = None
        if gated is not None:
            names = set()
            for item in gated:
                if isinstance(item, BaseTool):
                    self.schemas[item.name] = _args_schema(item)
                    self.descriptions[item.name] = item.description
                    names.add(item.name)
                elif isinstance(item, str) and item:
                    names.add(item)
                else:
                    raise GraphDefinitionError(
                        f"GateMiddleware(gated=...): {item!r} is neither a tool nor a tool name"
                    )
            self.names = frozenset(names)

    @property
    def name(self) -> str:
        """Unique per gate, so one agent may hold several of these middlewares."""
        return "GateMiddleware" if self.gate == "tools" else f"GateMiddleware_{self.gate}"

    # -- which calls are gated, and as what --------------------------------------------------

    def proposal(self, call: ToolCall, ctx: RunContext, *, ident: str = "") -> Proposal:
        """The proposal a call is shown as (`ident` makes its id deterministic)."""
        name, args = call["name"], dict(call.get("args") or {})
        risk = self.risk if isinstance(self.risk, str) else self.risk.get(name, "medium")
        body = f"The agent asks to call `{name}` with the arguments shown (the payload)."
        if described := self.descriptions.get(name):
            body += f"\n\n`{name}`: {described}"
        fields: dict[str, Any] = {
            "kind": tool_kind(name),
            "title": f"Call tool {name}",
            "body": body,
            "payload": args,
            "author": self.author or f"agent:{ctx.graph}",
            "risk": risk,
            "tags": ("tool-call",),
            "truth": self.label(name, args) if self.label is not None else None,
        }
        if ident:
            fields["id"] = "p-" + hashlib.sha256(ident.encode()).hexdigest()[:12]
        try:
            return Proposal.model_validate(fields)
        except (ValidationError, ValueError) as exc:
            raise CoimproveError(
                f"gate {self.gate!r}: the call to {name!r} cannot be proposed: {exc}"
            ) from exc

    def gates(self, call: ToolCall, ctx: RunContext) -> bool:
        """Whether `call` must pass the gate under the run's policy."""
        name = call["name"]
        if name in self.exempt or (self.names is not None and name not in self.names):
            return False
        if not self.rules_only:
            return True
        rule, _ = ctx.policy.rule_for(self.proposal(call, ctx), graph=ctx.graph, gate=self.gate)
        return rule != "defaults"

    # -- the gate: after each model turn -------------------------------------------------------

    def after_model(self, state: ToolGateState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Put each gated call of the model's last turn to the gate, one interrupt at a time."""
        messages = state["messages"]
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        if last is None or not last.tool_calls:
            return None
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        ctx = run_context()
        pending = [c for c in last.tool_calls if c.get("id") not in answered]
        gated = [c for c in pending if self.gates(c, ctx)]
        if not gated:
            return None
        for call in gated:
            if not call.get("id"):
                raise CoimproveError(
                    f"gate {self.gate!r}: the model called {call['name']!r} without a tool call "
                    "id, so its approval could not be bound to it"
                )
        gates: dict[str, Any] = state.get("coimprove_tool_gates") or {}
        mine: dict[str, Any] = gates.get(self.gate) or {}
        round_ = int(mine.get("round", 0))
        feedback: dict[str, Any] = dict(mine.get("feedback") or {})
        approvals: dict[str, Any] = {}
        replies: list[ToolMessage] = []
        for call in gated:
            settled, round_ = self._settle(call, ctx, round_, feedback.get(call["name"]))
            if settled.approval is not None:
                approvals[str(call["id"])] = settled.approval
            if settled.reply is not None:
                replies.append(settled.reply)
            if settled.feedback is None:
                feedback.pop(call["name"], None)
            else:
                feedback[call["name"]] = settled.feedback
        # the model's own calls stay in its message (as LangChain's HITL keeps them): an
        # edit is substituted when the tool runs, and the model is told what ran instead
        update: dict[str, Any] = {
            GATES_KEY: {self.gate: {"round": round_, "feedback": feedback}},
            APPROVALS_KEY: Overwrite(approvals),  # this turn's only: none survives into the next
        }
        if replies:
            update["messages"] = replies
        return update

    async def aafter_model(
        self, state: ToolGateState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        return self.after_model(state, runtime)

    def _settle(
        self, call: ToolCall, ctx: RunContext, round_: int, sent_back: dict[str, Any] | None
    ) -> tuple[_Gated, int]:
        """Open the call's gate (again after an escalation or a canary) until it settles.
        Deterministic up to each interrupt: LangGraph re-runs the node from the top."""
        name = call["name"]
        proposal = self.proposal(call, ctx, ident=f"{ctx.run_id}:{self.gate}:{round_ + 1}")
        level, last_canary = 0, -1
        note = sent_back.get("note") if sent_back else None
        while True:
            round_ += 1
            gate_id = gate_id_for(ctx.run_id, self.gate, round_)
            value = gate_request(
                proposal,
                gate=self.gate,
                agent="model",
                gate_id=gate_id,
                round_=round_,
                level=level,
                note=note,
                canary_allowed=last_canary != round_ - 1,
                category=self.category,
                payload_schema=self.schemas.get(name),
                sent_back=sent_back,
            )
            outcome = resumed_outcome(interrupt(value), gate_id, gate=self.gate)
            if outcome.outcome == "canary":
                last_canary = round_
            elif outcome.outcome == "escalate":
                level += 1
            else:
                return self._result(call, proposal, outcome), round_

    def _result(self, call: ToolCall, proposal: Proposal, outcome: GateOutcome) -> _Gated:
        name, gid = call["name"], outcome.gate_id
        if outcome.outcome in ("approve", "edit"):
            approved = proposal
            if outcome.outcome == "edit" or outcome.digest != proposal.digest:
                if outcome.proposal is None or outcome.proposal.digest != outcome.digest:
                    raise CoimproveError(
                        f"gate {gid!r} approves digest {outcome.digest[:19]}… but carries no "
                        "proposal with that digest; the call was not run"
                    )
                approved = outcome.proposal
            entry = {
                "call": call_digest(call),
                "outcome": outcome.model_dump(mode="json", exclude={"proposal"}),
                "proposal": approved.model_dump(mode="json"),
            }
            return _Gated(entry, None, None)
        because = f": {outcome.note}" if outcome.note else ""
        if outcome.outcome == "request_changes":
            text = (
                f"A reviewer asked for changes before `{name}` may run (gate {gid}){because}. "
                "The tool did not run; propose a revised call."
            )
            previous = proposal.model_dump(mode="json")
            sent_back = {"note": outcome.note, "gate_id": gid, "previous": previous}
        else:
            how = "timed out" if outcome.reason == "timeout" else "was rejected by a reviewer"
            text = f"The call to `{name}` {how} (gate {gid}){because}. The tool did not run."
            sent_back = None
        reply = ToolMessage(content=text, tool_call_id=call["id"], name=name, status="error")
        return _Gated(None, reply, sent_back)

    # -- the tool: runs only with the approval of this very call -------------------------------

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        raise CoimproveError(
            "GateMiddleware runs under coimprove's Runner, which drives agents asynchronously; "
            "start the agent with `coimprove run` (or Runner.start), not agent.invoke()"
        )

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        call = request.tool_call
        ctx = run_context()
        if not self.gates(call, ctx):
            return await handler(request)
        outcome, approved, events = self.approval(request.state, call, ctx)
        args = dict(approved.payload)
        edited = canonical_json(args) != canonical_json(dict(call.get("args") or {}))
        to_run = request.override(tool_call={**call, "args": args}) if edited else request
        ran: list[ToolMessage | Command[Any]] = []

        async def act(attempt: int, key: str) -> dict[str, Any]:
            ran.append(await handler(to_run))
            return _recorded(ran[-1])

        update = await run_once(
            ctx,
            gate_id=outcome.gate_id,
            effect=tool_kind(call["name"]),
            digest=outcome.digest,
            idempotent=call["name"] in self.idempotent,
            events=events,
            act=act,
        )
        result = ran[-1] if ran else _replayed(update, call, outcome.gate_id)
        return _with_edit_notice(result, call["name"], args, outcome.gate_id) if edited else result

    def approval(
        self, state: Any, call: ToolCall, ctx: RunContext
    ) -> tuple[GateOutcome, Proposal, list[LedgerEvent]]:
        """The approval of exactly this call, checked against the state and the ledger: the
        outcome, the approved proposal (its payload: the arguments to run with) and the gate's
        effect events. Else `ApprovalRequiredError`: the tool does not run."""
        name, effect = call["name"], tool_kind(call["name"])
        entry = ((state or {}).get(APPROVALS_KEY) or {}).get(call.get("id") or "")
        if not isinstance(entry, dict):
            raise ApprovalRequiredError(
                f"tool call {name!r} ({call.get('id')}) has no approval from gate {self.gate!r}; "
                "it was not run"
            )
        try:
            outcome = GateOutcome.model_validate(entry["outcome"])
            approved = Proposal.model_validate(entry["proposal"])  # its digest is re-derived
        except (KeyError, ValidationError, ValueError, TypeError) as exc:
            raise ApprovalRequiredError(
                f"tool call {name!r} ({call['id']}): its approval record is unreadable ({exc}); "
                "it was not run"
            ) from exc
        if entry.get("call") != call_digest(call):
            raise ApprovalRequiredError(
                f"tool call {name!r} ({call['id']}) is not the call gate {outcome.gate_id!r} "
                "decided (its name or arguments changed after the decision); it was not run"
            )
        if (
            outcome.outcome not in ("approve", "edit")
            or approved.digest != outcome.digest
            or approved.kind != effect
        ):
            raise ApprovalRequiredError(
                f"tool call {name!r} ({call['id']}): what it would run is not what gate "
                f"{outcome.gate_id!r} approved (digest {outcome.digest[:19]}…); it was not run"
            )
        events = recorded_approval(ctx.ledger, outcome, effect, ctx.vouched)
        return outcome, approved, events


def call_digest(call: ToolCall) -> str:
    """The digest of a tool call as the model made it (id, name, arguments)."""
    made = {"id": call.get("id"), "name": call["name"], "args": call.get("args") or {}}
    return sha256_digest(canonical_json(made).encode())


def _with_edit_notice(
    result: ToolMessage | Command[Any], name: str, args: Mapping[str, Any], gate_id: str
) -> ToolMessage | Command[Any]:
    """Tell the model that a reviewer edited its call, and what ran instead."""
    if not isinstance(result, ToolMessage):
        return result
    notice = (
        f"A reviewer edited this call (gate {gate_id}); `{name}` ran with arguments "
        f"{canonical_json(dict(args))} instead."
    )
    content = result.content
    if isinstance(content, str):
        new: Any = f"{notice}\n\n{content}" if content else notice
    else:
        new = [{"type": "text", "text": notice}, *content]
    return result.model_copy(update={"content": new})


def _recorded(result: ToolMessage | Command[Any]) -> dict[str, Any]:
    """What the ledger keeps of a tool's reply (``effect.finished``), to replay it."""
    if isinstance(result, ToolMessage):
        content: Any = result.content
        try:
            canonical_json(content)
        except (TypeError, ValueError):
            content = str(content)
        return {"content": content, "status": result.status}
    return {"command": True}


def _replayed(update: Mapping[str, Any], call: ToolCall, gate_id: str) -> ToolMessage:
    """The recorded reply of a call that already ran (a re-run step does not run it again)."""
    if update.get("command"):
        raise CoimproveError(
            f"tool {call['name']!r} (gate {gate_id!r}) already ran and returned a Command, "
            "which cannot be replayed from the ledger; it is not run twice"
        )
    return ToolMessage(
        content=update.get("content", ""),
        tool_call_id=call["id"],
        name=call["name"],
        status=update.get("status", "success"),
    )
