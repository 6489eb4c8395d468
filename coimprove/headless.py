"""Headless runs: gates answered by `Reviewer`s on a simulated clock.

A discrete-event simulation. Each reviewer works one gate at a time; a gate is picked up when a
reviewer it allows is free, the reviewer's `Review` says when it looked and when it decided,
and decisions are applied in simulated-time order. Policy timeouts fire on the same clock.
A thousand gates take seconds, and every event in the ledger carries its simulated time, so
the measures in `coimprove.metrics` mean the same as for people.

Reviewers named in `feedback_to` are shown what becomes knowable about their decisions
(`coimprove.feedback`: canary reveals, outcomes of what they approved with the hidden ground
truth, quorum peers) as soon as it is in the ledger; each item is recorded as
``feedback.shown`` and handed to the reviewer's ``observe`` (a learning `ScriptedReviewer`
gets better). Such a reviewer picks up its next gate only when it is free, so its review
reflects every lesson delivered before it starts.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coimprove._log import get_logger
from coimprove.agents.telemetry import ModelCallRecorder
from coimprove.errors import CoimproveError, GateClosedError
from coimprove.feedback import FeedbackBuilder, record_feedback
from coimprove.gates import GateRecord, may_decide
from coimprove.ledger import ledger_kind, sqlite_path
from coimprove.memory import MemoryConfig
from coimprove.model import GateRequest, Review
from coimprove.policy import Policy
from coimprove.protocols import ReviewContext, Reviewer
from coimprove.reviewers.clock import FixedClock, SimClock
from coimprove.runner import RunInfo, Runner
from coimprove.state import CanarySource
from coimprove.workflow import Workflow

log = get_logger("coimprove.headless")

Inputs = dict[str, Any] | Callable[[int], dict[str, Any]] | None
Arrival = tuple[float, Callable[[], Awaitable[Any]]]
"""A run to start at a simulated time: (when, coroutine function that starts it)."""


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

    def __init__(
        self,
        runner: Runner,
        reviewers: Sequence[Reviewer],
        *,
        feedback_to: Collection[str] | bool = False,
        include_truth: bool = True,
    ) -> None:
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
        learners = set(ids) if feedback_to is True else set(feedback_to or ())
        unknown = learners - set(ids)
        if unknown:
            raise CoimproveError(f"feedback_to names reviewers not in the session: {unknown}")
        self.feedback_to = frozenset(learners)
        self._feedback = (
            FeedbackBuilder(runner.ledger, include_truth=include_truth, reviewers=self.feedback_to)
            if learners
            else None
        )

    def _deliver_feedback(self) -> None:
        """Show reviewers with feedback on what became knowable since the last look."""
        if self._feedback is None:
            return
        items = self._feedback.new()
        if not items:
            return
        record_feedback(self.runner.ledger, items, at=self.clock.now())
        for item in items:
            observe = getattr(self.desks[item.reviewer].reviewer, "observe", None)
            if callable(observe):
                observe(item)

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
            if desk.reviewer.id in self.feedback_to and desk.free_at > self.clock.now():
                continue  # it learns from feedback: pick up only once free (lessons so far)
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

    async def run(
        self, max_decisions: int = 1_000_000, *, arrivals: Sequence[Arrival] = ()
    ) -> None:
        """Process decisions in time order until nothing is left to decide.

        `arrivals` start runs inside the simulation, in time order between decisions, so a run
        arriving later sees (and its agents can recall) everything decided before it arrives.
        """
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
            await self._run(max_decisions, sorted(arrivals, key=lambda a: a[0]))
        finally:
            for reviewer in models:
                reviewer.callbacks.remove(recorder)  # type: ignore[attr-defined]

    async def _run(self, max_decisions: int, arrivals: list[Arrival]) -> None:
        next_arrival = 0
        while True:
            self._sync()
            self._deliver_feedback()
            await self._assign()
            deadline = self._next_deadline()
            if next_arrival < len(arrivals):
                at, start = arrivals[next_arrival]
                if all(
                    t is None or at <= t
                    for t in (deadline, self._heap[0].at if self._heap else None)
                ):
                    self.clock.set(max(self.clock.now(), at))
                    next_arrival += 1
                    await start()
                    continue
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
    feedback_to: Collection[str] | bool = False,
    memory: MemoryConfig | None = None,
    run_ids: Callable[[int], str] | None = None,
) -> HeadlessResult:
    """Start `runs` runs of `workflow` (one every `arrival_s` simulated seconds, inside the
    simulation: gates of earlier runs are decided in between) and answer every gate with
    `reviewers` on a simulated clock. Returns when all runs are settled.

    `db` is an SQLite file (``":memory:"``: a new temporary one) or a ``postgresql://`` URL.
    `feedback_to` (reviewer ids, or True for all) turns reviewer feedback on; `memory` turns
    agent memory of review on for every run (see `coimprove.memory`). `run_ids` names the
    i-th run (default: random ids); scripted reviewers and canaries draw their random numbers
    per gate id, so fixed run ids make a session reproducible and pair it with another
    session's same-named runs (common random numbers across the cells of an ablation).
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
    async with Runner(target, clock=clock, seed=seed, canaries=canaries, memory=memory) as runner:
        session = HeadlessSession(runner, reviewers, feedback_to=feedback_to)
        started: list[str] = []

        def arrival(i: int) -> Callable[[], Awaitable[None]]:
            async def start() -> None:
                data = inputs(i) if callable(inputs) else dict(inputs or {})
                rid = run_ids(i) if run_ids is not None else None
                info = await runner.start(workflow, data, policy=policy, run_id=rid)
                started.append(info.run_id)

            return start

        await session.run(arrivals=[(i * arrival_s, arrival(i)) for i in range(runs)])
        infos = [runner.info(r) for r in started]
        return HeadlessResult(infos, session.decisions, clock.now(), path, os.fspath(target))
