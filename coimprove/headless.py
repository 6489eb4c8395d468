"""Headless runs: gates answered by `Reviewer`s on a simulated clock.

A discrete-event simulation. Each reviewer works one gate at a time; a gate is picked up when a
reviewer it allows is free, the reviewer's `Review` says when it looked and when it decided,
and decisions are applied in simulated-time order. Policy timeouts fire on the same clock.
A thousand gates take seconds, and every event in the ledger carries its simulated time, so
the measures in `coimprove.metrics` mean the same as for people.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coimprove._log import get_logger
from coimprove.agents.telemetry import ModelCallRecorder
from coimprove.errors import CoimproveError, GateClosedError
from coimprove.gates import GateRecord, may_decide
from coimprove.ledger import ledger_kind, sqlite_path
from coimprove.model import GateRequest, Review
from coimprove.policy import Policy
from coimprove.protocols import ReviewContext, Reviewer
from coimprove.reviewers.clock import FixedClock, SimClock
from coimprove.runner import RunInfo, Runner
from coimprove.state import CanarySource
from coimprove.workflow import Workflow

log = get_logger("coimprove.headless")

Inputs = dict[str, Any] | Callable[[int], dict[str, Any]] | None


@dataclass
class HeadlessResult:
    """What a headless session did."""

    runs: list[RunInfo]
    decisions: int
    sim_seconds: float
    db: Path | None = None
    """The SQLite ledger file (None for a Postgres ledger)."""
    url: str = ""
    """Where the ledger is: the SQLite path or the postgresql:// URL."""

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


@dataclass
class _Desk:
    """One reviewer's workload."""

    reviewer: Reviewer
    free_at: float = 0.0
    reviewed: int = 0


@dataclass(order=True)
class _Pending:
    at: float
    order: int
    gate_id: str = field(compare=False)
    reviewer: str = field(compare=False)
    review: Review = field(compare=False)


class HeadlessSession:
    """Runs workflows with scripted (or model) reviewers until every run is finished or stuck."""

    def __init__(self, runner: Runner, reviewers: Sequence[Reviewer]) -> None:
        if not reviewers:
            raise CoimproveError("a headless session needs at least one reviewer")
        ids = [r.id for r in reviewers]
        if len(set(ids)) != len(ids):
            raise CoimproveError(f"reviewer ids must be distinct, got {ids}")
        if not isinstance(runner.clock, SimClock):
            raise CoimproveError("a headless session needs a Runner with a SimClock")
        self.runner, self.clock = runner, runner.clock
        self.desks = {r.id: _Desk(r) for r in reviewers}
        self._seen = 0
        self._open: dict[str, GateRecord] = {}
        self._decided_by: dict[str, set[str]] = {}
        self._in_flight: dict[str, str] = {}
        self._heap: list[_Pending] = []
        self._order = 0
        self.decisions = 0
        self._current: tuple[str | None, str | None, str | None, float] = (None, None, None, 0.0)

    def _eligible(self, record: GateRecord, desk: _Desk) -> bool:
        req, reviewer = record.request.requirement, desk.reviewer
        roles = self.runner.roles_of(record.run_id, reviewer.id)
        return (
            reviewer.kind in req.reviewer_kinds
            and may_decide(record, reviewer.id, roles)
            and reviewer.id not in {record.request.proposal.author, record.proposal.author}
            and reviewer.id not in self._decided_by.get(record.gate_id, set())
        )

    def _sync(self) -> None:
        """Learn about gates opened or settled since the last look (incremental)."""
        ledger = self.runner.ledger
        for event in ledger.events(
            types=["gate.opened", "gate.resolved", "gate.decided"], after_seq=self._seen
        ):
            self._seen = event.seq
            gid = event.gate_id
            if gid is None:
                continue
            if event.type == "gate.opened":
                self._open[gid] = self.runner.gate(gid)
                self._decided_by.setdefault(gid, set())
            elif event.type == "gate.resolved":
                self._open.pop(gid, None)
            elif event.actor is not None:
                self._decided_by.setdefault(gid, set()).add(event.actor)
                if gid in self._open and event.data.get("verdict") == "edit":
                    self._open[gid] = self.runner.gate(gid)

    async def _assign(self) -> None:
        for gid, record in list(self._open.items()):
            if gid in self._in_flight:
                continue
            desks = [d for d in self.desks.values() if self._eligible(record, d)]
            if not desks:
                continue
            desk = min(desks, key=lambda d: (d.free_at, d.reviewer.id))
            start = max(self.clock.now(), desk.free_at, record.opened.at)
            # gates waiting behind this one for the same reviewer
            queue = (
                sum(
                    1
                    for g, r in self._open.items()
                    if g not in self._in_flight and self._eligible(r, desk)
                )
                - 1
            )
            context = ReviewContext(
                clock=FixedClock(start),
                queue_length=max(queue, 0),
                session_elapsed_s=start,
                gates_reviewed=desk.reviewed,
                truth=record.hidden.get("truth"),
                canary=bool(record.hidden.get("canary")),
            )
            request = record.request.model_copy(update={"proposal": record.proposal})
            self._current = (record.run_id, gid, desk.reviewer.id, start)
            review = await desk.reviewer.review(GateRequest.model_validate(request), context)
            at = review.decided_at if review.decided_at is not None else start
            at = max([at, start, *(v.at for v in review.views)])
            desk.free_at, desk.reviewed = at, desk.reviewed + 1
            self._in_flight[gid] = desk.reviewer.id
            self._order += 1
            heapq.heappush(self._heap, _Pending(at, self._order, gid, desk.reviewer.id, review))

    def _next_deadline(self) -> float | None:
        deadlines = [
            r.opened.at + r.request.requirement.timeout_s
            for r in self._open.values()
            if r.request.requirement.timeout_s is not None
        ]
        return min(deadlines, default=None)

    async def _expire(self, deadline: float) -> None:
        self.clock.set(max(self.clock.now(), deadline))
        due = {
            r.run_id
            for r in self._open.values()
            if r.request.requirement.timeout_s is not None
            and r.opened.at + r.request.requirement.timeout_s <= deadline
        }
        for run_id in sorted(due):
            await self.runner.advance(run_id)

    def _record_model_call(self, data: dict[str, Any]) -> None:
        """A model reviewer's call, recorded as ``model.called`` on the gate it was reviewing."""
        run_id, gate_id, actor, at = self._current
        self.runner.ledger.append(
            "model.called", at=at, run_id=run_id, gate_id=gate_id, actor=actor, data=data
        )

    async def run(self, max_decisions: int = 1_000_000) -> None:
        """Process decisions in time order until nothing is left to decide."""
        recorder = ModelCallRecorder(self._record_model_call, name="headless-reviewers")
        models = [
            d.reviewer
            for d in self.desks.values()
            if d.reviewer.kind == "model"
            and isinstance(getattr(d.reviewer, "callbacks", None), list)
        ]
        for reviewer in models:
            reviewer.callbacks.append(recorder)  # type: ignore[attr-defined]
        try:
            await self._run(max_decisions)
        finally:
            for reviewer in models:
                reviewer.callbacks.remove(recorder)  # type: ignore[attr-defined]

    async def _run(self, max_decisions: int) -> None:
        while True:
            self._sync()
            await self._assign()
            deadline = self._next_deadline()
            if not self._heap:
                if deadline is None:
                    break
                await self._expire(deadline)
                continue
            item = self._heap[0]
            if deadline is not None and deadline < item.at:
                await self._expire(deadline)
                continue
            heapq.heappop(self._heap)
            self.clock.set(max(self.clock.now(), item.at))
            self._in_flight.pop(item.gate_id, None)
            decision = item.review.decision
            try:
                recorded = self.runner.decide(item.gate_id, decision, views=item.review.views)
            except GateClosedError:
                continue  # timed out (or settled by others) while this reviewer was reading
            self.decisions += 1
            self._decided_by.setdefault(item.gate_id, set()).add(decision.reviewer)
            if recorded.outcome is not None:
                self._open.pop(item.gate_id, None)
                await self.runner.advance(item.gate_id.rsplit(".", 2)[0])
            elif decision.verdict == "edit":
                self._open[item.gate_id] = self.runner.gate(item.gate_id)
            if self.decisions >= max_decisions:
                raise CoimproveError(f"headless session stopped after {max_decisions} decisions")
        stuck = [g for g in self._open if g not in self._in_flight]
        if stuck:
            log.warning("headless.stuck", gates=stuck[:5], n=len(stuck))


async def run_headless(
    workflow: Workflow,
    reviewers: Sequence[Reviewer],
    *,
    runs: int = 1,
    inputs: Inputs = None,
    db: str | os.PathLike[str] = ":memory:",
    policy: str | Policy | None = None,
    seed: int = 0,
    arrival_s: float = 0.0,
    canaries: CanarySource | None = None,
) -> HeadlessResult:
    """Start `runs` runs of `workflow` (one every `arrival_s` simulated seconds) and answer
    every gate with `reviewers` on a simulated clock. Returns when all runs are settled.

    `db` is an SQLite file (``":memory:"``: a new temporary one) or a ``postgresql://`` URL.
    """
    clock = SimClock(0.0)
    target: str | os.PathLike[str]
    path: Path | None = None
    if ledger_kind(db) == "postgres":
        target = db  # a shared Postgres ledger (and its checkpoints)
    else:
        path = None if str(db) == ":memory:" else sqlite_path(db)
        if path is None:
            import tempfile

            path = Path(tempfile.mkdtemp(prefix="coimprove-")) / "ledger.db"
        target = path
    async with Runner(target, clock=clock, seed=seed, canaries=canaries) as runner:
        session = HeadlessSession(runner, reviewers)
        run_ids: list[str] = []
        for i in range(runs):
            clock.set(max(clock.now(), i * arrival_s))
            data = inputs(i) if callable(inputs) else dict(inputs or {})
            info = await runner.start(workflow, data, policy=policy)
            run_ids.append(info.run_id)
        await session.run()
        infos = [runner.info(r) for r in run_ids]
        return HeadlessResult(infos, session.decisions, clock.now(), path, os.fspath(target))
