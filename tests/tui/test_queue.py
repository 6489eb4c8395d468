"""QueueTable's faster DataTable internals give the same answers as DataTable's own."""

from __future__ import annotations

import random
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from coimprove.tui.widgets.queue import COLUMNS, QueueTable


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
