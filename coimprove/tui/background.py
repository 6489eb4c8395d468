"""Work the review app keeps off its UI loop: ledger writes, and resuming runs.

`WriteQueue` runs ledger writes (views, decisions) one at a time, in the order they were
asked for, on one thread: a keypress never waits for SQLite, and a decision is still written
after the views that preceded it. Each write's time is taken on the UI loop when the reviewer
acted, not when the thread gets to it.

`RunDriver` resumes runs on a thread with its own event loop and its own `Runner` (its own
ledger connections), so a LangGraph step, an effect or a model call never blocks the screen.
The runner's leases keep each decision applied exactly once, whichever runner applies it.
Given `owner` (the lease owner of a runner the app was handed, which may hold the leases of
the runs it started), the driver acts as that runner's lease holder: the app then resumes
those runs for it, one at a time, and the caller should not advance them concurrently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from coimprove.protocols import Clock
from coimprove.runner import Runner
from coimprove.state import CanarySource
from coimprove.workflow import Workflow

T = TypeVar("T")


class WriteQueue:
    """Ledger writes in order, on one background thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="coimprove-review-writes"
        )
        self._last: concurrent.futures.Future[Any] | None = None
        self._held: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def submit(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Queue `fn(*args, **kwargs)` after every write queued (or held) before it."""
        self.release()
        future = self._pool.submit(fn, *args, **kwargs)
        self._last = future
        return future

    def hold(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Keep a write until `release` (the app releases after the frame it belongs to is
        drawn, so the write thread does not compete with drawing it). Order is kept: a
        later `submit` releases the held writes first."""
        self._held.append((fn, args, kwargs))

    def release(self) -> None:
        """Queue the held writes, in order."""
        held, self._held = self._held, []
        for fn, args, kwargs in held:
            self._last = self._pool.submit(fn, *args, **kwargs)

    async def drained(self) -> None:
        """Wait (without blocking the loop) until every write queued so far is done."""
        self.release()
        last = self._last
        if last is not None:
            await asyncio.wait([asyncio.wrap_future(last)])

    def close(self) -> None:
        """Finish the queued writes (nothing a reviewer did is dropped), then stop."""
        self.release()
        self._pool.shutdown(wait=True)


class RunDriver:
    """Resumes runs with ``Runner.advance`` on a background thread and event loop."""

    def __init__(
        self,
        db: str | os.PathLike[str],
        *,
        clock: Clock,
        workflows: Iterable[Workflow] = (),
        canaries: CanarySource | None = None,
        seed: int = 0,
        owner: str | None = None,
    ) -> None:
        self._db, self._clock = db, clock
        self._workflows = list(workflows)
        self._canaries, self._seed, self._owner = canaries, seed, owner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="coimprove-review-runs", daemon=True
        )
        self._thread.start()
        self._runner: Runner | None = None
        self._lock: asyncio.Lock | None = None

    def register(self, workflow: Workflow) -> None:
        """Make `workflow` resumable (runs started in this process by a workflow object)."""
        self._workflows.append(workflow)
        if self._runner is not None:
            self._loop.call_soon_threadsafe(self._runner.register, workflow)

    async def _advance(self, run_id: str) -> list[str]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one resume at a time, as the app's decisions arrived
            if self._runner is None:
                runner = Runner(
                    self._db, clock=self._clock, canaries=self._canaries, seed=self._seed
                )
                if self._owner is not None:
                    runner.owner = self._owner
                self._runner = await runner.__aenter__()
            for wf in self._workflows:
                self._runner.register(wf)
            return await self._runner.advance(run_id)

    def advance(self, run_id: str) -> list[str]:
        """Resume `run_id` (blocking the calling thread, never the driver's loop)."""
        return asyncio.run_coroutine_threadsafe(self._advance(run_id), self._loop).result()

    def close(self) -> None:
        """Close the runner (releasing its leases) and stop the thread."""
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            runner, self._runner = self._runner, None
            if self._owner is not None:
                # The leases belong to the runner we act for, which may still count on them
                # (it renews only when they near expiry): closing must not release them.
                runner._runs.clear()
            future = asyncio.run_coroutine_threadsafe(
                runner.__aexit__(None, None, None), self._loop
            )
            future.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
