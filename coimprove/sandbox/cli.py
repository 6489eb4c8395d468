"""`coimprove sandbox …`: build images locally, reap leaked containers, verify this machine."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from coimprove.errors import CoimproveError
from coimprove.sandbox.conformance import CHECK_NAMES, CheckResult, docker_target, run_conformance
from coimprove.sandbox.docker import reap
from coimprove.sandbox.engine import connect
from coimprove.sandbox.errors import ImageMissingError
from coimprove.sandbox.images import build_image, image_tag, list_sandboxes, resolve_image

sandbox_app = typer.Typer(
    help="Build sandbox images (no registry needed), reap leaked containers, run the "
    "conformance suite.",
    no_args_is_help=True,
)

out = Console()
err = Console(stderr=True)


def _fail(error: CoimproveError) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}", highlight=False)
    return typer.Exit(1)


@sandbox_app.command("build")
def build(
    names: Annotated[
        list[str] | None, typer.Argument(help="Sandbox names or folders (default: all built-in).")
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(help="Debian mirror URL (default: from this machine's apt sources)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the image is up to date.")] = False,
) -> None:
    """Build sandbox images locally: debootstrap a Debian base, docker import, docker build."""
    try:
        targets = names or [s.name for s in list_sandboxes()]
        if not targets:
            raise CoimproveError("no built-in sandboxes found; name a sandbox folder")
        client = connect(timeout=600)
        for name in targets:
            built = build_image(
                name,
                client=client,
                mirror=mirror,
                force=force,
                progress=lambda msg: err.print(f"  {msg}", highlight=False),
            )
            how = "up to date" if built.reused else f"built in {built.seconds:.0f}s"
            out.print(f"{built.name}: {built.tag} ({how})", highlight=False)
    except CoimproveError as e:
        raise _fail(e) from e


@sandbox_app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the built-in sandboxes, their image tags and whether they are built."""
    try:
        client = connect()
        rows: list[tuple[str, str, bool, str]] = []
        for source in list_sandboxes():
            try:
                tag, built = resolve_image(client, source.directory), True
            except ImageMissingError:
                tag, built = image_tag(source), False
            rows.append((source.name, tag, built, str(source.directory)))
    except CoimproveError as e:
        raise _fail(e) from e
    if json_out:
        keys = ("name", "tag", "built", "directory")
        out.print_json(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
        return
    table = Table("sandbox", "image", "built", "folder")
    for name, tag, built, directory in rows:
        table.add_row(name, tag, "yes" if built else "[red]no[/red]", directory)
    out.print(table)


@sandbox_app.command("prune")
def prune(
    all_: Annotated[
        bool, typer.Option("--all", help="Remove every coimprove sandbox container, even live.")
    ] = False,
    run: Annotated[str | None, typer.Option("--run", help="Remove one run's containers.")] = None,
) -> None:
    """Remove leaked sandbox containers (owner process gone, or stopped)."""
    try:
        removed = reap(connect(), everything=all_, run_id=run)
    except CoimproveError as e:
        raise _fail(e) from e
    out.print(
        f"removed {len(removed)} container(s)" + (": " + ", ".join(removed) if removed else "")
    )


@sandbox_app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="Sandbox to check (needs python3).")] = "python",
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only these checks: {', '.join(CHECK_NAMES)}."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run the sandbox conformance and escape suite against this machine's Docker engine."""
    try:
        client = connect()
        resolve_image(client, name)
        target = docker_target(name, client=client)

        def progress(result: CheckResult) -> None:
            if not json_out:
                mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
                err.print(f"  {mark} {result.name} ({result.seconds:.1f}s)")

        results = asyncio.run(run_conformance(target, only=only, on_result=progress))
    except CoimproveError as e:
        raise _fail(e) from e
    if json_out:
        out.print_json(json.dumps([r.model_dump() for r in results]))
    else:
        table = Table("check", "result", "seconds", "detail", title=f"sandbox check: {name}")
        for r in results:
            table.add_row(
                r.name,
                "[green]pass[/green]" if r.passed else "[red]FAIL[/red]",
                f"{r.seconds:.1f}",
                r.detail,
            )
        out.print(table)
    failed = [r.name for r in results if not r.passed]
    if failed:
        err.print(f"[red]{len(failed)} check(s) failed:[/red] {', '.join(failed)}")
        raise typer.Exit(1)
