"""`AgentRole`: a node factory that turns state into a typed `Proposal` through a chat model.

A role instance is the agent function of a workflow node (``fn(state, ctx)``, async). It renders
its prompt file, the run's context and — after a ``request_changes`` — the reviewer's note and
its previous proposal; asks the model for its output schema (`generate_structured`: validated,
retried, logged); and builds a Proposal of its kind. Plug it in with ``role.add_to(wf, name)``
or ``wf.agent(name, role, kind=role.kind, payload=role.payload_model)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from coimprove.agents.models import ModelSpec, resolve_model
from coimprove.agents.prompts import load_prompt
from coimprove.agents.structured import RetryPolicy, generate_structured, json_instructions
from coimprove.model import Proposal, Risk

ENGINE_KEYS = frozenset(
    {"proposals", "approvals", "feedback", "gate_rounds", "gate_levels", "gate_canary"}
)
"""State channels coimprove's engine uses; not shown to models as context."""

ContextSpec = Sequence[str] | Callable[[Mapping[str, Any]], Any] | None
"""What of the state a role shows its model: state keys, a function of the state, or None
(every key but the engine's channels)."""

OutT = TypeVar("OutT", bound="RoleOutput")


class FeedbackLike(Protocol):
    """What a reviewer said last time (`coimprove.workflow.Feedback`)."""

    @property
    def note(self) -> str: ...
    @property
    def gate_id(self) -> str: ...
    @property
    def previous(self) -> Proposal: ...


class AgentContextLike(Protocol):
    """The second argument of an agent function (`coimprove.workflow.AgentContext`)."""

    @property
    def name(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def feedback(self) -> FeedbackLike | None: ...


class NoteLike(Protocol):
    """A past review note (`coimprove.memory.ReviewNote`)."""

    def render(self, max_chars: int = 400) -> str: ...


def recalled_notes(ctx: AgentContextLike, query: str) -> list[NoteLike]:
    """Past review notes for `query` when the run has agent memory on (`ctx.recall`), else []."""
    recall = getattr(ctx, "recall", None)
    return list(recall(query)) if callable(recall) else []


class WorkflowLike(Protocol):
    """Anything with `Workflow.agent`'s signature."""

    def agent(
        self,
        name: str,
        fn: Any = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
    ) -> Any: ...


class RoleOutput(BaseModel):
    """Fields every role's output has."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=3, max_length=120, description="a short, specific title")
    changes: str = Field(
        default="",
        max_length=400,
        description="only when revising after reviewer feedback: what you changed and why",
    )


def render_context(state: Mapping[str, Any], spec: ContextSpec, limit: int) -> str:
    """The run context a role shows its model, as JSON (or text), capped at `limit` chars."""
    if callable(spec):
        picked: Any = spec(state)
    elif spec is None:
        picked = {k: v for k, v in state.items() if k not in ENGINE_KEYS}
    else:
        picked = {k: state[k] for k in spec if k in state}
    text = picked if isinstance(picked, str) else json.dumps(picked, indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (truncated)"


def proposal_brief(proposal: Proposal, limit: int = 3000) -> str:
    """A proposal as a model should see it: title, body, payload, inline diff (truncated)."""
    parts = [f"title: {proposal.title}", f"kind: {proposal.kind}", f"risk: {proposal.risk}"]
    if proposal.body:
        parts.append(f"body:\n{proposal.body}")
    if proposal.payload:
        parts.append("payload: " + json.dumps(proposal.payload, default=str))
    for art in proposal.artifacts:
        if art.content:
            parts.append(f"{art.name}:\n{art.content}")
    text = "\n".join(parts)
    return text if len(text) <= limit else text[:limit] + "\n… (truncated)"


def _norm(text: str) -> str:
    return " ".join(text.split()).strip().lower()


GENERIC_WORDS = frozenset(
    {
        "answer",
        "answers",
        "approach",
        "better",
        "done",
        "effective",
        "efficient",
        "failed",
        "failure",
        "good",
        "idea",
        "ideas",
        "improve",
        "improved",
        "improvement",
        "issue",
        "method",
        "outcome",
        "problem",
        "problems",
        "proposal",
        "pursuing",
        "question",
        "result",
        "results",
        "simple",
        "solution",
        "solutions",
        "solve",
        "solving",
        "success",
        "successful",
        "task",
        "that",
        "this",
        "what",
        "when",
        "where",
        "which",
        "while",
        "with",
        "work",
        "works",
        "worth",
        "would",
        "could",
        "should",
        "about",
        "there",
        "their",
        "these",
        "those",
        "from",
        "into",
        "very",
        "more",
        "most",
        "some",
    }
)
"""Words that name nothing concrete: a title made only of these (and words of fewer than four
letters) says nothing about the proposal ("The solution", "A simple, yet effective, solution
to the problem.", "Failed")."""


def degenerate_reason(text: str, *, prompt: str, earlier: Mapping[str, str]) -> str | None:
    """Why a model's text is no use as written, or None: empty (no letters or digits), the
    same as an earlier gate's text (`earlier`: where -> text), copied from the prompt (four
    words or more found verbatim in it), or generic (no digit, and no word of four letters or
    more outside `GENERIC_WORDS`)."""
    norm = _norm(text)
    if len(norm) < 3 or not any(c.isalnum() for c in norm):
        return "empty"
    for where, other in earlier.items():
        if norm == _norm(other):
            return f"the same as the title at {where}"
    if len(norm.split()) >= 4 and norm in _norm(prompt):
        return "copied from the prompt"
    words = re.findall(r"[^\W_]+", norm)
    if not any(len(w) >= 4 and w not in GENERIC_WORDS for w in words) and not any(
        c.isdigit() for c in norm
    ):
        return "generic (it names nothing concrete)"
    return None


def earlier_titles(state: Mapping[str, Any], ctx: AgentContextLike) -> dict[str, str]:
    """Titles of the run's other agents' latest proposals (by agent name)."""
    proposals = state.get("proposals") or {}
    out: dict[str, str] = {}
    if isinstance(proposals, Mapping):
        for name, raw in proposals.items():
            title = raw.get("title") if isinstance(raw, Mapping) else None
            if name != ctx.name and isinstance(title, str):
                out[name] = title
    return out


def disclose_fallback(
    proposal: Proposal,
    field: str,
    original: str,
    reason: str,
    *,
    source: str = "the values the model chose",
) -> Proposal:
    """`proposal` with a note on top of its body saying that its `field` was written by
    coimprove from `source` because the model's (`original`) was `reason`, and the tag
    ``fallback:<field>`` (the reviewer sees it; reports can count it)."""
    note = (
        f"**{field.capitalize()} written by coimprove, not the model:** the model's {field} "
        f"{json.dumps(original[:200], ensure_ascii=False)} was {reason}, so this {field} is "
        f"built from {source}."
    )
    body = note + ("\n\n" + proposal.body if proposal.body else "")
    tags = tuple(dict.fromkeys((*proposal.tags, f"fallback:{field}")))
    return proposal.model_copy(update={"body": body, "tags": tags})


class AgentRole(Generic[OutT]):
    """Base of every role. Subclasses set the class attributes and implement `build`."""

    kind: ClassVar[str]
    prompt_name: ClassVar[str]
    output_model: type[OutT]
    payload_model: type[BaseModel] | None = None
    category: ClassVar[str | None] = None
    default_risk: ClassVar[Risk] = "low"

    def __init__(
        self,
        model: ModelSpec | None = None,
        *,
        context: ContextSpec = None,
        prompt: str | None = None,
        instructions: str = "",
        retry: RetryPolicy | None = None,
        risk: Risk | None = None,
        tags: Sequence[str] = (),
        max_context_chars: int = 6000,
    ) -> None:
        self.model_spec = model
        self.context, self.instructions, self.retry = context, instructions, retry
        self.prompt_text = load_prompt(prompt or self.prompt_name)
        self.risk: Risk = risk or self.default_risk
        self.tags = tuple(tags)
        self.max_context_chars = max_context_chars
        self._model: BaseChatModel | None = None

    @property
    def model(self) -> BaseChatModel:
        """The chat model, resolved on first use (building a workflow loads nothing)."""
        if self._model is None:
            self._model = resolve_model(self.model_spec)
        return self._model

    def add_to(self, workflow: WorkflowLike, name: str) -> None:
        """Register this role as agent node `name` of `workflow`, with its kind and payload."""
        workflow.agent(name, self, kind=self.kind, payload=self.payload_model)

    # -- prompt ---------------------------------------------------------------------------------

    def messages(self, state: Mapping[str, Any], ctx: AgentContextLike) -> list[BaseMessage]:
        """System prompt (the role's file) and the task: context, feedback, output format."""
        system = self.prompt_text
        if self.instructions:
            system += "\n\n" + self.instructions
        context = render_context(state, self.context, self.max_context_chars)
        task = ["## Context", context or "(none)"]
        fb = ctx.feedback
        notes = recalled_notes(ctx, context + ("\n" + fb.note if fb is not None else ""))
        if notes:
            task += [
                "## Notes from past reviews",
                "Reviewers decided these earlier proposals like this one. Avoid what they "
                "objected to; keep what they changed.",
                *(f"- {n.render()}" for n in notes),
            ]
        if fb is not None:
            task += [
                "## Reviewer feedback",
                "A human reviewer sent your previous proposal back and asked for changes.",
                f"Reviewer's note: {fb.note}",
                "Your previous proposal:",
                self.brief(fb.previous),
                "Write a revised proposal that addresses the note, and say in `changes` "
                "what you changed.",
            ]
        task += ["## Output", json_instructions(self.output_model)]
        return [SystemMessage(content=system), HumanMessage(content="\n".join(task))]

    def brief(self, proposal: Proposal) -> str:
        """How a revision prompt shows the proposal that was sent back (default:
        `proposal_brief`; override to show only what the model chose, e.g. without a diff)."""
        return proposal_brief(proposal)

    # -- the agent function --------------------------------------------------------------------

    async def __call__(self, state: Mapping[str, Any], ctx: AgentContextLike) -> Proposal:
        messages = self.messages(state, ctx)
        result = await generate_structured(
            self.model, self.output_model, messages, agent=ctx.name, retry=self.retry
        )
        output = result.value
        prompt = "\n".join(str(m.content) for m in messages)
        reason = degenerate_reason(output.title, prompt=prompt, earlier=earlier_titles(state, ctx))
        if reason is not None:
            replacement = self.fallback_title(output, state)
            output = output.model_copy(update={"title": replacement})
        proposal = await self.build(output, state, ctx)
        if reason is not None:
            proposal = disclose_fallback(proposal, "title", result.value.title, reason)
        return self._annotate(proposal, output, ctx, result.model)

    def fallback_title(self, output: OutT, state: Mapping[str, Any]) -> str:
        """The title used when the model's is degenerate, built from the output's chosen
        fields (override per role; the default names the kind and the first chosen value)."""
        chosen = [
            f"{k} {v}"
            for k, v in output.model_dump().items()
            if k not in ("title", "changes")
            and (
                (isinstance(v, (int, float)) and not isinstance(v, bool))
                or (isinstance(v, str) and 0 < len(v) <= 24 and " " not in v)
            )
        ]
        return f"{self.kind.replace('_', ' ').capitalize()} proposal" + (
            f" ({', '.join(chosen[:3])})" if chosen else ""
        )

    async def build(
        self, output: OutT, state: Mapping[str, Any], ctx: AgentContextLike
    ) -> Proposal:
        """The proposal for a validated output (default: title, body and payload from hooks)."""
        return Proposal(
            kind=self.kind,
            title=output.title,
            body=self.body(output),
            payload=self.payload(output),
            author=f"agent:{ctx.name}",
            risk=self.risk,
        )

    def body(self, output: OutT) -> str:
        """The proposal's body (markdown) for `output`."""
        return ""

    def payload(self, output: OutT) -> dict[str, Any]:
        """The proposal's payload for `output` (must fit `payload_model`)."""
        if self.payload_model is None:
            return {}
        fields = self.payload_model.model_fields
        data = {k: v for k, v in output.model_dump().items() if k in fields}
        return self.payload_model.model_validate(data).model_dump(mode="json")

    def _annotate(
        self, proposal: Proposal, output: OutT, ctx: AgentContextLike, model: str
    ) -> Proposal:
        tags = [*proposal.tags, *self.tags, f"model:{model}"]
        if self.category:
            tags.append(f"category:{self.category}")
        update: dict[str, Any] = {}
        fb = ctx.feedback
        if fb is not None:
            changed = output.changes.strip() or "(the model did not say what it changed)"
            header = (
                f"**Revision of {fb.previous.id}** (sent back at {fb.gate_id}).\n"
                f"Reviewer's note: {fb.note}\nWhat changed: {changed}"
            )
            update["body"] = header + ("\n\n" + proposal.body if proposal.body else "")
            update["revises"] = fb.previous.id
            tags.append("revision")
        update["tags"] = tuple(dict.fromkeys(tags))
        return proposal.model_copy(update=update)
