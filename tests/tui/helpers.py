"""Driving the app under the pilot without timing assumptions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from coimprove import Runner
from coimprove.tui import ReviewApp

Db = Path | str
"""An SQLite ledger file, or a postgresql:// URL (what ``--db`` takes)."""


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until refreshes, detail loads and run resumes started so far have finished."""
    app = pilot.app
    assert isinstance(app, ReviewApp)
    for _ in range(50):
        await app.settled()
        await pilot.pause()
        busy = app._refreshing or app._prerender_due
        if not busy and not any(not w.is_finished for w in app.workers):  # pending counts
            return
    raise AssertionError("the app did not settle")


async def refresh(pilot: Pilot[Any]) -> None:
    """Poll the ledger now (what the interval timer does) and wait for the result."""
    app = pilot.app
    assert isinstance(app, ReviewApp)
    app.poll(force=True)
    await settle(pilot)


def events(runner: Runner, run_id: str, *types: str) -> list[Any]:
    return runner.ledger.events(run_id=run_id, types=list(types) or None)  # type: ignore[arg-type]


def types(runner: Runner, run_id: str) -> list[str]:
    return [e.type for e in runner.ledger.events(run_id=run_id)]


def text(widget: Static) -> str:
    """The plain text a Static shows (its rich renderable rendered 200 columns wide)."""
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def detail_text(app: Any) -> str:
    """The plain text of the detail the review app shows (every line, scrolled or not)."""
    rendered = app.main.detail.rendered
    assert rendered is not None, "no detail was rendered"
    return "\n".join(rendered.line(y).text.rstrip() for y in range(rendered.height))
