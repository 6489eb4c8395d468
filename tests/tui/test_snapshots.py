"""Screenshots of the queue, the detail view with a diff, and the edit dialog.

Fixed terminal sizes, fixed run ids, a frozen clock and no animation, so they only change
when the screen does. Accept a change with ``--snapshot-update`` after looking at the
report of the differences.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import TextArea

from coimprove import Runner, SimClock
from coimprove.reviewers.clock import FixedClock
from coimprove.tui import ReviewApp
from tests.tui.helpers import settle
from tests.tui.review_graph import build

START = 1_000_000.0


def _ledger(db: Path) -> None:
    async def fill() -> None:
        async with Runner(db, clock=SimClock(START)) as runner:
            await runner.start(build(), run_id="r-0000000000a1")
            await runner.start(build("risky", risk="high"), run_id="r-0000000000b2")
            await runner.start(build("deploy", risk="critical"), run_id="r-0000000000c3")

    asyncio.run(fill())


def _app(db: Path, **kw: Any) -> ReviewApp:
    app = ReviewApp(
        db,
        reviewer="alice",
        clock=FixedClock(START + 125),
        guard_s=0,
        rest_s=0,
        poll_s=0,
        **kw,
    )
    app.animation_level = "none"
    return app


def test_queue_at_80x24(tmp_path: Path, snap_compare: Any) -> None:
    db = tmp_path / "ledger.db"
    _ledger(db)
    assert snap_compare(_app(db, stats=False), terminal_size=(80, 24), run_before=settle)


def test_detail_with_a_diff_in_the_light_theme(tmp_path: Path, snap_compare: Any) -> None:
    db = tmp_path / "ledger.db"
    _ledger(db)

    async def open_detail(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)

    app = _app(db, theme="light", stats=False)
    assert snap_compare(app, terminal_size=(100, 32), run_before=open_detail)


def test_edit_dialog_with_stats_panel(tmp_path: Path, snap_compare: Any) -> None:
    db = tmp_path / "ledger.db"
    _ledger(db)

    async def open_edit(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        pilot.app.screen.query_one(TextArea).cursor_blink = False
        await pilot.pause()

    assert snap_compare(_app(db, stats=True), terminal_size=(120, 32), run_before=open_edit)
