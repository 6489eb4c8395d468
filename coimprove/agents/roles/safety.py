"""Safety and risk critique: a model's advisory note attached to another agent's proposal.

`SafetyCritic(inner, model)` wraps an agent function. It runs the inner agent, asks the critic
model for a `SafetyReview` of the proposal, and returns the same proposal (same kind, payload,
commit) with the critique appended to its body, its risk raised to the critic's if higher
(never lowered) and tags ``safety-critique`` and ``critic-risk:<level>``. The critic never
decides: the gate still waits for its reviewers, and a raised risk can route the gate to a
person under the policy (the default policy keeps high-risk gates from model reviewers).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from coimprove.agents.models import ModelSpec, model_label, resolve_model
from coimprove.agents.prompts import load_prompt
from coimprove.agents.roles.base import AgentContextLike, WorkflowLike, proposal_brief
from coimprove.agents.structured import RetryPolicy, generate_structured, json_instructions
from coimprove.model import RISKS, Proposal, Risk


class SafetyReview(BaseModel):
    """The critic's output."""

    model_config = ConfigDict(extra="ignore")

    summary: str = Field(min_length=3, max_length=800, description="the main risk, in a sentence")
    risk: Risk = Field(description="overall risk if this is approved as is")
    concerns: list[str] = Field(default_factory=list, max_length=8, description="specific risks")
    mitigations: list[str] = Field(
        default_factory=list, max_length=8, description="what would reduce them"
    )

    def note(self, model: str) -> str:
        """The markdown note appended to the proposal's body."""
        lines = [
            f"**Safety critique** (advisory, by model {model}; the reviewer decides) — "
            f"risk: {self.risk}. {self.summary}"
        ]
        lines += [f"- concern: {c}" for c in self.concerns]
        lines += [f"- mitigation: {m}" for m in self.mitigations]
        return "\n".join(lines)


async def critique(
    proposal: Proposal,
    model: ModelSpec | None = None,
    *,
    agent: str = "safety-critic",
    prompt: str = "safety_critique",
    retry: RetryPolicy | None = None,
) -> SafetyReview:
    """Ask `model` for a safety review of `proposal`."""
    chat = resolve_model(model)
    messages = [
        SystemMessage(content=load_prompt(prompt)),
        HumanMessage(
            content="## Proposal under review\n"
            + proposal_brief(proposal)
            + "\n\n## Output\n"
            + json_instructions(SafetyReview)
        ),
    ]
    result = await generate_structured(chat, SafetyReview, messages, agent=agent, retry=retry)
    return result.value


def with_critique(proposal: Proposal, review: SafetyReview, model: str) -> Proposal:
    """`proposal` annotated with `review`: body note, risk raised (never lowered), tags."""
    risk = max(proposal.risk, review.risk, key=RISKS.index)
    body = (proposal.body + "\n\n---\n" if proposal.body else "") + review.note(model)
    tags = (*proposal.tags, "safety-critique", f"critic-risk:{review.risk}")
    return proposal.model_copy(
        update={"body": body, "risk": risk, "tags": tuple(dict.fromkeys(tags))}
    )


class SafetyCritic:
    """Wraps an agent function so its proposals carry a model's safety critique."""

    def __init__(
        self,
        inner: Any,
        model: ModelSpec | None = None,
        *,
        prompt: str = "safety_critique",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.inner, self.model_spec, self.prompt, self.retry = inner, model, prompt, retry
        self.kind: str | None = getattr(inner, "kind", None)
        self.payload_model: type[BaseModel] | None = getattr(inner, "payload_model", None)
        params = [
            p
            for p in inspect.signature(inner).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self._inner_wants_ctx = len(params) >= 2
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The critic's chat model, resolved on first use."""
        if self._model is None:
            self._model = resolve_model(self.model_spec)
        return self._model

    def add_to(self, workflow: WorkflowLike, name: str) -> None:
        """Register as agent node `name` (the inner agent's kind and payload model)."""
        workflow.agent(name, self, kind=self.kind, payload=self.payload_model)

    async def __call__(self, state: Mapping[str, Any], ctx: AgentContextLike) -> Any:
        result = self.inner(state, ctx) if self._inner_wants_ctx else self.inner(state)
        if inspect.isawaitable(result):
            result = await result
        extra: dict[str, Any] | None = None
        if isinstance(result, tuple):
            result, extra = result
        if isinstance(result, dict):
            fields = {"author": f"agent:{ctx.name}", **result}
            if self.kind is not None:
                fields.setdefault("kind", self.kind)
            result = Proposal.model_validate(fields)
        if not isinstance(result, Proposal):
            raise TypeError(f"agent {ctx.name!r} returned {type(result).__name__}, not a Proposal")
        chat = self.model
        review = await critique(
            result, chat, agent=f"{ctx.name}:safety", prompt=self.prompt, retry=self.retry
        )
        annotated = with_critique(result, review, model_label(chat))
        return annotated if extra is None else (annotated, extra)
