"""Gate nodes and the rules for deciding them.

A gate node is pure up to its single ``interrupt()``: it reads the proposal, resolves the policy
requirement and (sometimes) swaps in a canary, then pauses. LangGraph re-runs it from the top
on resume, so everything before the interrupt is deterministic in the run id and round.

Deciding happens outside the graph: `record_decision` validates a `Decision` against the gate's
ledger record inside one ledger transaction and, when the gate is settled (quorum reached,
rejected, sent back, escalated, or a canary decided), appends ``gate.resolved`` with the
`GateOutcome` that the runner later resumes the paused thread with.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
from langgraph.graph import END
from langgraph.types import Command, interrupt

from coimprove.errors import (
    DigestMismatchError,
    DuplicateReviewerError,
    GateClosedError,
    InvalidDecisionError,
    ReviewerNotAllowedError,
    SelfApprovalError,
    UnknownGateError,
)
from coimprove.model import (
    TRUSTED,
    Decision,
    GateOutcome,
    GateRequest,
    LedgerEvent,
    Outcome,
    Proposal,
    Resubmission,
    ViewEvent,
    check_reviewer_id,
    reviewer_key,
)
from coimprove.protocols import Ledger, LedgerReader, LedgerWriter
from coimprove.resubmission import compare
from coimprove.state import run_context

ROLE_ATTR = "__coimprove_role__"
"""Attribute marking a node callable as ``agent``, ``gate`` or ``effect``."""

NodeRole = Literal["agent", "gate", "effect"]


def _remember(cache: dict[Any, Any], key: Any, value: Any, *, limit: int) -> None:
    """Put `value` in a bounded cache, forgetting the oldest entries beyond `limit`."""
    cache[key] = value
    while len(cache) > limit:
        del cache[next(iter(cache))]


_PROPOSED: dict[int, tuple[dict[str, Any], Proposal]] = {}
"""State dicts agent nodes of this process made, by identity, with the proposal each came
from (holding the dict keeps its id from being reused)."""


def proposed(proposal: Proposal) -> dict[str, Any]:
    """The state form of a proposal an agent node made; the gate it goes to reuses the
    validated proposal instead of validating and digesting the dict again. (Only gates do:
    the effect always re-derives the digest from state, so a dict changed in place after it
    was proposed is refused there.)"""
    data = proposal.model_dump(mode="json")
    _remember(_PROPOSED, id(data), (data, proposal), limit=1024)
    return data


def _proposal_of(raw: Any) -> Proposal:
    known = _PROPOSED.get(id(raw))
    if known is not None and known[0] is raw:
        return known[1]
    return Proposal.from_state(raw)


def gate_id_for(run_id: str, gate: str, round_: int) -> str:
    """Gate ids are readable and stable across re-runs: ``<run>.<gate>.<round>``."""
    return f"{run_id}.{gate}.{round_}"


@dataclass(frozen=True)
class GateSpec:
    """Where a gate reads its proposal and where each outcome leads."""

    name: str
    proposal_from: str
    on_approve: str
    on_reject: str = END
    category: str | None = None
    payload_schema: dict[str, Any] | None = None

    @property
    def destinations(self) -> tuple[str, ...]:
        """Every node a `Command` from this gate can go to (declared to LangGraph)."""
        return tuple(
            dict.fromkeys((self.on_approve, self.on_reject, self.proposal_from, self.name))
        )


class GateNode:
    """The node a gate compiles to. Use `coimprove.add_gate` to put one in your own graph."""

    __coimprove_role__: NodeRole = "gate"

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        self._requests: dict[str, tuple[tuple[Any, ...], Proposal, dict[str, Any]]] = {}
        self.__name__ = f"gate:{spec.name}"

    async def __call__(self, state: Any) -> Command[str]:
        spec, ctx = self.spec, run_context()
        raw = (state.get("proposals") or {}).get(spec.proposal_from)
        if raw is None:
            raise InvalidDecisionError(
                f"gate {spec.name!r}: agent {spec.proposal_from!r} has not proposed anything"
            )
        round_ = (state.get("gate_rounds") or {}).get(spec.name, 0) + 1
        level = (state.get("gate_levels") or {}).get(spec.name, 0)
        gate_id = gate_id_for(ctx.run_id, spec.name, round_)
        feedback = (state.get("feedback") or {}).get(spec.proposal_from)
        note = feedback.get("note") if isinstance(feedback, dict) else None
        sent_back = feedback if isinstance(feedback, dict) else None
        last_canary = (state.get("gate_canary") or {}).get(spec.name, -1)
        inputs = (raw, level, note, last_canary, ctx.seed, id(ctx.policy))
        # LangGraph re-runs this node from the top on resume; everything up to interrupt() is
        # a pure function of `inputs`, so a resume in the same process reuses the request.
        cached = self._requests.get(gate_id)
        if cached is not None and cached[0] == inputs:
            proposal, value = cached[1], cached[2]
        else:
            proposal = _proposal_of(raw)
            value = self._request(proposal, gate_id, round_, level, note, last_canary, sent_back)
            _remember(self._requests, gate_id, (inputs, proposal, value), limit=4096)
        resumed = interrupt(value)
        self._requests.pop(gate_id, None)
        outcome = resumed_outcome(resumed, gate_id, gate=spec.name)
        return self._route(outcome, proposal, round_, level, state)

    def _request(
        self,
        proposal: Proposal,
        gate_id: str,
        round_: int,
        level: int,
        note: str | None,
        last_canary: int,
        sent_back: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The interrupt value: what the reviewer sees, plus what only the ledger may know.
        `sent_back`: the agent's feedback entry after ``request_changes`` (note, gate id and
        the version sent back), compared with what is shown (`coimprove.resubmission`)."""
        spec = self.spec
        return gate_request(
            proposal,
            gate=spec.name,
            agent=spec.proposal_from,
            gate_id=gate_id,
            round_=round_,
            level=level,
            note=note,
            canary_allowed=last_canary != round_ - 1,
            category=spec.category,
            payload_schema=spec.payload_schema,
            sent_back=sent_back,
        )

    def _route(
        self, outcome: GateOutcome, proposal: Proposal, round_: int, level: int, state: Any
    ) -> Command[str]:
        spec = self.spec
        update: dict[str, Any] = {"gate_rounds": {spec.name: round_}}
        had_feedback = spec.proposal_from in (state.get("feedback") or {})
        if outcome.outcome == "canary":
            update["gate_canary"] = {spec.name: round_}
            return Command(goto=spec.name, update=update)
        if outcome.outcome == "escalate":
            update["gate_levels"] = {spec.name: level + 1}
            return Command(goto=spec.name, update=update)
        if level:
            update["gate_levels"] = {spec.name: 0}
        if outcome.outcome in ("approve", "edit"):
            # the approved version lives in proposals[agent]; the approval names its digest
            update["approvals"] = {spec.name: outcome.model_dump(mode="json", exclude={"proposal"})}
            if outcome.digest != proposal.digest:  # edited: the state carries the new version
                if outcome.proposal is None or outcome.proposal.digest != outcome.digest:
                    raise InvalidDecisionError(
                        f"gate {spec.name!r}: the outcome of {outcome.gate_id!r} approves digest "
                        f"{outcome.digest[:19]}… but carries no proposal with that digest"
                    )
                update["proposals"] = {spec.proposal_from: outcome.proposal.model_dump(mode="json")}
            if had_feedback:
                update["feedback"] = {spec.proposal_from: None}
            return Command(goto=spec.on_approve, update=update)
        if spec.name in (state.get("approvals") or {}):
            update["approvals"] = {spec.name: None}
        if outcome.outcome == "request_changes":
            update["feedback"] = {
                spec.proposal_from: {
                    "note": outcome.note,
                    "gate_id": outcome.gate_id,
                    "previous": proposal.model_dump(mode="json"),
                }
            }
            return Command(goto=spec.proposal_from, update=update)
        return Command(goto=spec.on_reject, update=update)


def _resubmission(sent_back: dict[str, Any] | None, shown: Proposal) -> Resubmission | None:
    """What a revision after ``request_changes`` changed, compared with the version sent back
    (None: not a revision, or an older state without the version)."""
    previous = (sent_back or {}).get("previous")
    if not isinstance(previous, dict):
        return None
    gate_id = sent_back.get("gate_id") if sent_back else None
    return compare(
        _proposal_of(previous),
        shown,
        previous_gate_id=gate_id if isinstance(gate_id, str) else None,
    )


def gate_request(
    proposal: Proposal,
    *,
    gate: str,
    agent: str,
    gate_id: str,
    round_: int,
    level: int = 0,
    note: str | None = None,
    canary_allowed: bool = True,
    category: str | None = None,
    payload_schema: dict[str, Any] | None = None,
    sent_back: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The value a gate interrupts with (what `Runner` records as ``gate.opened``): the
    `GateRequest` a reviewer sees, plus what only the ledger may know (canary, truth).

    Every gate uses it: `GateNode`, and `coimprove.tool_gates.GateMiddleware` for the tool
    calls of LangChain agents. It resolves the run policy's requirement for `gate` at
    escalation `level` and, when the policy plants canaries and `canary_allowed` (never two
    in a row), may show a planted flaw instead of `proposal` (seeded by the gate id). It is
    a pure function of its arguments and the run context: LangGraph re-runs a node from the
    top on resume. `agent` names the proposal's source (recorded in ``gate.opened``).
    """
    ctx = run_context()
    requirement = ctx.policy.requirement(proposal, graph=ctx.graph, gate=gate, level=level)
    hidden: dict[str, Any] = {"canary": False, "truth": proposal.truth}
    shown = proposal
    rate = ctx.policy.canary_rate(proposal, graph=ctx.graph, gate=gate)
    if rate > 0 and ctx.canaries is not None and canary_allowed:
        rng = random.Random(f"{ctx.seed}:{gate_id}")
        if rng.random() < rate and (made := ctx.canaries.mutate(proposal, rng)) is not None:
            shown, mutation = made
            hidden = {
                "canary": True,
                "mutation": mutation,
                "truth": "flawed",
                "original_digest": proposal.digest,
            }
    request = GateRequest(
        gate_id=gate_id,
        run_id=ctx.run_id,
        graph=ctx.graph,
        gate=gate,
        round=round_,
        category=category,
        proposal=shown.public(),
        requirement=requirement,
        feedback=note,
        payload_schema=payload_schema,
        resubmission=_resubmission(sent_back, shown),
    )
    eligible = sorted(
        pattern
        for pattern, roles in ctx.policy.reviewers.items()
        if set(roles) & set(requirement.roles)
    )
    return {
        "coimprove_gate": gate_id,
        "agent": agent,
        "request": request.model_dump(mode="json"),
        "hidden": hidden,
        "eligible": eligible,
        "has_detail": shown.has_detail,
    }


def resumed_outcome(resumed: Any, gate_id: str, *, gate: str) -> GateOutcome:
    """The `GateOutcome` a paused gate was resumed with (recorded by the ledger), checked to
    be this gate's own; `InvalidDecisionError` otherwise (nothing is applied)."""
    outcome = GateOutcome.model_validate(resumed, context=TRUSTED)  # from the ledger
    if outcome.gate_id != gate_id:
        raise InvalidDecisionError(
            f"gate {gate!r} was resumed with the outcome of {outcome.gate_id!r}, "
            f"not its own {gate_id!r}; nothing was applied"
        )
    return outcome


# -- the ledger record of one gate ------------------------------------------------------------


@dataclass
class GateRecord:
    """Everything the ledger knows about one gate, folded from its events."""

    opened: LedgerEvent
    request: GateRequest
    hidden: dict[str, Any]
    eligible: tuple[str, ...]
    decisions: list[tuple[LedgerEvent, Decision]] = field(default_factory=list)
    resolved: LedgerEvent | None = None
    resumed: LedgerEvent | None = None
    timed_out: LedgerEvent | None = None
    proposal: Proposal = field(init=False)

    def __post_init__(self) -> None:
        self.proposal = self.request.proposal

    @property
    def gate_id(self) -> str:
        return self.request.gate_id

    @property
    def run_id(self) -> str:
        return self.request.run_id

    @property
    def interrupt_id(self) -> str:
        return str(self.opened.data["interrupt_id"])

    @property
    def status(self) -> Literal["open", "resolved", "resumed"]:
        if self.resumed is not None:
            return "resumed"
        return "resolved" if self.resolved is not None else "open"

    @property
    def outcome(self) -> GateOutcome | None:
        if self.resolved is None:
            return None
        return GateOutcome.model_validate(self.resolved.data["result"], context=TRUSTED)

    def approvers(self) -> list[str]:
        """Distinct reviewers whose approve/edit counts for the current digest."""
        digest = self.proposal.digest
        out: dict[str, str] = {}
        for event, decision in self.decisions:
            counted = event.data.get("new_digest") or decision.digest
            if decision.verdict in ("approve", "edit") and counted == digest:
                out.setdefault(reviewer_key(decision.reviewer), decision.reviewer)
        return list(out.values())

    def decided_current(self) -> set[str]:
        """Reviewers (by `reviewer_key`) who decided the version the gate shows now: they may
        not decide it again; an edit makes a new version, which everyone else may decide."""
        digest = self.proposal.digest
        return {
            reviewer_key(d.reviewer)
            for e, d in self.decisions
            if (e.data.get("new_digest") or d.digest) == digest
        }

    def authored_by(self, reviewer: str) -> bool:
        """Whether `reviewer` is an author of the proposal (as shown, or as edited) or an
        agent: separation of duties bars them from deciding it."""
        key = reviewer_key(reviewer)
        authors = {self.request.proposal.author, self.proposal.author}
        return key.startswith("agent:") or key in {reviewer_key(a) for a in authors}

    def _apply(self, event: LedgerEvent, decision: Decision | None = None) -> None:
        """Fold one more event in (`decision`: a ``gate.decided`` event's, already parsed)."""
        if event.type == "gate.decided":
            if decision is None:
                decision = Decision.model_validate(event.data["decision"], context=TRUSTED)
            self.decisions.append((event, decision))
            if decision.verdict == "edit":
                self.proposal = Proposal.model_validate(
                    event.data["edited_proposal"], context=TRUSTED
                )
        elif event.type == "gate.resolved":
            self.resolved = event
        elif event.type == "gate.resumed":
            self.resumed = event
        elif event.type == "gate.timed_out":
            self.timed_out = event


def load_gate(reader: LedgerReader, gate_id: str) -> GateRecord:
    """Fold a gate's events; `UnknownGateError` if it was never opened."""
    events = reader.events(gate_id=gate_id)
    if not events or events[0].type != "gate.opened":
        raise UnknownGateError(f"no gate {gate_id!r} in this ledger (see `coimprove pending`)")
    return fold_gate(events)


OPEN_GATE = """o.type = 'gate.opened' {scope}
AND NOT EXISTS (SELECT 1 FROM events r WHERE r.gate_id = o.gate_id AND r.type = 'gate.resolved')"""
"""What makes ``gate.opened`` event ``o`` an open gate (a WHERE clause; `scope` narrows it)."""

_OPEN_GATE_EVENTS_SQL = (
    "SELECT e.seq, e.type, e.run_id, e.gate_id, e.actor, e.at, e.data, e.prev_hash, e.hash "
    f"FROM events e WHERE e.gate_id IN (SELECT o.gate_id FROM events o WHERE {OPEN_GATE}) "
    "ORDER BY e.seq"
)


def open_gates(ledger: Ledger, run_id: str | None = None) -> list[GateRecord]:
    """The records of every gate waiting for a decision, oldest first (one SQL query: the
    events of every open gate, folded per gate)."""
    scope = "AND o.run_id = ?" if run_id else ""
    rows = ledger.query(_OPEN_GATE_EVENTS_SQL.format(scope=scope), [run_id] if run_id else [])
    by_gate: dict[str, list[LedgerEvent]] = {}
    for row in rows:  # as the ledger stored them (validated on append, hash-chained)
        by_gate.setdefault(row[3], []).append(LedgerEvent.from_row(row))
    return [fold_gate(events) for events in by_gate.values()]  # first seen = opened first


_REQUESTS: dict[str, tuple[dict[str, Any], GateRequest]] = {}
"""Parsed requests by the chain hash of their ``gate.opened`` event, with the data parsed: a
gate is folded several times between opening and resuming. A hit also needs equal data, so a
ledger (or a test) with made-up hashes cannot be served another gate's request."""


def _request_of(opened: LedgerEvent) -> GateRequest:
    raw = opened.data["request"]
    known = _REQUESTS.get(opened.hash)
    if known is not None and (known[0] is raw or known[0] == raw):
        return known[1]
    request = GateRequest.model_validate(raw, context=TRUSTED)
    _remember(_REQUESTS, opened.hash, (raw, request), limit=4096)
    return request


def fold_gate(events: Sequence[LedgerEvent]) -> GateRecord:
    """Build a `GateRecord` from a gate's events (the first must be ``gate.opened``)."""
    opened = events[0]
    record = GateRecord(
        opened=opened,
        request=_request_of(opened),
        hidden=dict(opened.data.get("hidden") or {}),
        eligible=tuple(opened.data.get("eligible") or ()),
    )
    for event in events[1:]:
        record._apply(event)
    return record


def may_decide(record: GateRecord, reviewer: str, roles: set[str] | None) -> bool:
    """Whether `reviewer` holds a role this gate needs: from `roles` (what the run's policy
    grants them) or, when the policy is not at hand, the patterns snapshotted at opening."""
    if roles is not None:
        return bool(roles & set(record.request.requirement.roles))
    return any(fnmatch.fnmatchcase(reviewer, pattern) for pattern in record.eligible)


def check_open(record: GateRecord) -> None:
    """`GateClosedError` if the gate is resolved (decided or timed out): no decision counts."""
    if record.resolved is not None:
        how = "timed out" if record.timed_out else f"resolved ({record.resolved.data['outcome']})"
        raise GateClosedError(
            f"gate {record.gate_id!r} is already {how}; this decision changes nothing"
        )


def check_reviewer(reviewer: str, where: str) -> None:
    """`InvalidDecisionError` (naming `where`) if `reviewer` is not a usable reviewer id."""
    try:
        check_reviewer_id(reviewer)
    except ValueError as exc:
        raise InvalidDecisionError(f"{where}: {exc}") from None


def check_decision(
    record: GateRecord, decision: Decision, *, roles: set[str] | None, at: float | None = None
) -> None:
    """Raise a `DecisionError` naming the problem if `decision` may not be recorded.

    `roles` are the roles the reviewer holds under the run's policy (None = derive from the
    patterns snapshotted when the gate opened). `at` is when the decision is made: a gate
    whose deadline has passed takes no more decisions (it fails closed), even before the
    runner has recorded its timeout.
    """
    gid, req = record.gate_id, record.request.requirement
    check_open(record)
    if at is not None and req.timeout_s is not None and at >= record.opened.at + req.timeout_s:
        raise GateClosedError(
            f"gate {gid!r} passed its deadline ({req.timeout_s:g}s after it opened, policy "
            f"{req.policy!r} rule {req.rule!r}) and fails closed ({req.on_timeout}); this "
            "decision changes nothing"
        )
    if decision.verdict not in req.allowed:
        raise InvalidDecisionError(
            f"gate {gid!r}: verdict {decision.verdict!r} is not allowed by policy "
            f"{req.policy!r} rule {req.rule!r} (allowed: {', '.join(req.allowed)})"
        )
    if decision.digest != record.proposal.digest:
        raise DigestMismatchError(
            f"gate {gid!r}: the decision is for digest {decision.digest[:19]}… but the gate now "
            f"shows {record.proposal.digest[:19]}… (the proposal changed; look again)"
        )
    if decision.reviewer_kind not in req.reviewer_kinds:
        raise ReviewerNotAllowedError(
            f"gate {gid!r}: policy {req.policy!r} rule {req.rule!r} accepts "
            f"{'/'.join(req.reviewer_kinds)} reviewers, not {decision.reviewer_kind!r}"
        )
    if record.authored_by(decision.reviewer):
        raise SelfApprovalError(
            f"gate {gid!r}: {decision.reviewer!r} is an author of this proposal and may not "
            "decide it (separation of duties)"
        )
    if decision.role is not None and decision.role not in req.roles:
        raise ReviewerNotAllowedError(
            f"gate {gid!r}: {decision.reviewer!r} acts as {decision.role!r}, but this gate takes "
            f"{' or '.join(req.roles)} (level {req.level}, policy {req.policy!r})"
        )
    if not may_decide(record, decision.reviewer, roles):
        raise ReviewerNotAllowedError(
            f"gate {gid!r}: reviewer {decision.reviewer!r} does not hold a role this gate needs "
            f"({' or '.join(req.roles)}, level {req.level}) under policy {req.policy!r}"
        )
    if reviewer_key(decision.reviewer) in record.decided_current():
        raise DuplicateReviewerError(
            f"gate {gid!r}: {decision.reviewer!r} has already decided this version; the same "
            "reviewer (ids that differ only in case are one) cannot count twice toward the quorum"
        )
    if decision.verdict == "escalate" and req.level >= len(req.escalation):
        raise InvalidDecisionError(
            f"gate {gid!r}: nobody to escalate to (policy {req.policy!r} rule {req.rule!r} has "
            f"escalation chain {list(req.escalation) or 'empty'}, this is level {req.level})"
        )
    if decision.verdict == "edit":
        schema = record.request.payload_schema
        if schema is not None:
            try:
                jsonschema.validate(decision.edited_payload, schema)
            except jsonschema.ValidationError as exc:
                where = "/".join(str(p) for p in exc.absolute_path) or "(payload)"
                raise InvalidDecisionError(
                    f"gate {gid!r}: edited payload is invalid at {where}: {exc.message}"
                ) from exc


def _settle(record: GateRecord, decision: Decision) -> Outcome | None:
    """The outcome once `decision` is counted, or None while a quorum is still open."""
    if decision.verdict in ("reject", "request_changes", "escalate"):
        return decision.verdict
    if len(record.approvers()) >= record.request.requirement.quorum:
        edited = any(d.verdict == "edit" for _, d in record.decisions)
        return "edit" if edited else "approve"
    return None


def _resolve(
    tx: LedgerWriter,
    record: GateRecord,
    outcome: Outcome,
    *,
    at: float,
    reason: Literal["decision", "timeout"],
    note: str = "",
) -> tuple[GateOutcome, dict[str, Any]]:
    canary = bool(record.hidden.get("canary"))
    result = GateOutcome(
        gate_id=record.gate_id,
        outcome="canary" if canary else outcome,
        digest=record.proposal.digest,
        # an edit's new version travels with the outcome; an approval names the shown digest
        proposal=record.proposal if outcome == "edit" and not canary else None,
        note=note,
        reason="canary" if canary else reason,
        reviewers=tuple(d.reviewer for _, d in record.decisions),
        agent=record.opened.data.get("agent"),
    )
    common: dict[str, Any] = {"run_id": record.run_id, "gate_id": record.gate_id, "at": at}
    dumped = result.model_dump(mode="json")
    tx.append(
        "gate.resolved",
        **common,
        data={"outcome": result.outcome, "verdict": outcome, "reason": reason, "result": dumped},
    )
    if outcome == "escalate" and not canary:
        tx.append(
            "gate.escalated",
            **common,
            data={"to_level": record.request.requirement.level + 1, "reason": reason},
        )
    if canary:
        verdicts = [d.verdict for _, d in record.decisions]
        tx.append(
            "canary.revealed",
            **common,
            data={
                "mutation": record.hidden.get("mutation"),
                "caught": any(v in ("reject", "request_changes") for v in verdicts),
                "verdicts": verdicts,
                "original_digest": record.hidden.get("original_digest"),
            },
        )
    return result, dumped


@dataclass(frozen=True)
class Recorded:
    """What `record_decision` did: the decision event, and the outcome if the gate settled."""

    event: LedgerEvent
    outcome: GateOutcome | None
    interrupt_id: str | None = None
    """The paused interrupt the outcome resumes (set when the gate settled)."""
    resumes_with: dict[str, Any] | None = None
    """The outcome as the ledger recorded it: the value the interrupt is resumed with."""


def record_decision(
    ledger: Ledger,
    gate_id: str,
    decision: Decision,
    *,
    at: float,
    views: Sequence[ViewEvent] = (),
    roles: set[str] | None = None,
) -> Recorded:
    """Validate and append a decision (and its views) in one transaction; settle the gate.

    Concurrent deciders are serialised by the ledger transaction, so two reviewers deciding
    at the same instant either both count toward a quorum or the second is refused as late.
    Nothing is written if the decision is refused.
    """
    with ledger.transaction() as tx:
        record = load_gate(tx, gate_id)
        check_decision(record, decision, roles=roles, at=at)
        for view in views:  # on the decider's own clock (which may differ from the opener's)
            if view.at > at:
                raise InvalidDecisionError(
                    f"gate {gate_id!r}: a {view.what} view dated {view.at:g} comes after the "
                    f"decision it belongs to ({at:g})"
                )
        common: dict[str, Any] = {
            "run_id": record.run_id,
            "gate_id": gate_id,
            "actor": decision.reviewer,
        }
        for view in views:
            tx.append(
                "gate.viewed" if view.what == "gate" else "detail.viewed",
                at=view.at,
                **common,
                data=_view_data(decision.reviewer_kind, view.visible_s),
            )
        data: dict[str, Any] = {
            "verdict": decision.verdict,
            "reviewer_kind": decision.reviewer_kind,
            "decision": decision.model_dump(mode="json"),
        }
        if decision.verdict == "edit":
            assert decision.edited_payload is not None
            edited = record.proposal.edited(decision.edited_payload, editor=decision.reviewer)
            data["edited_proposal"] = edited.model_dump(mode="json")
            data["new_digest"] = edited.digest
        event = tx.append("gate.decided", at=at, **common, data=data)
        record._apply(event, decision)
        outcome = _settle(record, decision)
        if outcome is None:
            return Recorded(event, None)
        result, dumped = _resolve(tx, record, outcome, at=at, reason="decision", note=decision.note)
        return Recorded(event, result, record.interrupt_id, dumped)


def record_view(
    ledger: Ledger,
    gate_id: str,
    reviewer: str,
    what: Literal["gate", "detail"],
    *,
    at: float,
    reviewer_kind: str = "human",
    visible_s: float | None = None,
) -> LedgerEvent:
    """Record that `reviewer` looked at a gate or opened its detail (for dwell and rubber-stamp).

    `visible_s`, when the front end measures it, is how long the gate (or its detail) was
    visible on the reviewer's screen since their previous view event of the same kind.
    """
    check_reviewer(reviewer, f"gate {gate_id!r}")
    with ledger.transaction() as tx:
        record = load_gate(tx, gate_id)
        return tx.append(
            "gate.viewed" if what == "gate" else "detail.viewed",
            at=at,
            run_id=record.run_id,
            gate_id=gate_id,
            actor=reviewer,
            data={**_view_data(reviewer_kind, visible_s), "status": record.status},
        )


def _view_data(reviewer_kind: str, visible_s: float | None) -> dict[str, Any]:
    data: dict[str, Any] = {"reviewer_kind": reviewer_kind}
    if visible_s is not None:
        data["visible_s"] = round(visible_s, 3)
    return data


def expire_gate(ledger: Ledger, gate_id: str, *, now: float) -> GateOutcome | None:
    """Fail closed: if the gate's timeout has passed, reject (or escalate) it. Else None."""
    with ledger.transaction() as tx:
        record = load_gate(tx, gate_id)
        req = record.request.requirement
        if record.resolved is not None or req.timeout_s is None:
            return None
        deadline = record.opened.at + req.timeout_s
        if now < deadline:
            return None
        tx.append(
            "gate.timed_out",
            at=now,
            run_id=record.run_id,
            gate_id=gate_id,
            data={"deadline": deadline, "action": req.on_timeout},
        )
        can_escalate = req.on_timeout == "escalate" and req.level < len(req.escalation)
        result, _ = _resolve(
            tx,
            record,
            "escalate" if can_escalate else "reject",
            at=now,
            reason="timeout",
            note=f"timed out after {req.timeout_s:g}s",
        )
        return result
