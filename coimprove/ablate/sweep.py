"""Running a sweep: plan its cells, skip finished ones, run the rest, write the report.

Output layout::

    OUT/spec.json                 the resolved spec the cells were planned from
    OUT/cells/<cell>/ledger.db    each cell's ledger (the default ledger location)
    OUT/cells/<cell>/result.json  written atomically when the cell finished: the cell is done
    OUT/cells/<cell>/error.json   the last failure (the cell runs again next time)
    OUT/report.md, report.json, cells.csv, figures/*.png

A cell is done when its ``result.json`` exists and names the digest of the same cell spec, so
re-running a sweep skips finished cells, re-runs failed or interrupted ones, and re-runs a cell
whose inputs changed (a policy or profile edited, a parameter changed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coimprove.ablate.cells import CellResult
from coimprove.ablate.executors import Executor, LocalExecutor
from coimprove.ablate.report import SweepReport, build_report, write_atomic
from coimprove.ablate.spec import CellSpec, SweepSpec
from coimprove.errors import SweepError

__all__ = ["RESULT", "SweepOutcome", "cell_dir", "finished_result", "run_sweep"]

RESULT = "result.json"
ERROR = "error.json"


@dataclass
class SweepOutcome:
    """What one invocation of a sweep did."""

    spec: SweepSpec
    out: Path
    results: list[CellResult]
    """Every finished cell (run now or earlier), in spec order."""
    failed: list[CellResult] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    report: SweepReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def cell_dir(out: Path, cell: CellSpec) -> Path:
    """The folder of `cell` under the sweep's output folder."""
    return out / "cells" / cell.key


def finished_result(out: Path, cell: CellSpec) -> CellResult | None:
    """The cell's stored result if it finished with exactly this spec, else None."""
    path = cell_dir(out, cell) / RESULT
    if not path.is_file():
        return None
    try:
        result = CellResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError, ValueError):
        return None  # unreadable: run it again
    return result if result.ok and result.digest == cell.digest else None


def _check_keys(cells: Sequence[CellSpec]) -> None:
    seen: dict[str, CellSpec] = {}
    for cell in cells:
        other = seen.get(cell.key)
        if other is not None:
            raise SweepError(
                f"two cells share the folder name {cell.key!r} (models {other.model!r} and "
                f"{cell.model!r}?); give them names that differ in letters or digits"
            )
        seen[cell.key] = cell


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells · {task.fields[gates]:,} decisions · {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    executor: Executor | None = None,
    workers: int = 2,
    progress: bool = True,
    console: Console | None = None,
    report: bool = True,
) -> SweepOutcome:
    """Run every unfinished cell of `spec` into `out` and (re)write the report.

    `executor` defaults to a pool of `workers` local processes. Failed cells are reported, not
    raised: check `SweepOutcome.ok`.
    """
    began = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    cells = spec.cells()
    _check_keys(cells)
    write_atomic(folder / "spec.json", json.dumps(spec.model_dump(mode="json"), indent=1))
    finished: dict[str, CellResult] = {}
    todo: list[CellSpec] = []
    for cell in cells:
        done = finished_result(folder, cell)
        if done is None:
            todo.append(cell)
        else:
            finished[cell.key] = done
    skipped = len(finished)
    failed: list[CellResult] = []
    own = executor is None
    runner: Executor = executor if executor is not None else LocalExecutor(workers)
    gates = sum(r.decisions for r in finished.values())
    try:
        with _progress(console, progress) as bar:
            task = bar.add_task(
                spec.name, total=len(cells), completed=skipped, gates=gates, failed=0
            )
            jobs = [(cell, cell_dir(folder, cell)) for cell in todo]
            for cell, data in runner.run(jobs):
                result = CellResult.model_validate(data)
                where = cell_dir(folder, cell)
                if result.ok:
                    write_atomic(where / RESULT, result.model_dump_json())
                    (where / ERROR).unlink(missing_ok=True)
                    finished[cell.key] = result
                    gates += result.decisions
                else:
                    write_atomic(where / ERROR, result.model_dump_json(indent=1))
                    failed.append(result)
                bar.update(task, advance=1, gates=gates, failed=len(failed))
    finally:
        if own:
            runner.close()
    order = {c.key: i for i, c in enumerate(cells)}
    results = sorted(finished.values(), key=lambda r: order[r.key])
    outcome = SweepOutcome(
        spec=spec,
        out=folder,
        results=results,
        failed=failed,
        ran=len(todo),
        skipped=skipped,
    )
    if report:
        outcome.report = build_report(spec, results, failed, folder)
    outcome.wall_s = time.perf_counter() - began
    return outcome
