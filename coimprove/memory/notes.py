"""What agent memory holds: past reviewers' decisions on proposals, and how a run uses it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coimprove.model import Verdict


class MemoryConfig(BaseModel):
    """Agent memory of review for one run (recorded in its ``run.started`` event).

    Candidates are past decisions (not on canaries) whose verdict is in `verdicts`, on proposals
    by the same agent of the same workflow (`scope` ``agent``) or of the same kind anywhere in
    the ledger (``kind``). ``match: embedding`` ranks them by cosine similarity between the
    agent's task and the reviewed proposal plus its note; ``exact`` takes the most recent, same
    agent first. An agent is given at most `k` notes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    k: int = Field(default=3, ge=1, le=20, description="notes given per agent call")
    match: Literal["embedding", "exact"] = "embedding"
    embedder: str = Field(default="wordllama", description="embedder spec for match=embedding")
    scope: Literal["agent", "kind"] = "kind"
    verdicts: tuple[Verdict, ...] = ("request_changes", "reject", "edit")
    min_similarity: float = Field(default=0.0, ge=-1, le=1)
    max_note_chars: int = Field(default=400, ge=40, le=4000)


class ReviewNote(BaseModel):
    """One past decision as an agent may learn from it: what was proposed and what was said."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="``<gate id>@<seq of the gate.decided event>``")
    seq: int
    gate_id: str
    run_id: str | None
    graph: str | None
    gate: str | None
    agent: str | None
    kind: str
    title: str
    body: str = ""
    verdict: Verdict
    reviewer: str
    reviewer_kind: str | None = None
    note: str = ""
    edits: dict[str, tuple[Any, Any]] = Field(
        default_factory=dict, description="payload field -> (proposed, edited) for an edit"
    )
    at: float

    def text(self) -> str:
        """What similarity is measured on: the proposal's title and body, the note, the edits."""
        parts = [self.title, self.body[:600], self.note]
        parts += [f"{k}: {a} -> {b}" for k, (a, b) in self.edits.items()]
        return "\n".join(p for p in parts if p)

    def render(self, max_chars: int = 400) -> str:
        """One line for a prompt: the verdict, on what, and what the reviewer said or changed."""
        what = {
            "request_changes": "sent back",
            "reject": "rejected",
            "edit": "edited",
            "approve": "approved",
            "escalate": "escalated",
        }[self.verdict]
        line = f"[{self.id}] A reviewer {what} {self.kind} proposal {self.title!r}"
        if self.note:
            line += f"; note: {self.note}"
        if self.edits:
            changes = ", ".join(
                f"{k}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}"
                for k, (a, b) in self.edits.items()
            )
            line += f"; changed {changes}"
        return line if len(line) <= max_chars else line[: max_chars - 1] + "…"
