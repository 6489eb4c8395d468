"""``coimprove ablate``: run a sweep (resumable, in parallel) or check measurement validity."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from coimprove.errors import SweepError

if TYPE_CHECKING:
    from coimprove.ablate.validate import ValidityReport

__all__ = ["EXECUTOR_NAMES", "VALIDATION_PROFILE_NAMES", "ablate"]

# Kept here so `coimprove --help` does not import the engine (tests check they stay in sync).
EXECUTOR_NAMES = ("local", "inline", "ray")
VALIDATION_PROFILE_NAMES = ("middling", "sloppy", "steady")

_out = Console()
_err = Console(stderr=True)


def _validity_table(report: ValidityReport) -> Table:
    table = Table(
        "profile",
        "measure",
        "configured",
        "measured",
        "±",
        "n",
        "",
        title=f"measurement validity over {report.gates:,} gates",
    )
    for c in report.checks:
        table.add_row(
            c.profile,
            c.measure,
            f"{c.expected:.4f}",
            "–" if c.measured is None else f"{c.measured:.4f}",
            f"{c.tolerance:.4f}",
            f"{c.n:,}",
            "[green]ok[/]" if c.ok else "[red]FAIL[/]",
        )
    return table


def ablate(
    spec: Annotated[
        Path | None, typer.Argument(help="Sweep spec (YAML); not needed with --validate.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default ablations/<sweep name>)."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Cells run at once.")] = 2,
    executor: Annotated[
        str, typer.Option(help=f"Where cells run: {', '.join(EXECUTOR_NAMES)}.")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (auto, ray://host:10001); default a local Ray."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--validate", help="Check that the measures recover known reviewer parameters."
        ),
    ] = False,
    gates: Annotated[int, typer.Option(min=100, help="--validate: gates per profile.")] = 10_000,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help=f"--validate: stationary profile(s): {', '.join(VALIDATION_PROFILE_NAMES)} "
            "(default steady and middling)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Sweep policies × reviewer panels × seeds headless, in parallel; write the report.

    Re-running skips finished cells. --validate checks the measures against known reviewers.
    """
    from coimprove.ablate.executors import make_executor
    from coimprove.ablate.spec import load_spec
    from coimprove.ablate.sweep import run_sweep
    from coimprove.ablate.validate import validate

    if executor not in EXECUTOR_NAMES:
        raise SweepError(f"--executor must be one of {', '.join(EXECUTOR_NAMES)}, not {executor!r}")
    if address is not None and executor != "ray":
        raise SweepError("--address is for --executor ray")
    show = progress and not as_json and _err.is_terminal
    runner = make_executor(executor, workers=workers, address=address)
    try:
        if check:
            if spec is not None:
                raise SweepError("--validate runs its own sweep; drop the spec argument")
            unknown = [p for p in profile or [] if p not in VALIDATION_PROFILE_NAMES]
            if unknown:
                raise SweepError(
                    f"--profile {unknown[0]!r} is not a validation profile "
                    f"(choose from {', '.join(VALIDATION_PROFILE_NAMES)})"
                )
            report = validate(
                gates=gates,
                profiles=profile,
                out=out,
                executor=runner,
                progress=show,
                console=_err,
            )
            if as_json:
                print(report.model_dump_json())
            else:
                _out.print(_validity_table(report))
                _out.print(f"results in {report.out}")
            if not report.ok:
                raise SweepError("measurement validity FAILED (see the table above)")
            return
        if spec is None:
            raise SweepError("give a sweep spec (YAML), or --validate")
        sweep = load_spec(spec)
        folder = out or Path("ablations") / sweep.name
        outcome = run_sweep(sweep, folder, executor=runner, progress=show, console=_err)
    finally:
        runner.close()
    rep = outcome.report
    if as_json:
        print(
            json.dumps(
                {
                    "out": str(folder),
                    "ran": outcome.ran,
                    "skipped": outcome.skipped,
                    "failed": [{"key": f.key, "error": f.error} for f in outcome.failed],
                    "wall_s": round(outcome.wall_s, 3),
                    "gates": rep.gates if rep else 0,
                    "report": str(folder / "report.md"),
                }
            )
        )
    else:
        _summary(outcome.ran, outcome.skipped, folder, rep)
    if outcome.failed:
        first = outcome.failed[0]
        raise SweepError(
            f"{len(outcome.failed)} cell(s) failed (first: {first.key}: {first.error}); "
            "re-run the same command to retry them"
        )


def _summary(ran: int, skipped: int, folder: Path, rep: object) -> None:
    from coimprove.ablate.report import SweepReport

    if not isinstance(rep, SweepReport):
        return
    table = Table(
        "arm",
        "decisions",
        "flaws /100",
        "rubber-stamp",
        "canary catch",
        "d′ sound-only",
        "d′ lower bound",
        title=f"sweep {rep.sweep}: {rep.gates:,} gates in {rep.cells_ok} cells",
    )
    for m in rep.arms:
        table.add_row(
            m.label,
            f"{m.decisions:,}",
            m.flaws_shipped_per_100.fmt(1),
            m.rubber_stamp_rate.fmt(1, pct=True),
            m.canary_catch_rate.fmt(1, pct=True),
            m.d_prime_sound.fmt(2),
            m.d_prime_lower_bound.fmt(2),
        )
    _out.print(table)
    _out.print(f"ran {ran} cell(s), {skipped} already done · report: {folder / 'report.md'}")
    sys.stdout.flush()
