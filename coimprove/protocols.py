"""The swappable parts, as Protocols: clocks, ledgers and reviewers.

Implementations live in their own layers (`coimprove.ledger`, `coimprove.reviewers`); anything
that has these methods can stand in for them, including a user's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from coimprove.model import EventType, GateRequest, LedgerEvent, Review, ReviewerKind, Truth


@runtime_checkable
class Clock(Protocol):
    """Where event times come from: the wall clock, or a simulated one in headless runs."""

    def now(self) -> float:
        """Seconds since the epoch (or since the simulation began)."""
        ...


class WallClock:
    """Real time (``time.time()``)."""

    def now(self) -> float:
        return time.time()


class LedgerReader(Protocol):
    """Read access to the event log."""

    def events(
        self,
        *,
        run_id: str | None = None,
        gate_id: str | None = None,
        types: Sequence[EventType] | None = None,
        after_seq: int = 0,
    ) -> list[LedgerEvent]:
        """Events in append order, filtered."""
        ...


class LedgerWriter(LedgerReader, Protocol):
    """Read and append inside one serialised transaction."""

    def append(
        self,
        type: EventType,
        *,
        at: float,
        run_id: str | None = None,
        gate_id: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> LedgerEvent:
        """Append one hash-chained event."""
        ...


@dataclass(frozen=True)
class ChainReport:
    """Result of verifying a ledger's hash chain."""

    ok: bool
    events: int
    head: str
    problem: str | None = None
    bad_seq: int | None = None
    witness: int | None = None
    """The event the head witness named and the chain was checked against (None: none)."""
    unproven: tuple[str, ...] = ()
    """What an intact chain still does not prove, said plainly (e.g. without an anchor)."""


@runtime_checkable
class Ledger(LedgerWriter, Protocol):
    """An append-only, tamper-evident event store (SQLite by default)."""

    def transaction(self) -> AbstractContextManager[LedgerWriter]:
        """A write transaction: reads inside it see a stable ledger; appends commit together."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only SQL aggregate over the events (used by `coimprove.metrics`)."""
        ...

    def last_seq(self) -> int:
        """Sequence number of the newest event (0 if empty): a cheap change detector."""
        ...

    def verify(self) -> ChainReport:
        """Recompute the hash chain and report the first broken event."""
        ...

    def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, steal_from: str | None = None
    ) -> bool:
        """Take or renew the lease on `key` (a run); False if another live owner holds it.

        Called inside this ledger's `transaction()` (same thread), it joins that transaction:
        the lease commits or rolls back with the events appended there."""
        ...

    def lease_holder(self, key: str) -> str | None:
        """The owner of the unexpired lease on `key`, if any."""
        ...

    def release_lease(self, key: str, owner: str) -> None:
        """Give up the lease if `owner` holds it."""
        ...

    async def durable(self) -> None:
        """Return once every commit so far is on disk, without blocking the event loop.

        The runner awaits it before acting on what the ledger holds (resuming a run, running
        an effect, returning an effect's result), so the ledger is never behind a checkpoint or
        side effect that came after it. A no-op where every commit is durable when it returns.
        """
        ...

    def close(self) -> None:
        """Release connections (making the ledger's commits durable first)."""
        ...


@dataclass(frozen=True)
class ReviewContext:
    """What a reviewer knows besides the request.

    ``truth`` and ``canary`` are filled only in headless simulations, where a scripted reviewer
    needs the ground truth to simulate catching flaws; front ends for people never see them.
    """

    clock: Clock
    queue_length: int = 0
    session_elapsed_s: float = 0.0
    gates_reviewed: int = 0
    truth: Truth | None = None
    canary: bool = False


@runtime_checkable
class Reviewer(Protocol):
    """Anything that can answer a gate: the TUI, the CLI, a scripted profile, a model."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> ReviewerKind: ...

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        """Look at the request (emitting timed views) and decide."""
        ...
