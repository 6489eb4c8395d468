"""`ModelReviewer`: a chat model answering gates through the `Reviewer` protocol.

The AI-only baseline for ablations: the model reads the gate (its request, including the
detail — diff, artifacts, payload — when there is one) and answers approve, reject or
request_changes with a rationale. Decisions carry ``reviewer_kind="model"`` so reports never
mix model oversight with human or scripted oversight. Views and the decision are timed on the
review context's clock: the gate view at pickup, the detail view when read, the decision after
the model's measured latency (or a fixed `think_s`, for reproducible simulations).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from coimprove.agents.models import ModelSpec, model_label, resolve_model
from coimprove.agents.prompts import load_prompt
from coimprove.agents.roles.base import proposal_brief
from coimprove.agents.structured import RetryPolicy, generate_structured, json_instructions
from coimprove.errors import InvalidDecisionError
from coimprove.model import Decision, GateRequest, Review, ReviewerKind, Verdict, ViewEvent
from coimprove.protocols import ReviewContext

ModelVerdict = Literal["approve", "reject", "request_changes"]

_FALLBACK: dict[str, tuple[Verdict, ...]] = {
    "approve": ("approve",),
    "reject": ("reject", "request_changes", "escalate"),
    "request_changes": ("request_changes", "reject", "escalate"),
}


class ReviewOutput(BaseModel):
    """What the model answers."""

    model_config = ConfigDict(extra="ignore")

    verdict: ModelVerdict = Field(description="approve, reject or request_changes")
    rationale: str = Field(
        min_length=3, max_length=1200, description="why; for request_changes, what to change"
    )


class ModelReviewer:
    """A `Reviewer` backed by a chat model (reviewer kind ``model``)."""

    def __init__(
        self,
        model: ModelSpec | None = None,
        *,
        id: str | None = None,
        role: str | None = None,
        prompt: str = "reviewer",
        retry: RetryPolicy | None = None,
        think_s: float | None = None,
        read_detail: bool = True,
        callbacks: Sequence[BaseCallbackHandler] = (),
    ) -> None:
        self.model_spec = model
        self._model: BaseChatModel | None = None
        self._id = id
        self.role, self.retry, self.think_s, self.read_detail = role, retry, think_s, read_detail
        self.prompt_text = load_prompt(prompt)
        self.callbacks = list(callbacks)
        """Extra callback handlers for its model calls (e.g. a `ModelCallRecorder` whose sink
        writes the ledger: a reviewer's calls happen outside any graph run)."""

    @property
    def model(self) -> BaseChatModel:
        if self._model is None:
            self._model = resolve_model(self.model_spec)
        return self._model

    @property
    def id(self) -> str:
        return self._id or f"model:{model_label(self.model)}"

    @property
    def kind(self) -> ReviewerKind:
        return "model"

    def __repr__(self) -> str:
        return f"ModelReviewer(id={self.id!r})"

    def messages(self, request: GateRequest) -> list[SystemMessage | HumanMessage]:
        proposal = request.proposal
        shown = proposal_brief(proposal, limit=6000 if self.read_detail else 800)
        task = [
            f"## Gate {request.gate} (round {request.round}) of workflow {request.graph}",
            f"Category: {request.category or 'unspecified'}",
        ]
        if request.feedback:
            task.append(f"Earlier reviewer note this proposal answers: {request.feedback}")
        task += ["## Proposal", shown, "## Output", json_instructions(ReviewOutput)]
        return [SystemMessage(content=self.prompt_text), HumanMessage(content="\n".join(task))]

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        """Read the request, ask the model, and return timed views and a decision."""
        start = context.clock.now()
        views = [ViewEvent(what="gate", at=start)]
        if self.read_detail and request.proposal.has_detail:
            views.append(ViewEvent(what="detail", at=start))
        began = time.perf_counter()
        result = await generate_structured(
            self.model,
            ReviewOutput,
            list(self.messages(request)),
            agent=f"reviewer:{self.id}",
            retry=self.retry,
            config={"callbacks": self.callbacks} if self.callbacks else None,
        )
        elapsed = time.perf_counter() - began if self.think_s is None else self.think_s
        out = result.value
        verdict = self._allowed(out.verdict, request)
        note = out.rationale
        if verdict != out.verdict:
            note = f"(model said {out.verdict}; not allowed here) {note}"
        decision = Decision(
            verdict=verdict,
            reviewer=self.id,
            reviewer_kind="model",
            digest=request.digest,
            note=note,
            role=self.role,
        )
        return Review(views=tuple(views), decision=decision, decided_at=start + elapsed)

    @staticmethod
    def _allowed(verdict: ModelVerdict, request: GateRequest) -> Verdict:
        allowed = request.requirement.allowed
        for candidate in _FALLBACK[verdict]:
            if candidate in allowed:
                return candidate
        raise InvalidDecisionError(
            f"gate {request.gate_id!r} allows none of {', '.join(_FALLBACK[verdict])} for a "
            f"model reviewer's {verdict!r} (allowed: {', '.join(allowed) or 'none'})"
        )
