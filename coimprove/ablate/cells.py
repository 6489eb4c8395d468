"""One cell of a sweep: run its headless runs, read its measures back from its own ledger.

`execute_cell` is what an executor ships to a worker process (plain data in, plain data out,
so it crosses process and machine boundaries). A cell always starts from an empty ledger; if it
fails or its process dies, nothing is recorded as finished and the next sweep runs it again.

LangGraph checkpoints of a cell live in memory: a cell is re-run whole after a crash, so its
checkpoints need not outlive it, and skipping the checkpoint database is most of what makes
10,000 gates take seconds. The ledger — where every measure comes from — is a SQLite file per
cell by default; its location is the spec's ``ledger`` template (a DSN for a shared database
backend goes there too).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel, ConfigDict, Field

from coimprove.ablate.measures import CellMeasures, measure
from coimprove.ablate.spec import AGENT_MODEL, SYNTHETIC, Arm, CellSpec
from coimprove.ablate.synthetic import (
    SyntheticCanaries,
    sweep_model,
    synthetic_inputs,
    synthetic_workflow,
)
from coimprove.agents.models import SPEC_ENV
from coimprove.agents.reviewer import ModelReviewer
from coimprove.errors import LedgerError, SweepError
from coimprove.headless import HeadlessResult, run_headless
from coimprove.ledger import open_ledger
from coimprove.protocols import Ledger, Reviewer
from coimprove.reviewers.scripted import ScriptedReviewer
from coimprove.runner import load_workflow
from coimprove.state import CanarySource
from coimprove.workflow import Workflow

__all__ = ["CellResult", "execute_cell", "open_cell_ledger", "run_cell"]

_MAX_WARNINGS = 20


class CellResult(BaseModel):
    """What one cell did: its spec, where its ledger is, its measures (or why it failed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    digest: str
    cell: CellSpec
    arm: Arm
    ok: bool
    error: str | None = None
    ledger: str = ""
    wall_s: float = 0.0
    sim_s: float = 0.0
    decisions: int = 0
    measures: CellMeasures | None = None
    warnings: list[str] = Field(default_factory=list)
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)


def open_cell_ledger(location: str) -> Ledger:
    """The ledger at `location`: a SQLite path (or ``sqlite:///path``), or a ``postgresql://``
    DSN (needs the ``postgres`` extra) to share one ledger between cells and machines."""
    try:
        return open_ledger(location)
    except LedgerError as exc:
        raise SweepError(f"ledger {location!r}: {exc}") from exc


def _panel(cell: CellSpec) -> list[Reviewer]:
    panel = cell.panel
    if panel.model is not None:
        own = panel.model == AGENT_MODEL
        chat = sweep_model(cell.model if own else panel.model)
        prompt = "self_critique" if own else "reviewer"
        return [
            ModelReviewer(chat, id=rid, think_s=panel.think_s, prompt=prompt)
            for rid in panel.reviewer_ids
        ]
    profile = panel.profile_model()
    return [ScriptedReviewer(profile, id=rid, seed=cell.seed) for rid in panel.reviewer_ids]


@contextmanager
def _model_env(spec: str) -> Iterator[None]:
    """Agents of a workflow ref built without a model use the cell's (``$COIMPROVE_MODEL``)."""
    before = os.environ.get(SPEC_ENV)
    os.environ[SPEC_ENV] = spec
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SPEC_ENV, None)
        else:
            os.environ[SPEC_ENV] = before


class _Collect(logging.Handler):
    """Keeps a cell's warnings for its result instead of printing them over the progress bar."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < _MAX_WARNINGS:
            self.messages.append(record.getMessage())


def run_cell(cell: CellSpec, cell_dir: Path) -> CellResult:
    """Run `cell` from scratch in `cell_dir` (emptied first) and measure it."""
    if cell_dir.exists():
        shutil.rmtree(cell_dir)  # leftovers of an attempt that never finished
    cell_dir.mkdir(parents=True)
    location = cell.ledger_location(cell_dir)
    ledger = open_cell_ledger(location)
    try:
        if ledger.last_seq() > 0:
            raise SweepError(
                f"cell {cell.key}: ledger {location} already holds events (an earlier attempt?); "
                "a cell needs an empty ledger"
            )
        began = time.perf_counter()
        with _model_env(cell.model):
            result = asyncio.run(_simulate(cell, cell_dir, ledger))
        measures = measure(ledger)
        wall = time.perf_counter() - began
    finally:
        ledger.close()
    return CellResult(
        key=cell.key,
        digest=cell.digest,
        cell=cell,
        arm=cell.panel.resolved_arm,
        ok=True,
        ledger=location,
        wall_s=round(wall, 3),
        sim_s=result.sim_seconds,
        decisions=result.decisions,
        measures=measures,
    )


async def _simulate(cell: CellSpec, cell_dir: Path, ledger: Ledger) -> HeadlessResult:
    workflow: Workflow
    canaries: CanarySource | None = None
    inputs: Callable[[int], dict[str, Any]] | dict[str, Any]
    if cell.graph == SYNTHETIC:
        workflow = synthetic_workflow(cell.synthetic, model=cell.model)
        canaries = SyntheticCanaries(cell.synthetic.canary_visible_rate)
        steps, seed = cell.gates_per_run, cell.seed

        def synthetic(i: int) -> dict[str, Any]:
            return synthetic_inputs(i, seed, steps)

        inputs = synthetic
        max_decisions = max(cell.runs * cell.gates_per_run * 50, 1000)
    else:
        workflow = load_workflow(cell.graph)
        inputs, max_decisions = dict(cell.inputs), 1_000_000
    return await run_headless(
        workflow,
        _panel(cell),
        runs=cell.runs,
        inputs=inputs,
        db=cell_dir / "ledger.db",
        ledger=ledger,
        checkpointer=InMemorySaver(),
        policy=cell.policy.policy(),
        seed=cell.seed,
        arrival_s=cell.arrival_s,
        canaries=canaries,
        run_ids=lambda i: f"s{cell.seed}-r{i:05d}",
        max_decisions=max_decisions,
    )


def execute_cell(cell_data: dict[str, Any], cell_dir: str) -> dict[str, Any]:
    """Run one cell in this process: the function executors ship to their workers.

    Takes and returns plain JSON data. A cell that raises comes back with ``ok: false`` and the
    error; warnings the engine logs are kept in the result rather than printed.
    """
    cell = CellSpec.model_validate(cell_data)
    logger = logging.getLogger("coimprove")
    collect = _Collect()
    logger.addHandler(collect)
    level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        result = run_cell(cell, Path(cell_dir))
    except Exception as exc:
        result = CellResult(
            key=cell.key,
            digest=cell.digest,
            cell=cell,
            arm=cell.panel.resolved_arm,
            ok=False,
            error=f"{type(exc).__name__}: {exc}",
        )
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    return result.model_copy(update={"warnings": collect.messages}).model_dump(mode="json")


def cell_results(data: Sequence[dict[str, Any]]) -> list[CellResult]:
    """Validate results that came back from workers."""
    return [CellResult.model_validate(d) for d in data]
