"""The runner: starts runs, records decisions, and resumes paused runs exactly once.

The runner never holds a paused run in memory: a paused run is a LangGraph checkpoint plus a
``gate.opened`` event. Deciding (`Runner.decide`) only writes the ledger; applying decisions
(`Runner.advance`) resumes each settled gate's interrupt by id, under a per-run lease, after
checking that the interrupt is still pending, and records ``gate.resumed``. A crash between any
two of these steps is repaired by `Runner.resume`: nothing is lost and nothing runs twice.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Interrupt

from coimprove._log import get_logger
from coimprove._resources import builtin_dir
from coimprove.canaries import default_canaries
from coimprove.checkpoints import postgres_checkpointer
from coimprove.effects import EFFECT_EVENTS
from coimprove.errors import (
    CoimproveError,
    EffectInterruptedError,
    InvalidDecisionError,
    LeaseHeldError,
    RunError,
    SelfApprovalError,
)
from coimprove.gates import (
    OPEN_GATE,
    GateRecord,
    Recorded,
    check_reviewer,
    expire_gate,
    load_gate,
    open_gates,
    record_decision,
    record_view,
)
from coimprove.ledger import SqliteLedger, open_ledger
from coimprove.memory import MemoryConfig, ReviewMemory
from coimprove.model import (
    TRUSTED,
    Decision,
    LedgerEvent,
    Proposal,
    ViewEvent,
    canonical_json,
    new_id,
)
from coimprove.policy import Policy, load_policy
from coimprove.protocols import Clock, Ledger, LedgerWriter, WallClock
from coimprove.state import CONTEXT_KEY, CanarySource, RunContext, Vouched
from coimprove.workflow import Workflow

log = get_logger("coimprove.runner")

DEFAULT_DB = Path(".coimprove") / "ledger.db"

RunState = Literal["running", "waiting", "ready", "failed", "blocked", "finished"]


@dataclass(frozen=True)
class RunInfo:
    """A run as the ledger describes it."""

    run_id: str
    graph: str
    policy: str
    state: RunState
    started_at: float
    open_gates: tuple[str, ...] = ()
    error: str | None = None
    workflow_ref: str | None = None


@dataclass(frozen=True)
class _Settled:
    """A resolved gate waiting to be resumed: what resuming it needs, read straight from SQL."""

    gate_id: str
    run_id: str
    interrupt_id: str
    result: dict[str, Any]


@dataclass
class _Lease:
    until: float = 0.0
    pending: set[str] | None = None
    """Interrupt ids known pending while the lease was held without a gap."""
    deadline: float | None = None
    """With `pending`: the earliest deadline of those gates (inf: none has one)."""

    def forget(self) -> None:
        """Another runner may have moved the thread: what we knew of it is void."""
        self.pending = self.deadline = None


@dataclass
class _Run:
    workflow: Workflow
    policy: Policy
    graph: CompiledStateGraph[Any, Any, Any, Any]
    lease: _Lease = field(default_factory=_Lease)
    memory: ReviewMemory | None = None
    settled_here: dict[str, _Settled] = field(default_factory=dict)
    """Gates this runner settled (`decide`) and has not resumed yet, by interrupt id."""


def _dead_here(owner: str) -> bool:
    """Whether a lease owner ``host:pid:nonce`` is a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _workflow_file(target: str) -> Path | None:
    """The file a workflow reference names: a path, or a built-in graph's name; else None."""
    path = Path(target)
    if path.suffix == ".py" or path.exists():
        return path
    builtin = builtin_dir("graphs") / f"{target}.py"
    return builtin if builtin.exists() else None


def _import_file(file: Path) -> ModuleType:
    resolved = file.resolve()
    name = "coimprove_graph_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise RunError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_graph_module(name: str) -> ModuleType:
    """Import a built-in graph's module by name (as the runner does: by file, never as a
    package), e.g. ``behavior_diff``; the library itself never imports ``graphs/``."""
    file = builtin_dir("graphs") / f"{name}.py"
    if not file.exists():
        raise RunError(f"no built-in graph module {name!r} in {file.parent}")
    return _import_file(file)


def load_workflow(ref: str) -> Workflow:
    """Load a workflow from ``path/to/file.py:attr``, ``package.module:attr`` or a built-in
    graph's name (``attr`` defaults to ``workflow``; a callable is called to build it)."""
    target, _, attr = ref.partition(":")
    attr = attr or "workflow"
    file = _workflow_file(target)
    try:
        if file is not None:
            if not file.exists():
                raise RunError(f"workflow file {target!r} does not exist")
            module = _import_file(file)
            canonical = f"{file.resolve()}:{attr}"
        else:
            module = importlib.import_module(target)
            canonical = f"{target}:{attr}"
    except CoimproveError:
        raise
    except Exception as exc:
        raise RunError(f"cannot load workflow {ref!r}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise RunError(f"{ref!r}: {target!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    if callable(obj) and not isinstance(obj, Workflow):
        obj = obj()
    if not isinstance(obj, Workflow):
        raise RunError(f"{ref!r}: {attr!r} is not a coimprove Workflow (got {type(obj).__name__})")
    obj.ref = canonical
    return obj


class Runner:
    """Drives many runs in one process (async). Use as ``async with Runner(db) as runner``.

    `db` is an SQLite file (checkpoints beside it) or a ``postgresql://`` URL (checkpoints in
    the same database). Without `canaries`, a policy that plants canaries gets the built-in
    `coimprove.canaries.default_canaries()`.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] = DEFAULT_DB,
        *,
        ledger: Ledger | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        clock: Clock | None = None,
        canaries: CanarySource | None = None,
        seed: int = 0,
        lease_ttl_s: float = 60.0,
        memory: MemoryConfig | None = None,
    ) -> None:
        self.ledger: Ledger = ledger if ledger is not None else open_ledger(db)
        self._own_ledger = ledger is None
        self._checkpoint_path = (
            self.ledger.checkpoint_path
            if isinstance(self.ledger, SqliteLedger)
            else Path(db).with_suffix(".checkpoints.db")
        )
        self.checkpointer = checkpointer
        self._conn: aiosqlite.Connection | None = None
        self._exits = AsyncExitStack()
        self.clock: Clock = clock or WallClock()
        self.canaries, self.seed, self.lease_ttl_s = canaries, seed, lease_ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workflows: dict[str, Workflow] = {}
        self._runs: dict[str, _Run] = {}
        self._compiled: dict[str, CompiledStateGraph[Any, Any, Any, Any]] = {}
        self.memory = memory
        """Agent memory for runs started here without their own setting (None = off)."""
        self._memories: dict[MemoryConfig, ReviewMemory] = {}

    async def __aenter__(self) -> Runner:
        dsn = getattr(self.ledger, "postgres_dsn", None)  # a Postgres ledger: checkpoints there
        if self.checkpointer is None and isinstance(dsn, str):
            self.checkpointer = await self._exits.enter_async_context(postgres_checkpointer(dsn))
        if self.checkpointer is None:
            self._conn = await aiosqlite.connect(self._checkpoint_path)
            await self._conn.execute("PRAGMA busy_timeout=30000")
            saver = AsyncSqliteSaver(self._conn)
            await saver.setup()
            self.checkpointer = saver
        return self

    async def __aexit__(self, *exc: object) -> None:
        for run_id in list(self._runs):
            self.ledger.release_lease(run_id, self.owner)
        if self._conn is not None:
            await self._conn.close()
        await self._exits.aclose()
        if self._own_ledger:
            self.ledger.close()

    # -- workflows and runs -------------------------------------------------------------------

    def register(self, workflow: Workflow) -> None:
        """Make `workflow` resumable by name in this process (runs record its name and ref)."""
        self._workflows[workflow.name] = workflow

    @property
    def workflows(self) -> tuple[Workflow, ...]:
        """The workflows registered in this runner."""
        return tuple(self._workflows.values())

    def _compile(self, workflow: Workflow) -> CompiledStateGraph[Any, Any, Any, Any]:
        if self.checkpointer is None:
            raise RunError("use the Runner as `async with Runner(...) as runner`")
        graph = self._compiled.get(workflow.name)
        if graph is None:
            graph = self._compiled[workflow.name] = workflow.compile(self.checkpointer)
        return graph

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is not None:
            return run
        started = self.ledger.events(run_id=run_id, types=["run.started"])
        if not started:
            raise RunError(f"no run {run_id!r} in this ledger (see `coimprove status`)")
        data = started[0].data
        workflow = self._workflows.get(data["graph"])
        if workflow is None:
            if not data.get("workflow_ref"):
                raise RunError(
                    f"run {run_id!r} uses workflow {data['graph']!r}, which is not registered "
                    "in this process and has no importable reference"
                )
            workflow = load_workflow(data["workflow_ref"])
            self.register(workflow)
        policy = Policy.model_validate(data["policy_doc"])
        memory = self._memory(data.get("memory"))
        run = self._runs[run_id] = _Run(workflow, policy, self._compile(workflow), memory=memory)
        return run

    def _memory(self, config: MemoryConfig | dict[str, Any] | None) -> ReviewMemory | None:
        """The shared `ReviewMemory` for a run's recorded memory settings (None when off)."""
        if config is None:
            return None
        cfg = MemoryConfig.model_validate(config)
        if not cfg.enabled:
            return None
        if cfg not in self._memories:
            self._memories[cfg] = ReviewMemory(self.ledger, cfg)
        return self._memories[cfg]

    def _config(self, run_id: str, run: _Run) -> RunnableConfig:
        ctx = RunContext(
            run_id=run_id,
            graph=run.workflow.name,
            policy=run.policy,
            ledger=self.ledger,
            clock=self.clock,
            canaries=self._canaries_for(run.policy),
            seed=self.seed,
            memory=run.memory,
        )
        return {"configurable": {"thread_id": run_id, CONTEXT_KEY: ctx}}

    def _canaries_for(self, policy: Policy) -> CanarySource | None:
        """The source given, else the built-in one (`default_canaries`) if `policy` plants any."""
        if self.canaries is None and policy.uses_canaries:
            self.canaries = default_canaries()
            log.info("canaries.default", policy=policy.name)
        return self.canaries

    async def start(
        self,
        workflow: Workflow,
        inputs: dict[str, Any] | None = None,
        *,
        run_id: str | None = None,
        policy: str | Policy | None = None,
        memory: MemoryConfig | None = None,
    ) -> RunInfo:
        """Start a run and drive it until it pauses at gates or finishes.

        `memory` (default: the Runner's) turns agent memory of review on for this run; the
        setting is recorded in ``run.started`` and used again when the run is resumed.
        """
        memory = memory if memory is not None else self.memory
        self.register(workflow)
        pol = policy if isinstance(policy, Policy) else load_policy(policy or workflow.policy)
        if run_id is not None and self.ledger.events(run_id=run_id, types=["run.started"]):
            raise RunError(f"run {run_id!r} already exists")
        run_id = run_id or new_id("r-")  # 48 random bits: a fresh id needs no look-up
        try:
            canonical_json(inputs or {})
        except (TypeError, ValueError) as exc:
            raise RunError(f"run inputs must be JSON data: {exc}") from exc
        run = _Run(workflow, pol, self._compile(workflow), memory=self._memory(memory))
        # the run and our lease on it commit together: no other runner can see the run before
        # it is ours (and drive it from its recorded inputs while this one starts it)
        with self.ledger.transaction() as tx:
            started = tx.append(
                "run.started",
                at=self.clock.now(),
                run_id=run_id,
                data={
                    "graph": workflow.name,
                    "policy": pol.name,
                    "workflow_ref": workflow.ref,
                    "policy_doc": pol.model_dump(mode="json"),
                    "inputs": inputs or {},
                    "seed": self.seed,
                    "memory": memory.model_dump(mode="json") if memory is not None else None,
                },
            )
            if not self._take_lease(run_id, run):  # joins the transaction
                raise LeaseHeldError(f"run {run_id!r} is being driven by another runner")
        _STARTED[run_id, started.hash] = (workflow.name, pol.name, workflow.ref)
        self._runs[run_id] = run
        step = await self._drive(run_id, run, dict(inputs or {}))
        if step is None:  # the step failed: the ledger tells
            return self.info(run_id)
        state, gates = step  # a new run's first step: all it has done
        return RunInfo(
            run_id=run_id,
            graph=workflow.name,
            policy=pol.name,
            state=state,
            started_at=started.at,
            open_gates=gates,
            workflow_ref=workflow.ref,
        )

    # -- deciding -----------------------------------------------------------------------------

    def decide(
        self,
        gate_id: str,
        decision: Decision,
        *,
        views: Sequence[ViewEvent] = (),
        at: float | None = None,
    ) -> Recorded:
        """Validate and record one decision (ledger only). Call `advance` to apply it."""
        run_id = gate_id.rsplit(".", 2)[0]
        roles = self.roles_of(run_id, decision.reviewer)
        recorded = record_decision(
            self.ledger,
            gate_id,
            decision,
            at=self.clock.now() if at is None else at,
            views=views,
            roles=roles,
        )
        run = self._runs.get(run_id)
        if run is not None and recorded.interrupt_id and recorded.resumes_with is not None:
            run.settled_here[recorded.interrupt_id] = _Settled(
                gate_id, run_id, recorded.interrupt_id, recorded.resumes_with
            )
        log.info(
            "gate.decided",
            gate=gate_id,
            reviewer=decision.reviewer,
            verdict=decision.verdict,
            outcome=recorded.outcome.outcome if recorded.outcome else None,
        )
        return recorded

    def roles_of(self, run_id: str, reviewer: str) -> set[str] | None:
        """Roles `reviewer` holds under the policy of `run_id`, if that run is loaded here."""
        run = self._runs.get(run_id)
        return run.policy.roles_of(reviewer) if run is not None else None

    def view(
        self,
        gate_id: str,
        reviewer: str,
        what: Literal["gate", "detail"] = "gate",
        *,
        reviewer_kind: str = "human",
        at: float | None = None,
    ) -> LedgerEvent:
        """Record that `reviewer` looked at the gate (or opened its detail)."""
        return record_view(
            self.ledger,
            gate_id,
            reviewer,
            what,
            reviewer_kind=reviewer_kind,
            at=self.clock.now() if at is None else at,
        )

    def reapprove(
        self, key: str, reviewer: str, *, reviewer_kind: str = "human", note: str = ""
    ) -> LedgerEvent:
        """Grant an interrupted, non-idempotent effect one more attempt (a fresh approval)."""
        gate_id, _, effect = key.rpartition("/")
        if not gate_id:
            raise InvalidDecisionError(f"{key!r} is not an effect key (<gate id>/<effect>)")
        check_reviewer(reviewer, repr(key))
        record = load_gate(self.ledger, gate_id)
        if record.authored_by(reviewer):
            raise SelfApprovalError(f"{reviewer!r} authored {gate_id!r} and may not re-approve it")
        events = [
            e
            for e in self.ledger.events(gate_id=gate_id, types=EFFECT_EVENTS)
            if e.data.get("effect") == effect
        ]
        ended = [
            e.data["attempt"] for e in events if e.type in ("effect.interrupted", "effect.failed")
        ]
        if not ended or any(e.type == "effect.finished" for e in events):
            raise InvalidDecisionError(f"effect {key!r} has no interrupted attempt to re-approve")
        return self.ledger.append(
            "effect.reapproved",
            at=self.clock.now(),
            run_id=record.run_id,
            gate_id=gate_id,
            actor=reviewer,
            data={
                "effect": effect,
                "key": key,
                "attempt": max(ended),
                "reviewer_kind": reviewer_kind,
                "note": note,
            },
        )

    # -- applying -----------------------------------------------------------------------------

    async def advance(self, run_id: str | None = None, *, retry_failed: bool = False) -> list[str]:
        """Expire overdue gates, resume settled ones, continue interrupted steps.

        Returns the ids of the runs it drove. Safe to call from several processes at once:
        each run is driven by one lease holder.
        """
        now = self.clock.now()
        driven: list[str] = []
        for rid, settled in self._runs_needing_work(run_id, now, retry_failed):
            try:
                run = self._run(rid)
            except RunError as exc:
                log.warning("run.skipped", run=rid, error=str(exc))
                continue
            try:
                await self._drive(rid, run, None, settled)
            except LeaseHeldError:
                log.info("run.leased_elsewhere", run=rid)
                continue
            except Exception as exc:  # one broken run must not stop the others
                self._record_failed(rid, exc)
            driven.append(rid)
        return driven

    async def resume(self, run_id: str | None = None) -> list[str]:
        """Recover after a crash: finish every interrupted step, retry failed runs."""
        return await self.advance(run_id, retry_failed=True)

    def _runs_needing_work(
        self, run_id: str | None, now: float, retry_failed: bool
    ) -> list[tuple[str, list[_Settled] | None]]:
        """Runs to drive, each with its settled gates when they were read here already."""
        self._expire_overdue(run_id, now)
        out: list[tuple[str, list[_Settled] | None]] = []
        if run_id is not None:
            settled = self._known_settled(run_id)
            if settled is None:
                settled = self._settled(run_id)
            if settled:
                return [(run_id, settled)]
        else:
            rows = self.ledger.query(
                "SELECT r.run_id FROM events r WHERE r.type = 'gate.resolved' "
                "AND NOT EXISTS (SELECT 1 FROM events m WHERE m.gate_id = r.gate_id "
                "AND m.type = 'gate.resumed') GROUP BY r.run_id ORDER BY MIN(r.seq)"
            )
            out = [(r[0], None) for r in rows]
        ready = {rid for rid, _ in out}
        for info in self.runs(run_id):
            if info.run_id in ready:
                continue
            if info.state == "running" or (retry_failed and info.state in ("failed", "blocked")):
                out.append((info.run_id, None))
        return out

    def _known_settled(self, run_id: str) -> list[_Settled] | None:
        """The run's settled gates without asking the ledger, when this runner knows them all:
        it opened every pending gate under a lease held since, and settled each one itself
        (only the lease holder resumes, so none can have been resumed elsewhere). Else None."""
        run = self._runs.get(run_id)
        if run is None or not run.settled_here:
            return None
        pending, here = run.lease.pending, run.settled_here
        if not pending or run.lease.until <= time.time() or not pending <= here.keys():
            return None
        return [record for i, record in here.items() if i in pending]

    def _expire_overdue(self, run_id: str | None, now: float) -> None:
        """Fail closed: resolve every gate whose policy timeout has passed."""
        run = self._runs.get(run_id) if run_id is not None else None
        if run is not None:
            if not run.policy.has_timeouts:
                return  # its gates were opened under this policy: none has a deadline
            lease = run.lease
            if (
                lease.pending is not None
                and lease.deadline is not None
                and now < lease.deadline
                and lease.until > time.time()
            ):
                return  # we opened its pending gates, under a lease held since then
        scope, params = ("AND o.run_id = ?", [run_id]) if run_id else ("", [])
        overdue = self.ledger.query(
            "SELECT o.gate_id FROM events o WHERE o.type = 'gate.opened' AND o.deadline <= ? "
            f"{scope} AND NOT EXISTS (SELECT 1 FROM events r WHERE r.gate_id = o.gate_id "
            "AND r.type = 'gate.resolved') ORDER BY o.seq",
            [now, *params],
        )
        for (gate_id,) in overdue:
            expire_gate(self.ledger, gate_id, now=now)

    async def _drive(
        self,
        run_id: str,
        run: _Run,
        inputs: dict[str, Any] | None,
        settled: list[_Settled] | None = None,
    ) -> tuple[RunState, tuple[str, ...]] | None:
        """Drive one step of `run_id` under its lease. Returns how the step left the run
        (waiting at the gates it opened, or finished), or None if there was no step to take
        or it failed."""
        if not self._take_lease(run_id, run):
            raise LeaseHeldError(f"run {run_id!r} is being driven by another runner")
        graph, cfg = run.graph, self._config(run_id, run)
        resume: dict[str, Any] = {}
        started = inputs is not None
        if inputs is not None:
            settled = []
        else:
            if settled is None or run.lease.pending is None:
                # read (again) under the lease unless it was held throughout: nobody else
                # can have resumed these gates since `settled` was read
                settled = self._settled(run_id)
            if settled:
                pending = run.lease.pending
                if pending is None:
                    pending = await self._pending_interrupts(run_id, run)
                for record in settled:
                    if record.interrupt_id in pending:
                        resume[record.interrupt_id] = record.result
                    else:  # consumed before a crash: the checkpoint already moved on
                        self._mark_resumed(record, recovered=True)
                if not resume and pending:
                    return None
            if not resume:
                state = await graph.aget_state(cfg)
                if state.interrupts:  # paused before its gates were recorded (a crash)
                    deadline = self._open_gates(run_id, state.interrupts)
                    run.lease.pending = {i.id for i in state.interrupts}
                    run.lease.deadline = deadline
                    return None
                if not state.next:
                    if state.created_at is not None:  # finished before it was recorded
                        self._finish(run_id, dict(state.values))
                        return None
                    inputs = self._recorded_inputs(run_id)  # crashed before the first step
        command: Any = (
            inputs if inputs is not None else (Command(resume=resume) if resume else None)
        )
        # interrupts recorded as pending under a lease held since then (None: unknown); a run
        # being started has none recorded (its run.started was just appended, under our lease)
        known = set() if started else run.lease.pending
        known_deadline = run.lease.deadline
        if known and resume:  # pending since we recorded them, and nobody else resumed them
            vouch = known & resume.keys()
            ctx: RunContext = cfg["configurable"][CONTEXT_KEY]
            ctx.vouched = Vouched(
                {r.gate_id: r.result for r in settled if r.interrupt_id in vouch},
                until=run.lease.until,
            )
        run.lease.forget()
        try:
            await self.ledger.durable()  # what it acts on (inputs, decisions) is on disk first
            result = await graph.ainvoke(command, cfg, durability="sync")
        except Exception as exc:
            await self._after_failure(run_id, run, settled, resume, exc)
            return None
        interrupts: list[Interrupt] = (
            list(result.get("__interrupt__", ())) if isinstance(result, dict) else []
        )
        ids = {i.id for i in interrupts}
        for interrupt_id in resume:
            if interrupt_id in ids:
                raise RunError(f"run {run_id!r}: interrupt {interrupt_id} was not consumed")
        by_interrupt = {r.interrupt_id: r for r in settled}
        if run.lease.until <= time.time():
            known = None  # the lease may have lapsed while the graph ran: check the ledger
        with self.ledger.transaction() as tx:  # one commit for everything this step settled
            for interrupt_id in resume:
                self._resumed(tx, by_interrupt[interrupt_id], recovered=False, check=known is None)
            deadline = self._open_gates(run_id, interrupts, tx, known=known)
            if known is not None and deadline is not None and ids & known:
                deadline = None if known_deadline is None else min(deadline, known_deadline)
            if not interrupts:
                self._finish(run_id, result if isinstance(result, dict) else {}, tx)
        run.lease.pending, run.lease.deadline = ids, deadline
        opened = tuple(i.value["coimprove_gate"] for i in interrupts)
        return ("waiting", opened) if opened else ("finished", ())

    def _finish(self, run_id: str, values: dict[str, Any], tx: LedgerWriter | None = None) -> None:
        if tx is None:
            with self.ledger.transaction() as own:
                return self._finish(run_id, values, own)
        if not tx.events(run_id=run_id, types=["run.finished"]):
            tx.append(
                "run.finished",
                at=self.clock.now(),
                run_id=run_id,
                data={"state_keys": sorted(values)},
            )
        return None

    def _recorded_inputs(self, run_id: str) -> dict[str, Any]:
        started = self.ledger.events(run_id=run_id, types=["run.started"])
        return dict(started[0].data.get("inputs") or {})

    async def _after_failure(
        self,
        run_id: str,
        run: _Run,
        settled: list[_Settled],
        resume: dict[str, Any],
        exc: Exception,
    ) -> None:
        try:
            still: set[str] | None = await self._pending_interrupts(run_id, run)
        except Exception as read_exc:  # the failure may have left a state no one can read
            log.warning("run.state_unreadable", run=run_id, error=str(read_exc))
            still = None  # unknown: leave its gates unresumed, a retry consumes them
        for record in settled:
            if (
                still is not None
                and record.interrupt_id in resume
                and record.interrupt_id not in still
            ):
                self._mark_resumed(record, recovered=False)
        self._record_failed(run_id, exc)

    async def _pending_interrupts(self, run_id: str, run: _Run) -> set[str]:
        """Ids of the interrupts the run's checkpoint waits on. When the state cannot be
        computed (a failed step left writes LangGraph refuses to apply, e.g. two parallel
        writes to one plain key), they are read from the checkpoint's own pending writes."""
        cfg = self._config(run_id, run)
        try:
            state = await run.graph.aget_state(cfg)
        except Exception:
            saver = run.graph.checkpointer
            if not isinstance(saver, BaseCheckpointSaver):
                raise
            saved = await saver.aget_tuple(cfg)
            ids: set[str] = set()
            for _task, channel, value in (saved.pending_writes or []) if saved else []:
                if channel == "__interrupt__":  # LangGraph's channel for interrupt() calls
                    ids.update(i.id for i in value if isinstance(i, Interrupt))
            return ids
        return {i.id for i in state.interrupts}

    def _record_failed(self, run_id: str, exc: Exception) -> None:
        """Record `run.failed` with its reason (whatever the graph raised)."""
        blocked = isinstance(exc, EffectInterruptedError)
        self.ledger.append(
            "run.failed",
            at=self.clock.now(),
            run_id=run_id,
            data={"error": f"{type(exc).__name__}: {exc}", "blocked": blocked},
        )
        log.warning("run.failed", run=run_id, error=str(exc), blocked=blocked)
        if not isinstance(exc, CoimproveError):
            log.debug("run.error", run=run_id, exc_info=exc)  # COIMPROVE_LOG=DEBUG shows it

    def _take_lease(self, run_id: str, run: _Run) -> bool:
        now = time.time()
        if run.lease.until - now > self.lease_ttl_s / 2:
            return True  # ours, and far from expiring: no need to renew yet
        if run.lease.until <= now:
            run.lease.forget()  # a gap: another runner may have moved the thread
        if not self.ledger.acquire_lease(run_id, self.owner, self.lease_ttl_s):
            holder = self.ledger.lease_holder(run_id)
            if holder is None or not _dead_here(holder):
                return False
            log.warning("lease.stolen", run=run_id, from_=holder)
            if not self.ledger.acquire_lease(
                run_id, self.owner, self.lease_ttl_s, steal_from=holder
            ):
                return False
        run.lease.until = now + self.lease_ttl_s
        return True

    def _mark_resumed(self, record: _Settled, *, recovered: bool) -> None:
        with self.ledger.transaction() as tx:
            self._resumed(tx, record, recovered=recovered)

    def _resumed(
        self, tx: LedgerWriter, record: _Settled, *, recovered: bool, check: bool = True
    ) -> None:
        """Record ``gate.resumed`` once. `check=False`: the caller knows it is not recorded
        (read under a lease held since, and only the lease holder records it)."""
        run = self._runs.get(record.run_id)
        if run is not None:
            run.settled_here.pop(record.interrupt_id, None)
        if check and tx.events(gate_id=record.gate_id, types=["gate.resumed"]):
            return
        tx.append(
            "gate.resumed",
            at=self.clock.now(),
            run_id=record.run_id,
            gate_id=record.gate_id,
            data={"recovered": recovered, "interrupt_id": record.interrupt_id},
        )

    def _open_gates(
        self,
        run_id: str,
        interrupts: Sequence[Interrupt],
        tx: LedgerWriter | None = None,
        *,
        known: set[str] | None = None,
    ) -> float | None:
        """Record ``gate.opened`` for each interrupt not yet recorded. Returns the earliest
        deadline among the new ones (inf: none), or None if some were recorded before and
        `known` is None (unknown). `known`: the interrupt ids already recorded, when the caller
        knows them all (under a lease held throughout); the ledger is not asked then."""
        if tx is None:
            with self.ledger.transaction() as own:
                return self._open_gates(run_id, interrupts, own, known=known)
        earliest: float | None = math.inf
        for interrupt in interrupts:
            value = interrupt.value
            if not isinstance(value, dict) or "coimprove_gate" not in value:
                raise RunError(
                    f"run {run_id!r} paused at an interrupt that is not a coimprove gate "
                    f"({value!r:.80}); only gates may pause a coimprove run"
                )
            gate_id = value["coimprove_gate"]
            if known is not None:
                if interrupt.id in known:
                    continue
            elif tx.events(gate_id=gate_id, types=["gate.opened"]):
                earliest = None
                continue
            request = value["request"]
            proposal = request["proposal"]
            requirement = request["requirement"]
            # our gate node made this value from a proposal it validated and digested; the
            # effect re-derives the digest from graph state before acting, so trust it here
            has_detail = value.get("has_detail")
            if not isinstance(has_detail, bool):  # paused by an older coimprove
                has_detail = Proposal.model_validate(proposal, context=TRUSTED).has_detail
            opened_at = self.clock.now()
            request = {**request, "opened_at": opened_at}
            timeout = requirement["timeout_s"]
            deadline = None if timeout is None else opened_at + timeout
            tx.append(
                "gate.opened",
                at=opened_at,
                run_id=run_id,
                gate_id=gate_id,
                data={
                    "interrupt_id": interrupt.id,
                    "agent": value.get("agent"),
                    "request": request,
                    "hidden": value.get("hidden") or {},
                    "eligible": value.get("eligible") or [],
                    "graph": request["graph"],
                    "gate": request["gate"],
                    "round": request["round"],
                    "proposal_kind": proposal["kind"],
                    "policy": requirement["policy"],
                    "category": request.get("category"),
                    "has_detail": has_detail,
                    "min_review_s": requirement["min_review_seconds"],
                    "deadline": deadline,
                    "digest": proposal["digest"],
                },
            )
            log.info("gate.opened", gate=gate_id, kind=proposal["kind"])
            if earliest is not None and deadline is not None:
                earliest = min(earliest, deadline)
        return earliest

    # -- reading ------------------------------------------------------------------------------

    def _settled(self, run_id: str) -> list[_Settled]:
        """Gates of `run_id` that are resolved but whose outcome was not yet resumed."""
        rows = self.ledger.query(
            "SELECT r.gate_id, o.data, r.data FROM events r JOIN events o "
            "ON o.gate_id = r.gate_id AND o.type = 'gate.opened' "
            "WHERE r.type = 'gate.resolved' AND r.run_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM events m WHERE m.gate_id = r.gate_id "
            "AND m.type = 'gate.resumed') ORDER BY r.seq",
            [run_id],
        )
        return [
            _Settled(
                gate_id, run_id, json.loads(opened)["interrupt_id"], json.loads(resolved)["result"]
            )
            for gate_id, opened, resolved in rows
        ]

    async def state(self, run_id: str) -> dict[str, Any]:
        """The run's current graph state (from its latest checkpoint)."""
        run = self._run(run_id)
        snapshot = await run.graph.aget_state(self._config(run_id, run))
        return dict(snapshot.values)

    def gate(self, gate_id: str) -> GateRecord:
        """The ledger record of one gate."""
        return load_gate(self.ledger, gate_id)

    def open_gates(self, run_id: str | None = None) -> list[GateRecord]:
        """Gates waiting for a decision, oldest first."""
        return open_gates(self.ledger, run_id)

    def info(self, run_id: str) -> RunInfo:
        """The state of one run."""
        found = self.runs(run_id)
        if not found:
            raise RunError(f"no run {run_id!r} in this ledger")
        return found[0]

    def runs(self, run_id: str | None = None) -> list[RunInfo]:
        """Every run (or one), with its state derived from the ledger."""
        return list_runs(self.ledger, run_id)


_PROGRESS = (
    "'run.started', 'run.failed', 'run.finished', 'gate.opened', 'gate.resolved', "
    "'gate.resumed', 'effect.reapproved'"
)

# One statement for runs and their open gates: a run's row (kind 0) carries its state, and each
# open gate adds a row (kind 1) naming it; both ordered by the seq of the event they come from.
_RUNS_SQL = f"""
SELECT 0, s.seq, s.run_id, s.at, s.hash,
  (SELECT l.type FROM events l WHERE l.run_id = s.run_id AND l.type IN ({_PROGRESS})
     ORDER BY l.seq DESC LIMIT 1),
  (SELECT l.data FROM events l WHERE l.run_id = s.run_id AND l.type = 'run.failed'
     ORDER BY l.seq DESC LIMIT 1),
  EXISTS (SELECT 1 FROM events f WHERE f.run_id = s.run_id AND f.type = 'run.finished'),
  EXISTS (SELECT 1 FROM events r WHERE r.run_id = s.run_id AND r.type = 'gate.resolved'
          AND NOT EXISTS (SELECT 1 FROM events m WHERE m.gate_id = r.gate_id
                          AND m.type = 'gate.resumed'))
FROM events s WHERE s.type = 'run.started' {{scope_s}}
UNION ALL
SELECT 1, o.seq, o.run_id, NULL, o.gate_id, NULL, NULL, NULL, NULL
FROM events o WHERE {OPEN_GATE.format(scope="{scope_o}")}
ORDER BY 2
"""


_Started = dict[tuple[str, str], tuple[str, str, str | None]]

_STARTED: _Started = {}
"""(graph, policy, workflow ref) of ``run.started`` events by run id and chain hash: they never
change, and their data (the whole policy document) is large to parse on every look."""


def _started_of(ledger: Ledger, keys: list[tuple[str, str]]) -> _Started:
    """What each ``run.started`` event (by run id and hash) records; parsed once per process."""
    found = {k: _STARTED[k] for k in keys if k in _STARTED}
    missing = [k[1] for k in keys if k not in found]
    if len(_STARTED) + len(missing) > 65536:
        _STARTED.clear()
    for at in range(0, len(missing), 500):  # within any backend's limit on parameters
        chunk = missing[at : at + 500]
        marks = ",".join("?" * len(chunk))
        for rid, digest, data in ledger.query(
            "SELECT run_id, hash, data FROM events "
            f"WHERE type = 'run.started' AND hash IN ({marks})",
            chunk,
        ):
            start = json.loads(data)
            found[rid, digest] = _STARTED[rid, digest] = (
                start["graph"],
                start["policy"],
                start.get("workflow_ref"),
            )
    return found


def list_runs(ledger: Ledger, run_id: str | None = None) -> list[RunInfo]:
    """Runs and their states, derived from ledger events alone (one SQL statement)."""
    scope_s, scope_o = ("AND s.run_id = ?", "AND o.run_id = ?") if run_id else ("", "")
    rows = ledger.query(
        _RUNS_SQL.format(scope_s=scope_s, scope_o=scope_o), [run_id, run_id] if run_id else []
    )
    open_by_run: dict[str, list[str]] = {}
    for kind, _, rid, _, gate_id, *_ in rows:
        if kind == 1:
            open_by_run.setdefault(rid, []).append(gate_id)
    out: list[RunInfo] = []
    started = _started_of(ledger, [(r[2], r[4]) for r in rows if r[0] == 0])
    for kind, _, rid, at, started_hash, last, failed, finished, ready in rows:
        if kind != 0:
            continue
        graph, policy, ref = started[rid, started_hash]
        error = None
        state: RunState
        if finished:
            state = "finished"
        elif last == "run.failed":
            fail = json.loads(failed)
            state = "blocked" if fail.get("blocked") else "failed"
            error = fail.get("error")
        elif ready:
            state = "ready"
        elif open_by_run.get(rid):
            state = "waiting"
        else:
            state = "running"
        out.append(
            RunInfo(
                run_id=rid,
                graph=graph,
                policy=policy,
                state=state,
                started_at=at,
                open_gates=tuple(open_by_run.get(rid, ())),
                error=error,
                workflow_ref=ref,
            )
        )
    return out
