"""QueueTable: its faster DataTable internals agree with DataTable's own; cells are not markup."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from coimprove import Runner
from coimprove.tui import ReviewApp
from coimprove.tui.widgets.queue import COLUMNS, QueueTable
from tests.tui.helpers import settle
from tests.tui.review_graph import build


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield QueueTable(now=lambda: 0.0, id="fast")
        yield DataTable(id="reference")


def _state(table: DataTable[Any]) -> tuple[Any, ...]:
    return (
        [row.key.value for row in table.ordered_rows],
        [(key.value, y) for key, y in table._y_offsets],
        {k.value: i for k, i in table._row_locations._forward.items()},
        {i: k.value for i, k in table._row_locations._reverse.items()},
        table.row_count,
        table.cursor_row,
    )


async def test_row_removal_order_and_offsets_match_datatable() -> None:
    app = Tables()
    async with app.run_test(size=(120, 40)) as pilot:
        fast = app.query_one("#fast", QueueTable)
        reference = app.query_one("#reference", DataTable)
        for key, label, width in COLUMNS:
            reference.add_column(label, key=key, width=width)
        keys = [f"g{i:03d}" for i in range(60)]
        for table in (fast, reference):
            for key in keys:
                table.add_row(*([key] * len(fast.columns)), key=key)
            table.move_cursor(row=30)
        await pilot.pause()
        assert _state(fast) == _state(reference)
        rng = random.Random(6)
        order = keys[:]
        rng.shuffle(order)
        for key in [*order[:20], keys[-1], keys[0]]:  # middle rows, the last, the first
            if key not in fast.rows:
                continue
            fast.remove_row(key)
            reference.remove_row(key)
            await pilot.pause()
            assert _state(fast) == _state(reference)


async def test_titles_are_shown_as_written_not_read_as_markup(
    runner: Runner, make_app: Callable[..., ReviewApp]
) -> None:
    await runner.start(build())
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        table = app.queue
        ((gate_id, record),) = table.records.items()
        record.proposal = record.proposal.model_copy(update={"title": "[/] [red]x[/red]"})
        table.update([record])
        await settle(pilot)  # rendering the row must not raise
        cells = [c.plain if isinstance(c, Text) else c for c in table.get_row(gate_id)]
        assert "[/] [red]x[/red]" in [Text.from_markup(c).plain for c in cells]
