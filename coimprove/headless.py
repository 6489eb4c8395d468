"""Headless runs: gates answered by `Reviewer`s on a simulated clock.

A discrete-event simulation with four kinds of event, processed in simulated-time order:
a run *arrives* (it is started, and opens its first gates), a reviewer *decides* (the decision
is recorded and the run advanced, which may open more gates), a gate's policy *deadline*
passes (it fails closed), and — in between — every free reviewer *picks up* the oldest
waiting gate it may decide. A reviewer works one gate at a time; when it picks one up, its
`ReviewContext` says how many other gates are waiting for it (`queue_length`) and how long the
session has run, which is what fatigue in a scripted profile responds to. Every ledger event
carries its simulated time, so the measures in `coimprove.metrics` mean the same as for people.

Reviewers named in `feedback_to` are shown what becomes knowable about their decisions
(`coimprove.feedback`: canary reveals, outcomes of what they approved with the hidden ground
truth, quorum peers) as soon as it is in the ledger; each item is recorded as
``feedback.shown`` and handed to the reviewer's ``observe`` (a learning `ScriptedReviewer`
gets better). A reviewer picks up its next gate only when it is free, so its review reflects
every lesson delivered before it starts.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from coimprove._log import get_logger
from coimprove.agents.telemetry import ModelCallRecorder
from coimprove.errors import CoimproveError, DecisionError, DigestMismatchError, GateClosedError
from coimprove.feedback import FeedbackBuilder, record_feedback
from coimprove.gates import GateRecord, fold_gate, may_decide
from coimprove.ledger import ledger_kind, sqlite_path
from coimprove.memory import MemoryConfig
from coimprove.model import GateRequest, Review, reviewer_key
from coimprove.policy import Policy
from coimprove.protocols import Ledger, ReviewContext, Reviewer
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
    """The SQLite ledger file (None for a Postgres ledger or one passed in)."""
    url: str = ""
    """Where the ledger is: the SQLite path or the postgresql:// URL."""

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]


@dataclass
class _Desk:
    """One reviewer's workload."""

    reviewer: Reviewer
    busy_with: str | None = None
    reviewed: int = 0


@dataclass
class _Waiting:
    """An open gate and who may pick it up."""

    record: GateRecord
    eligible: tuple[str, ...]
    """Desks allowed by kind, role and separation of duties (fixed while the gate is open)."""
    decided_by: set[str] = field(default_factory=set)
    """Reviewers (by `reviewer_key`) who decided the version the gate shows now."""
    reading: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    """Desks whose decision on this gate the ledger refused: not offered it again."""

    def edited(self, record: GateRecord) -> None:
        """The gate shows a new version: only who decided that version has decided it."""
        self.record, self.decided_by = record, record.decided_current()


@dataclass(order=True)
class _Pending:
    at: float
    order: int
    gate_id: str = field(compare=False)
    reviewer: str = field(compare=False)
    review: Review = field(compare=False)


@dataclass(order=True)
class _Arrival:
    at: float
    order: int
    start: Callable[[], Any] = field(compare=False)


class HeadlessSession:
    """Runs workflows with scripted (or model) reviewers until every run is finished or stuck.

    Start runs on the runner first, or `schedule` them to arrive during the session; then
    ``await session.run()``.
    """

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
        self.started_at = self.clock.now()
        self.decisions = 0
        self.run_ids: list[str] = []
        """Runs this session started from its schedule, in arrival order."""
        self._seen = 0
        self._open: dict[str, _Waiting] = {}
        self._decisions: list[_Pending] = []
        self._arrivals: list[_Arrival] = []
        self._deadlines: list[tuple[float, str]] = []
        self._order = 0
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

    # -- scheduling -----------------------------------------------------------------------------

    def schedule(
        self,
        at: float,
        workflow: Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        policy: str | Policy | None = None,
        run_id: str | None = None,
    ) -> None:
        """Start a run of `workflow` when the simulated clock reaches `at`."""

        async def start() -> None:
            info = await self.runner.start(workflow, inputs, policy=policy, run_id=run_id)
            self.run_ids.append(info.run_id)

        self._order += 1
        heapq.heappush(self._arrivals, _Arrival(float(at), self._order, start))

    # -- what the ledger says is open ------------------------------------------------------------

    def _sync(self) -> None:
        """Learn about gates opened or settled since the last look (incremental)."""
        for event in self.runner.ledger.events(
            types=["gate.opened", "gate.resolved", "gate.decided"], after_seq=self._seen
        ):
            self._seen = event.seq
            gid = event.gate_id
            if gid is None:
                continue
            if event.type == "gate.opened":
                self._track(fold_gate([event]))  # later events of this batch update it below
            elif event.type == "gate.resolved":
                self._open.pop(gid, None)
            elif event.actor is not None and gid in self._open:
                self._open[gid].decided_by.add(reviewer_key(event.actor))
                if event.data.get("verdict") == "edit":
                    self._open[gid].edited(self.runner.gate(gid))

    def _track(self, record: GateRecord) -> None:
        req = record.request.requirement
        eligible = tuple(
            rid
            for rid, desk in self.desks.items()
            if desk.reviewer.kind in req.reviewer_kinds
            and not record.authored_by(rid)
            and getattr(desk.reviewer, "role", None) in (None, *req.roles)
            and may_decide(record, rid, self.runner.roles_of(record.run_id, rid))
        )
        waiting = _Waiting(record, eligible, record.decided_current())
        self._open[record.gate_id] = waiting
        if req.timeout_s is not None:
            heapq.heappush(self._deadlines, (record.opened.at + req.timeout_s, record.gate_id))

    def _available(self, waiting: _Waiting, rid: str) -> bool:
        """Whether reviewer `rid` may pick this gate up now."""
        if rid not in waiting.eligible or rid in waiting.reading or rid in waiting.refused:
            return False
        if reviewer_key(rid) in waiting.decided_by:
            return False
        # every decision that left the gate open approved (or edited) the version it shows
        # now, so this many are still needed
        needed = waiting.record.request.requirement.quorum - len(waiting.decided_by)
        return len(waiting.reading) < max(needed, 1)

    # -- reviewers picking gates up --------------------------------------------------------------

    async def _pick_up(self) -> None:
        """Every free reviewer takes the oldest gate it may decide (one gate at a time each)."""
        now = self.clock.now()
        for rid, desk in self.desks.items():
            if desk.busy_with is not None:
                continue
            chosen: _Waiting | None = None
            queue = 0
            for waiting in self._open.values():
                if self._available(waiting, rid):
                    if chosen is None:
                        chosen = waiting
                    else:
                        queue += 1
            if chosen is not None:
                await self._start_review(desk, chosen, now, queue)

    async def _start_review(self, desk: _Desk, waiting: _Waiting, now: float, queue: int) -> None:
        record, rid = waiting.record, desk.reviewer.id
        context = ReviewContext(
            clock=FixedClock(now),
            queue_length=queue,
            session_elapsed_s=now - self.started_at,
            gates_reviewed=desk.reviewed,
            truth=record.hidden.get("truth"),
            canary=bool(record.hidden.get("canary")),
        )
        request = record.request.model_copy(update={"proposal": record.proposal})
        self._current = (record.run_id, record.gate_id, rid, now)
        review = await desk.reviewer.review(GateRequest.model_validate(request), context)
        at = review.decided_at if review.decided_at is not None else now
        at = max([at, now, *(v.at for v in review.views)])
        desk.busy_with, desk.reviewed = record.gate_id, desk.reviewed + 1
        waiting.reading.add(rid)
        self._order += 1
        heapq.heappush(self._decisions, _Pending(at, self._order, record.gate_id, rid, review))

    # -- the other events ------------------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self._open:
            heapq.heappop(self._deadlines)  # settled before its deadline
        return self._deadlines[0][0] if self._deadlines else None

    async def _expire(self, deadline: float) -> None:
        self.clock.set(max(self.clock.now(), deadline))
        due: set[str] = set()
        while self._deadlines and self._deadlines[0][0] <= deadline:
            _, gid = heapq.heappop(self._deadlines)
            if gid in self._open:
                due.add(self._open[gid].record.run_id)
        for run_id in sorted(due):
            await self.runner.advance(run_id)

    async def _arrive(self) -> None:
        arrival = heapq.heappop(self._arrivals)
        self.clock.set(max(self.clock.now(), arrival.at))
        await arrival.start()

    async def _apply(self, item: _Pending) -> None:
        self.clock.set(max(self.clock.now(), item.at))
        self.desks[item.reviewer].busy_with = None
        waiting = self._open.get(item.gate_id)
        if waiting is not None:
            waiting.reading.discard(item.reviewer)
        decision = item.review.decision
        try:
            recorded = self.runner.decide(item.gate_id, decision, views=item.review.views)
        except (GateClosedError, DigestMismatchError):
            return  # settled, timed out or edited by someone else while this reviewer read it
        except DecisionError as exc:  # this reviewer's decision is not one the gate takes
            log.warning(
                "headless.refused", gate=item.gate_id, reviewer=item.reviewer, error=str(exc)
            )
            if waiting is not None:
                waiting.refused.add(item.reviewer)
            return
        self.decisions += 1
        if waiting is not None:
            waiting.decided_by.add(reviewer_key(decision.reviewer))
        if recorded.outcome is not None:
            self._open.pop(item.gate_id, None)
            await self.runner.advance(item.gate_id.rsplit(".", 2)[0])
        elif decision.verdict == "edit" and waiting is not None:
            waiting.edited(self.runner.gate(item.gate_id))

    def _record_model_call(self, data: dict[str, Any]) -> None:
        """A model reviewer's call, recorded as ``model.called`` on the gate it was reviewing."""
        run_id, gate_id, actor, at = self._current
        self.runner.ledger.append(
            "model.called", at=at, run_id=run_id, gate_id=gate_id, actor=actor, data=data
        )

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, max_decisions: int = 1_000_000) -> None:
        """Process events in time order until nothing is left to decide or to start."""
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
        inf = float("inf")
        while True:
            self._sync()
            self._deliver_feedback()
            decision_at = self._decisions[0].at if self._decisions else inf
            arrival_at = self._arrivals[0].at if self._arrivals else inf
            if min(decision_at, arrival_at) > self.clock.now():
                # everything due now has happened: free reviewers pick up what is waiting
                await self._pick_up()
                decision_at = self._decisions[0].at if self._decisions else inf
            deadline = self._next_deadline()
            deadline_at = inf if deadline is None else deadline
            # ties: a decision lands before a run arrives, and both before a deadline passes
            # (a decision made at the deadline itself is refused: the gate has failed closed)
            if min(decision_at, arrival_at, deadline_at) == inf:
                break
            if deadline_at < decision_at and deadline_at < arrival_at:
                await self._expire(deadline_at)
            elif arrival_at < decision_at:
                await self._arrive()
            else:
                await self._apply(heapq.heappop(self._decisions))
                if self.decisions >= max_decisions and (self._open or self._arrivals):
                    raise CoimproveError(
                        f"headless session stopped after {max_decisions} decisions"
                    )
        stuck = list(self._open)
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
    ledger: Ledger | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    run_ids: Callable[[int], str] | None = None,
    max_decisions: int = 1_000_000,
    feedback_to: Collection[str] | bool = False,
    memory: MemoryConfig | None = None,
) -> HeadlessResult:
    """Run `runs` runs of `workflow`, one arriving every `arrival_s` simulated seconds, and
    answer every gate with `reviewers` on a simulated clock. Returns when all are settled.

    `inputs` is each run's initial state (or a function of the run's index). `run_ids` names
    the i-th run (default: random ids); scripted reviewers and canaries draw their random
    numbers per gate id, so fixed run ids make a session reproducible and pair it with another
    session's same-named runs (common random numbers across the cells of an ablation).
    `db` is an SQLite file (``":memory:"``: a fresh temporary folder) or a ``postgresql://``
    URL; `ledger` and `checkpointer` replace it. `feedback_to` (reviewer ids, or True for all)
    turns reviewer feedback on; `memory` turns agent memory of review on for every run (see
    `coimprove.memory`).
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
    async with Runner(
        target,
        ledger=ledger,
        checkpointer=checkpointer,
        clock=clock,
        seed=seed,
        canaries=canaries,
        memory=memory,
    ) as runner:
        session = HeadlessSession(runner, reviewers, feedback_to=feedback_to)
        for i in range(runs):
            data = inputs(i) if callable(inputs) else dict(inputs or {})
            run_id = run_ids(i) if run_ids is not None else None
            session.schedule(i * arrival_s, workflow, data, policy=policy, run_id=run_id)
        await session.run(max_decisions)
        infos = [runner.info(r) for r in session.run_ids]
        return HeadlessResult(
            infos,
            session.decisions,
            clock.now(),
            path if ledger is None else None,
            os.fspath(target) if ledger is None else "",
        )
