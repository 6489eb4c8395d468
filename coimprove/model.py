"""Data that crosses a boundary: proposals, gate requests, decisions, outcomes, ledger events.

Everything here is a pydantic model validated on the way in. Verdicts, kinds and event types
are `Literal`s, so a typo is an error, not a silently ignored value.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

Verdict = Literal["approve", "edit", "reject", "request_changes", "escalate"]
"""What a reviewer can decide."""

Outcome = Literal["approve", "edit", "reject", "request_changes", "escalate", "canary"]
"""How a gate resolves. ``canary`` closes a planted round; the real proposal is shown next."""

ReviewerKind = Literal["human", "scripted", "model"]
Risk = Literal["low", "medium", "high", "critical"]
Truth = Literal["sound", "flawed", "dead_end"]
"""Hidden ground truth of a headless proposal; never shown to a reviewer."""

EventType = Literal[
    "run.started",
    "run.finished",
    "run.failed",
    "gate.opened",
    "gate.viewed",
    "detail.viewed",
    "gate.decided",
    "gate.resolved",
    "gate.timed_out",
    "gate.escalated",
    "gate.resumed",
    "canary.revealed",
    "effect.started",
    "effect.finished",
    "effect.failed",
    "effect.interrupted",
    "effect.reapproved",
    "experiment.recorded",
    "model.called",
    "feedback.shown",
]

VERDICTS: tuple[str, ...] = get_args(Verdict)
RISKS: tuple[str, ...] = get_args(Risk)


TRUSTED: dict[str, bool] = {"trusted": True}
"""Validation context for data read back from the ledger (see `Proposal`)."""


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str, allow_nan=False
)
_ENCODE = (  # the encoder `_CANONICAL.encode` builds on every call, built once
    None
    if c_make_encoder is None
    else c_make_encoder(None, str, encode_basestring, None, ":", ",", True, False, False)
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form every digest is taken over.

    Objects JSON has no form for are written as their `str`; NaN and infinities, which JSON
    cannot hold (and SQLite's JSON functions refuse), raise `ValueError`, as does a container
    that contains itself.
    """
    if _ENCODE is None:
        return _CANONICAL.encode(value)
    try:
        return "".join(_ENCODE(value, 0))
    except RecursionError:
        raise ValueError("a container contains itself (or nests too deep for JSON)") from None


def unencodable_field(value: Mapping[str, Any]) -> str | None:
    """The first top-level key of `value` whose value `canonical_json` refuses, if one alone
    does (for error messages; the error path only)."""
    for key, item in value.items():
        try:
            canonical_json(item)
        except ValueError:
            return str(key)
    return None


def not_json_message(what: str, value: Mapping[str, Any], exc: ValueError) -> str:
    """Why `canonical_json` refused `value` (named `what`), naming the field when one alone is
    to blame (for error messages; the error path only)."""
    where = unencodable_field(value)
    field = f" (field {where!r})" if where is not None else ""
    return f"{what}{field} is not JSON data ({exc}; NaN and infinities have no JSON form)"


def check_reviewer_id(reviewer: str) -> str:
    """`reviewer` if it is a usable reviewer id, else `ValueError` saying why.

    Ids are compared as written except for case (`reviewer_key`), so an id with surrounding
    whitespace or control characters, which would look like another reviewer's on screen and
    count as a different one, is refused rather than silently made distinct.
    """
    stripped = reviewer.strip()
    if not stripped:
        raise ValueError("a reviewer id cannot be empty")
    if reviewer != stripped:
        raise ValueError(f"reviewer id {reviewer!r} has leading or trailing whitespace")
    if not reviewer.isprintable():
        raise ValueError(f"reviewer id {reviewer!r} contains control characters")
    return reviewer


def reviewer_key(reviewer: str) -> str:
    """What makes two reviewer ids the same person: ids equal but for case (``Alice`` is
    ``alice``) count once toward a quorum and are one author for separation of duties."""
    return reviewer.casefold()


def sha256_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_id(prefix: str = "") -> str:
    """A short random id (12 hex digits), optionally prefixed."""
    return prefix + uuid.uuid4().hex[:12]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Artifact(_Frozen):
    """A file a proposal or result carries, identified by the digest of its bytes."""

    name: str
    media_type: str = "application/octet-stream"
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    size: int = Field(ge=0)
    content: str | None = None
    """Small text content inline (a diff, a metrics JSON); large files go by ``uri``."""
    uri: str | None = None

    @classmethod
    def from_text(cls, name: str, text: str, media_type: str = "text/plain") -> Artifact:
        """An inline text artifact with its digest computed."""
        data = text.encode()
        return cls(
            name=name,
            media_type=media_type,
            digest=sha256_digest(data),
            size=len(data),
            content=text,
        )


class Proposal(_Frozen):
    """What an agent proposes and a gate shows. Its `digest` binds an approval to its content."""

    id: str = Field(default_factory=lambda: new_id("p-"))
    kind: str = Field(min_length=1, description="idea, code, experiment, benchmark_item, …")
    title: str = Field(min_length=1)
    body: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    author: str = Field(min_length=1, description="who proposed it: an agent id or a person")
    risk: Risk = "low"
    tags: tuple[str, ...] = ()
    commit: str | None = Field(default=None, description="git commit SHA the proposal is about")
    revises: str | None = Field(default=None, description="id of the proposal this one revises")
    truth: Truth | None = Field(
        default=None,
        description="hidden ground truth for headless studies; not in the digest, never shown",
    )
    recalled: tuple[str, ...] = Field(
        default=(),
        description="ids of the past review notes the agent was given (`coimprove.memory`); "
        "provenance, not content: outside the payload and the digest",
    )
    _digest: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _check_claimed_digest(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        """A stored proposal carries its digest; it must still match the content.

        Validating with ``context=TRUSTED`` (data read back from the hash-chained ledger, which
        was checked when it was written) takes the stored digest as is.
        """
        claimed = None
        if isinstance(data, dict) and "digest" in data:
            data = dict(data)
            claimed = data.pop("digest")
        obj = handler(data)
        if claimed is not None:
            if info.context is TRUSTED:
                obj._digest = claimed
            elif claimed != obj.digest:
                raise ValueError(f"digest {claimed} does not match the content ({obj.digest})")
        return obj

    @computed_field  # type: ignore[prop-decorator]
    @property
    def digest(self) -> str:
        """sha256 over the canonical JSON of everything a reviewer sees."""
        private = self.__pydantic_private__  # read directly: `self._digest` goes via __getattr__
        digest = private.get("_digest") if private else None
        if digest is None:
            digest = self._digest = self._compute_digest()
        return digest

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; its digest is recomputed if anything changed."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy._digest = None
        return copy

    def _compute_digest(self) -> str:
        shown = {
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "payload": self.payload,
            "artifacts": [(a.name, a.digest) for a in self.artifacts],
            "author": self.author,
            "risk": self.risk,
            "tags": list(self.tags),
            "commit": self.commit,
        }
        try:
            return sha256_digest(canonical_json(shown).encode())
        except ValueError as exc:
            field = unencodable_field(shown) or "its content"
            raise ValueError(
                f"proposal {self.title!r} ({self.kind}) cannot be digested: {field} is not JSON "
                f"data ({exc}; NaN and infinities have no JSON form)"
            ) from None

    @property
    def has_detail(self) -> bool:
        """Whether there is more to open than the summary (a diff, artifacts, a payload)."""
        return bool(self.artifacts or self.commit or self.payload or len(self.body) > 280)

    @property
    def size(self) -> int:
        """Bytes a reviewer would have to read: body, payload and inline artifacts."""
        inline = sum(len(a.content or "") for a in self.artifacts)
        return len(self.body) + len(canonical_json(self.payload)) + inline

    def public(self) -> Proposal:
        """The proposal as a reviewer may see it (hidden ground truth removed)."""
        return self if self.truth is None else self.model_copy(update={"truth": None})

    def edited(self, payload: dict[str, Any], *, editor: str) -> Proposal:
        """A copy with a replaced payload (a new digest); the original stays on record."""
        return self.model_copy(
            update={
                "payload": payload,
                "id": new_id("p-"),
                "revises": self.id,
                "tags": (*self.tags, f"edited-by:{editor}"),
            }
        )

    @classmethod
    def from_state(cls, data: Any) -> Proposal:
        """Rebuild from the dict form stored in graph state (the digest field is recomputed)."""
        if isinstance(data, Proposal):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"expected a proposal dict, got {type(data).__name__}")
        return cls.model_validate(data)


class Requirement(_Frozen):
    """What the policy demands of one gate, resolved when the gate opens (a snapshot)."""

    policy: str
    rule: str
    roles: tuple[str, ...]
    quorum: int = Field(ge=1)
    reviewer_kinds: tuple[ReviewerKind, ...]
    allowed: tuple[Verdict, ...]
    timeout_s: float | None
    on_timeout: Literal["reject", "escalate"]
    min_review_seconds: float
    escalation: tuple[str, ...]
    level: int = Field(default=0, ge=0, description="0 = first line; n = n-th escalation")


ResubmissionChange = Literal["unchanged", "trivial", "changed"]


class Resubmission(_Frozen):
    """How a revision sent back by ``request_changes`` differs from the version sent back
    (`coimprove.resubmission`). ``flagged``: unchanged or trivially changed substance, i.e. the
    agent looked responsive without integrating the feedback (reward capture)."""

    previous_gate_id: str | None = Field(default=None, description="the gate that sent it back")
    change: ResubmissionChange
    compared: Literal["payload+artifacts", "body"] = Field(
        description="what was compared: payload and artifacts, or the body when it has neither"
    )
    similarity: float = Field(ge=0, le=1, description="difflib ratio of the normalised texts")
    changed_fields: tuple[str, ...] = Field(
        default=(), description="top-level fields whose normalised value differs"
    )

    @property
    def flagged(self) -> bool:
        return self.change != "changed"


class GateRequest(_Frozen):
    """What a reviewer is asked to decide. Contains nothing hidden (no truth, no canary flag)."""

    gate_id: str
    run_id: str
    graph: str
    gate: str = Field(description="gate node name")
    round: int = Field(ge=1)
    category: str | None = Field(default=None, description="collaboration category tag")
    proposal: Proposal
    requirement: Requirement
    feedback: str | None = Field(default=None, description="note from the previous round")
    payload_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema an edited payload must satisfy"
    )
    opened_at: float = 0.0
    resubmission: Resubmission | None = Field(
        default=None, description="set on a revision after request_changes: what changed"
    )

    @property
    def digest(self) -> str:
        return self.proposal.digest


class ViewEvent(_Frozen):
    """A reviewer looked at a gate (``gate``) or opened its detail/diff (``detail``)."""

    what: Literal["gate", "detail"]
    at: float
    visible_s: float | None = Field(
        default=None,
        ge=0,
        description="seconds it was visible on screen since this reviewer's previous view "
        "event of the same kind for the gate (None: not measured)",
    )


class Decision(_Frozen):
    """One reviewer's decision on one gate, bound to the digest that reviewer saw."""

    verdict: Verdict
    reviewer: str = Field(min_length=1)
    reviewer_kind: ReviewerKind = "human"
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    note: str = ""
    edited_payload: dict[str, Any] | None = None
    role: str | None = Field(default=None, description="the role the reviewer acts in")

    @field_validator("verdict", mode="before")
    @classmethod
    def _dashes(cls, v: Any) -> Any:
        return v.replace("-", "_") if isinstance(v, str) else v

    @field_validator("reviewer")
    @classmethod
    def _reviewer_id(cls, v: str, info: ValidationInfo) -> str:
        if info.context is not None and info.context.get("trusted"):
            return v  # read back from a ledger, which may predate the check: shown as recorded
        return check_reviewer_id(v)

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.verdict == "edit" and self.edited_payload is None:
            raise ValueError("an 'edit' decision needs edited_payload")
        if self.verdict != "edit" and self.edited_payload is not None:
            raise ValueError(f"edited_payload is only allowed with 'edit', not {self.verdict!r}")
        if self.edited_payload is not None:
            try:
                canonical_json(self.edited_payload)
            except ValueError as exc:
                raise ValueError(
                    not_json_message("edited_payload", self.edited_payload, exc)
                ) from None
        if self.verdict == "request_changes" and not self.note.strip():
            raise ValueError("'request_changes' needs a note telling the agent what to change")
        return self


class Review(_Frozen):
    """What a reviewer produced for one gate: its views (timed) and its decision."""

    views: tuple[ViewEvent, ...] = ()
    decision: Decision
    decided_at: float | None = None


class GateOutcome(_Frozen):
    """How a gate resolved: the value a paused gate is resumed with."""

    gate_id: str
    outcome: Outcome
    digest: str = Field(description="digest the outcome applies to (the edited one after edit)")
    proposal: Proposal | None = Field(
        default=None, description="the edited proposal to act on (after an edit only)"
    )
    note: str = ""
    reason: Literal["decision", "timeout", "canary"] = "decision"
    reviewers: tuple[str, ...] = ()
    agent: str | None = Field(default=None, description="the agent node that proposed it")


FeedbackKind = Literal["canary", "outcome", "peers"]
"""What a reviewer learns after deciding: a canary reveal, what became of an approval, how
others decided the same gate."""


class FeedbackItem(_Frozen):
    """What is knowable about one of a reviewer's decisions after the fact (`coimprove.feedback`).

    ``correct`` says whether the reviewer's verdict was right when that is known (a canary was
    caught or missed; an approval's proposal turned out sound or flawed); ``lesson`` marks an
    item that tells the reviewer it got something wrong — what a learning profile learns from.
    """

    kind: FeedbackKind
    reviewer: str
    gate_id: str
    run_id: str | None = None
    verdict: Verdict = Field(description="the reviewer's own verdict on the gate")
    correct: bool | None = None
    lesson: bool = False
    source_seq: int = Field(ge=0, description="seq of the ledger event this was learnt from")
    detail: dict[str, Any] = Field(default_factory=dict)
    explanation: str = ""


class LedgerEvent(_Frozen):
    """One append-only, hash-chained event."""

    seq: int
    type: EventType
    run_id: str | None = None
    gate_id: str | None = None
    actor: str | None = None
    at: float = Field(description="time on the run's clock (simulated in headless runs)")
    data: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str

    @classmethod
    def stored(
        cls,
        seq: int,
        type: EventType,
        run_id: str | None,
        gate_id: str | None,
        actor: str | None,
        at: float,
        data: dict[str, Any],
        prev_hash: str,
        hash: str,
    ) -> LedgerEvent:
        """An event as a ledger stored it, without validation (its fields were validated when
        it was appended, and the hash chain covers them): what `model_construct` builds, at a
        third of the cost, for the many events every read returns."""
        event = cls.__new__(cls)
        values = {
            "seq": seq,
            "type": type,
            "run_id": run_id,
            "gate_id": gate_id,
            "actor": actor,
            "at": at,
            "data": data,
            "prev_hash": prev_hash,
            "hash": hash,
        }
        _set = object.__setattr__
        _set(event, "__dict__", values)
        _set(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        return event

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LedgerEvent:
        """`stored` from a row of ``seq, type, run_id, gate_id, actor, at, data, prev_hash,
        hash`` with `data` as the JSON text the ledger keeps."""
        return cls.stored(
            row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7], row[8]
        )


_EVENT_FIELDS = frozenset(LedgerEvent.model_fields)


def event_hash(
    prev_hash: str,
    seq: int,
    type_: str,
    run_id: str | None,
    gate_id: str | None,
    actor: str | None,
    at: float,
    data_json: str,
) -> str:
    """The chain hash of one event: sha256 over the previous hash and the event's fields,
    each length-prefixed (so no two different events share an encoding)."""
    s, a = str(seq), repr(at)  # one f-string: this runs for every append and every verify
    text = (
        f"{len(prev_hash)}:{prev_hash};{len(s)}:{s};{len(type_)}:{type_};"
        f"{'-;' if run_id is None else f'{len(run_id)}:{run_id};'}"
        f"{'-;' if gate_id is None else f'{len(gate_id)}:{gate_id};'}"
        f"{'-;' if actor is None else f'{len(actor)}:{actor};'}"
        f"{len(a)}:{a};{len(data_json)}:{data_json};"
    )
    return hashlib.sha256(text.encode()).hexdigest()
