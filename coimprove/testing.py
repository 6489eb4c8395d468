"""Deterministic fakes for testing your own graphs without a model or a person.

```python
from coimprove.testing import FakeChatModel, Verdicts, run_scripted

result = await run_scripted(my_workflow, Verdicts(["request_changes", "approve"]))
assert result.info.state == "finished"
```
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coimprove.agents.fake import FakeChatModel as FakeChatModel
from coimprove.agents.fake import FakeToolCallingModel as FakeToolCallingModel
from coimprove.headless import HeadlessSession
from coimprove.ledger import SqliteLedger
from coimprove.metrics import Report, report
from coimprove.model import (
    Decision,
    GateRequest,
    Proposal,
    Review,
    ReviewerKind,
    Verdict,
    ViewEvent,
)
from coimprove.protocols import ReviewContext
from coimprove.reviewers.clock import SimClock
from coimprove.runner import RunInfo, Runner
from coimprove.workflow import Workflow


class Verdicts:
    """A `Reviewer` that answers gates with a fixed sequence of verdicts (then repeats the last).

    Each verdict is a string (``"approve"``, ``"request_changes"``, …) or a function from the
    `GateRequest` to a `Decision`. It "reads" each gate for `dwell_s` simulated seconds and
    opens the detail if `open_detail`.
    """

    def __init__(
        self,
        verdicts: Iterable[Verdict | str | Callable[[GateRequest], Decision]],
        *,
        id: str = "tester",
        kind: ReviewerKind = "human",
        note: str = "please revise",
        dwell_s: float = 30.0,
        open_detail: bool = True,
        edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._script = list(verdicts)
        if not self._script:
            raise ValueError("Verdicts needs at least one verdict")
        self._id, self._kind, self.note, self.dwell_s = id, kind, note, dwell_s
        self.open_detail = open_detail
        self.edit = edit or (lambda payload: {**payload, "edited": True})
        self._i = itertools.count()
        self.seen: list[GateRequest] = []

    @property
    def id(self) -> str:
        return self._id

    @property
    def kind(self) -> ReviewerKind:
        return self._kind

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        self.seen.append(request)
        step = self._script[min(next(self._i), len(self._script) - 1)]
        start = context.clock.now()
        views = [ViewEvent(what="gate", at=start)]
        if self.open_detail:
            views.append(ViewEvent(what="detail", at=start + 1.0))
        if callable(step):
            decision = step(request)
        else:
            verdict = step.replace("-", "_")
            decision = Decision(
                verdict=verdict,
                reviewer=self._id,
                reviewer_kind=self._kind,
                digest=request.proposal.digest,
                note=self.note if verdict in ("request_changes", "reject", "escalate") else "",
                edited_payload=self.edit(dict(request.proposal.payload))
                if verdict == "edit"
                else None,
            )
        return Review(views=tuple(views), decision=decision, decided_at=start + self.dwell_s)


def approve_all(id: str = "tester", kind: ReviewerKind = "human") -> Verdicts:
    """A reviewer that approves everything after a 30 s simulated read."""
    return Verdicts(["approve"], id=id, kind=kind)


def proposal(**fields: Any) -> Proposal:
    """A `Proposal` with test defaults (kind ``idea``, author ``agent:test``)."""
    fields.setdefault("kind", "idea")
    fields.setdefault("title", "a test proposal")
    fields.setdefault("author", "agent:test")
    return Proposal(**fields)


@dataclass
class ScriptedRun:
    """The outcome of `run_scripted`: run info, final graph state, the ledger's report."""

    info: RunInfo
    state: dict[str, Any]
    report: Report
    db: Path


async def run_scripted(
    workflow: Workflow,
    reviewers: Verdicts | Sequence[Any],
    *,
    inputs: dict[str, Any] | None = None,
    db: str | os.PathLike[str] | None = None,
    policy: str | None = None,
) -> ScriptedRun:
    """Run `workflow` once, answering every gate with `reviewers` on a simulated clock."""
    path = Path(db) if db is not None else Path(tempfile.mkdtemp(prefix="coimprove-")) / "l.db"
    pool = [reviewers] if isinstance(reviewers, Verdicts) else list(reviewers)
    async with Runner(path, clock=SimClock()) as runner:
        session = HeadlessSession(runner, pool)
        info = await runner.start(workflow, inputs or {}, policy=policy)
        await session.run()
        state = await runner.state(info.run_id)
        info = runner.info(info.run_id)
    with SqliteLedger(path) as ledger:
        rep = report(ledger)
    return ScriptedRun(info, state, rep, path)
