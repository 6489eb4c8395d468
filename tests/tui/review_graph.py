"""A workflow for the TUI tests: an agent proposes a code change with a diff and a typed
payload (so edits are checked against a JSON schema), a gate, and an effect that records
what it ran with (in state, and in ``$COIMPROVE_TEST_EFFECTS`` when that is set)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from coimprove import END, START, Approved, Artifact, GatedState, Proposal, Workflow
from coimprove.workflow import AgentContext

DIFF = """diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -1,4 +1,4 @@
 import model
-LR = 0.1
+LR = 0.01
 EPOCHS = 3
 model.train(lr=LR, epochs=EPOCHS)
"""


class Params(BaseModel):
    lr: float = Field(gt=0, lt=1)
    epochs: int = Field(ge=1)


class ReviewState(GatedState, total=False):
    trained: dict[str, Any]


def build(
    name: str = "tune",
    *,
    risk: str = "low",
    policy: str = "default",
    hold: threading.Event | None = None,
    fail: bool = False,
) -> Workflow:
    """START -> propose -> review -> train -> END (`train` waits for `hold` if given, and
    raises if `fail`)."""
    wf = Workflow(name, policy=policy, state=ReviewState)

    def propose(state: dict[str, Any], ctx: AgentContext) -> Proposal:
        note = ctx.feedback.note if ctx.feedback else None
        return Proposal(
            kind="code",
            title="Lower the learning rate" + (" (revised)" if note else ""),
            body="Training diverges at lr=0.1; 0.01 is stable in the sweep."
            + (f"\nRevised after: {note}" if note else ""),
            payload={"lr": 0.01, "epochs": 3},
            artifacts=(Artifact.from_text("changes.diff", DIFF, "text/x-diff"),),
            author="agent:propose",
            risk=risk,  # type: ignore[arg-type]
        )

    def train(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        if hold is not None and not hold.wait(timeout=120):
            raise TimeoutError("the test never released the effect")
        if fail:
            raise RuntimeError("the training cluster is down")
        target = os.environ.get("COIMPROVE_TEST_EFFECTS")
        if target:
            with Path(target).open("a") as f:
                f.write(f"{approved.key} {approved.proposal.payload}\n")
        return {"trained": approved.proposal.payload}

    wf.agent("propose", propose, kind="code", payload=Params)
    wf.gate("review", proposal_from="propose", on_approve="train")
    wf.effect("train", train, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("train", END)
    return wf


workflow = build()
risky = build("risky", risk="high")
