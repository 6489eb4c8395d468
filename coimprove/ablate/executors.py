"""Where cells run: this process, a pool of local processes, or a Ray cluster.

An executor takes cells with the folder each should use and yields ``(cell, result data)`` as
cells finish, in any order. Results are plain JSON data (`execute_cell`'s return value), so the
same code serves every executor. A worker that dies takes its cell with it: the executor
yields a failed result for it and carries on with the others.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Literal, Protocol

from coimprove.ablate.cells import execute_cell
from coimprove.ablate.spec import CellSpec
from coimprove.errors import SweepError

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorName",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
]

ExecutorName = Literal["local", "inline", "ray"]
EXECUTORS: tuple[ExecutorName, ...] = ("local", "inline", "ray")

Job = tuple[CellSpec, Path]


def _failed(cell: CellSpec, error: str) -> dict[str, Any]:
    return {
        "key": cell.key,
        "digest": cell.digest,
        "cell": cell.model_dump(mode="json"),
        "arm": cell.panel.resolved_arm,
        "ok": False,
        "error": error,
    }


class Executor(Protocol):
    """Runs cells and yields their results as they finish."""

    @property
    def workers(self) -> int:
        """How many cells run at once."""
        ...

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[CellSpec, dict[str, Any]]]:
        """Run every (cell, folder) job; yield (cell, result data) as each finishes."""
        ...

    def close(self) -> None:
        """Release workers."""
        ...


class InlineExecutor:
    """Runs cells one after another in this process (debugging, tiny sweeps)."""

    workers = 1

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[CellSpec, dict[str, Any]]]:
        for cell, folder in jobs:
            yield cell, execute_cell(cell.model_dump(mode="json"), str(folder))

    def close(self) -> None:
        return None


def _execute(cell: CellSpec, folder: Path) -> dict[str, Any]:
    return execute_cell(cell.model_dump(mode="json"), str(folder))


def _warm() -> None:
    """Import the engine in a fresh worker before the first cell arrives."""
    import coimprove.ablate.cells  # noqa: F401


class LocalExecutor:
    """A pool of `workers` local processes (``spawn``: clean interpreters, no forked threads)."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise SweepError(f"--workers must be at least 1, not {workers}")
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm,
            )
        return self._pool

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[CellSpec, dict[str, Any]]]:
        pending: dict[Future[dict[str, Any]], Job] = {}
        queue = list(jobs)
        attempts: dict[str, int] = {}
        while queue or pending:
            # at most 2 cells per worker in flight: a dead worker takes little with it
            while queue and len(pending) < 2 * self._workers:
                job = queue.pop(0)
                cell, folder = job
                attempts[cell.key] = attempts.get(cell.key, 0) + 1
                pending[self._ensure().submit(_execute, cell, folder)] = job
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                cell = job[0]
                try:
                    result = future.result()
                except BrokenProcessPool as exc:
                    # every cell in flight fails with the pool; which one killed it is unknown,
                    # so each gets one more try in a fresh pool before it counts as failed
                    self._discard()
                    if attempts[cell.key] < 2:
                        queue.insert(0, job)
                        continue
                    result = _failed(cell, f"worker process died: {exc}")
                yield cell, result

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Cells as Ray tasks: a local Ray (``address=None``, `workers` CPUs) or a cluster
    (``address="auto"`` or ``ray://host:10001``).

    Workers on other machines need coimprove installed and the output folder reachable at the
    same path (a shared filesystem) when ledgers are SQLite files; with a database ledger
    (a DSN in the spec's ``ledger``) only the results travel back.
    """

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise SweepError("--executor ray needs Ray: pip install 'coimprove[ray]'") from exc
        self._ray: Any = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address is None:
                kwargs["num_cpus"] = workers
            ray.init(address=address, **kwargs)
        resources: dict[str, float] = self._ray.cluster_resources()
        self._workers = max(int(resources.get("CPU", workers)), 1)
        self._task = ray.remote(num_cpus=1, max_retries=0)(execute_cell)

    @property
    def workers(self) -> int:
        return self._workers

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[CellSpec, dict[str, Any]]]:
        ray = self._ray
        pending = {
            self._task.remote(cell.model_dump(mode="json"), str(folder)): cell
            for cell, folder in jobs
        }
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    yield cell, ray.get(ref)
                except Exception as exc:  # a worker that died, a task Ray gave up on
                    yield cell, _failed(cell, f"ray task failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(name: str, *, workers: int = 2, address: str | None = None) -> Executor:
    """The executor `name` names (``local``, ``inline`` or ``ray``)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(workers, address)
    raise SweepError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
