"""The queue of pending gates: a DataTable keyed by gate id that never moves under the cursor.

Live updates are applied as deltas: new gates are appended (counted as "new", not sorted in),
changed gates update their cells, closed gates are removed, except the one under the cursor,
which stays, marked, until the reviewer moves away. Sorting and filtering are user actions
that rebuild the rows and put the cursor back on the same gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.markup import escape
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, Row, RowDoesNotExist, RowKey

from coimprove.gates import GateRecord
from coimprove.tui.format import RISK_ORDER, age, needs, risk_text

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("risk", "risk", 8),
    ("kind", "kind", 10),
    ("title", "title", 26),
    ("needs", "needs", 11),
    ("age", "age", 4),
    ("gate", "gate", 12),
    ("run", "run", 15),
    ("graph", "graph", 12),
)
SORTS: tuple[str, ...] = ("age", "risk", "kind", "run", "graph", "title")


def _sort_key(column: str) -> Callable[[GateRecord], Any]:
    keys: dict[str, Callable[[GateRecord], Any]] = {
        "age": lambda r: (r.opened.at, r.opened.seq),
        "risk": lambda r: (-RISK_ORDER.get(r.proposal.risk, 0), r.opened.seq),
        "kind": lambda r: (r.proposal.kind, r.opened.seq),
        "run": lambda r: (r.run_id, r.opened.seq),
        "graph": lambda r: (r.request.graph, r.request.gate, r.opened.seq),
        "title": lambda r: (r.proposal.title.lower(), r.opened.seq),
        "needs": lambda r: (needs(r), r.opened.seq),
        "gate": lambda r: (r.request.gate, r.opened.seq),
    }
    return keys[column]


def matches(record: GateRecord, text: str) -> bool:
    """Whether a gate matches a filter: every word appears in one of its fields."""
    hay = " ".join(
        (
            record.gate_id,
            record.request.graph,
            record.proposal.kind,
            record.proposal.risk,
            record.proposal.title,
            needs(record),
        )
    ).lower()
    return all(word in hay for word in text.lower().split())


class QueueTable(DataTable[Any]):
    """Pending gates, one row per gate id."""

    DEFAULT_CSS = """
    QueueTable { height: 1fr; }
    """

    def __init__(self, *, now: Callable[[], float], reviewer: str = "", **kwargs: Any) -> None:
        self._versions: dict[RowKey, int] = {}
        self._version_counter = 0
        self._stripes: dict[RowKey, int] = {}
        self._next_stripe = 0
        # before DataTable's __init__, whose watchers clear the caches
        self._cells_cache: LRUCache[tuple[Any, ...], list[list[Segment]]] = LRUCache(4000)
        self._strips_cache: LRUCache[tuple[Any, ...], Strip] = LRUCache(1000)
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._now = now
        self.reviewer = reviewer
        self.records: dict[str, GateRecord] = {}
        self.closed: dict[str, GateRecord] = {}
        self.filter_text = ""
        self.only_mine = False
        self.mine: Callable[[GateRecord], bool] = lambda record: True
        """Whether the reviewer may decide a gate (the app sets it; used by `only_mine`)."""
        self.contents: dict[str, str] = {}
        """What each gate's detail holds (from the index; the records are light)."""
        self.pending: dict[str, str] = {}
        """Gates whose decision (verdict) is being written."""
        self.sort_column = "age"
        self.sort_reverse = False
        self.new_count = 0
        self.dark = True
        self._user_moved = False
        self._ages: dict[str, str] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    # -- DataTable's O(rows) paths, made cheap -------------------------------------------------
    # Every change to the table (a removed row, an updated cell) bumps DataTable's update
    # count, and the next render rebuilds the row order and line offsets for every row;
    # `remove_row` also re-inserts every row location one by one. With thousands of gates
    # these cost tens of milliseconds per change. The overrides below compute the same
    # results with plain dict/list comprehensions (tests/tui/test_queue.py checks them
    # against DataTable's own implementation).

    @property
    def ordered_rows(self) -> list[Row]:
        """The rows in display order (as `DataTable.ordered_rows`, in one comprehension)."""
        cache_key = (len(self.rows), self._update_count)
        cached: list[Row] | None = self._ordered_row_cache.get(cache_key)
        if cached is None:
            at = self._row_locations._reverse
            rows = self.rows
            cached = [rows[at[i]] for i in range(len(rows))]
            self._ordered_row_cache[cache_key] = cached
        return cached

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        cached: list[tuple[RowKey, int]] | None = self._offset_cache.get(self._update_count)
        if cached is None:
            cached = [(row.key, y) for row in self.ordered_rows for y in range(row.height)]
            self._offset_cache[self._update_count] = cached
        return cached

    # Every row is one line high (`add_row` refuses others), so the row at line y is the row
    # at index y: the lookups below are O(1) where DataTable's sum or list every row.

    @property
    def _total_row_height(self) -> int:
        return len(self.rows)

    def _get_offsets(self, y: int) -> tuple[RowKey, int]:
        if self.show_header:
            if y < self.header_height:
                return self._header_row_key, y
            y -= self.header_height
        key = self._row_locations._reverse.get(y)
        if key is None:
            raise LookupError(f"Y coord {y!r} is greater than total height")
        return key, 0

    def _row_y(self, row_index: int) -> int:
        return row_index + (self.header_height if self.show_header else 0)

    def _get_cell_region(self, coordinate: Coordinate) -> Region:
        if not self.is_valid_coordinate(coordinate):
            return Region(0, 0, 0, 0)
        row_index, column_index = coordinate
        x = (
            sum(c.get_render_width(self) for c in self.ordered_columns[:column_index])
            + self._row_label_column_width
        )
        width = self.ordered_columns[column_index].get_render_width(self)
        return Region(x, self._row_y(row_index), width, 1)

    def _get_row_region(self, row_index: int) -> Region:
        if not self.is_valid_row_index(row_index):
            return Region(0, 0, 0, 0)
        width = (
            sum(c.get_render_width(self) for c in self.columns.values())
            + self._row_label_column_width
        )
        return Region(0, self._row_y(row_index), max(self.size.width, width), 1)

    def remove_row(self, row_key: RowKey | str) -> None:
        """Remove a row (as `DataTable.remove_row`, re-indexing the rows in one pass)."""
        if isinstance(row_key, str):
            row_key = RowKey(row_key)
        if row_key not in self._row_locations:
            raise RowDoesNotExist(f"Row key {row_key!r} is not valid.")
        self._require_update_dimensions = True
        self.check_idle()
        gone = self._row_locations.get(row_key)
        assert gone is not None
        forward, at = self._row_locations._forward, self._row_locations._reverse
        last = len(forward) - 1
        for index in range(gone, last):  # shift the rows below up by one, in place
            key = at[index + 1]
            at[index] = key
            forward[key] = index
        del at[last]
        del forward[row_key]
        for column_key in self._data.get(row_key, {}):
            self._updated_cells.discard(CellKey(row_key, column_key))
        del self.rows[row_key]
        del self._data[row_key]
        self._versions.pop(row_key, None)
        self._stripes.pop(row_key, None)
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.refresh()  # the table's own size is fixed by CSS: no need to lay out the screen

    # Every change also invalidates DataTable's rendered cells (their cache key holds the
    # table's update count), so a decision or a live update re-renders every visible cell
    # through Rich. `_render_cell` below caches a body cell by its row's content version
    # instead: a row is re-rendered only when its own cells change. The row index, which
    # DataTable bakes into each cell's style meta for mouse clicks, is applied after the
    # cache, and the zebra stripe of a row is fixed when it is added, so removing a row
    # does not restyle (and re-render) every row below it.

    def add_row(
        self,
        *cells: Any,
        height: int | None = 1,
        key: str | None = None,
        label: Any = None,
    ) -> RowKey:
        if height != 1:
            raise ValueError("queue rows are one line high")
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._bump(row_key)
        self._stripes[row_key] = self._next_stripe
        self._next_stripe ^= 1
        return row_key

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: Any,
        value: Any,
        *,
        update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        self._bump(RowKey(row_key) if isinstance(row_key, str) else row_key)

    def clear(self, columns: bool = False) -> QueueTable:
        super().clear(columns)
        self._versions.clear()
        self._stripes.clear()
        self._next_stripe = 0
        return self

    def _bump(self, row_key: RowKey) -> None:
        self._version_counter += 1
        self._versions[row_key] = self._version_counter

    def _clear_caches(self) -> None:
        super()._clear_caches()  # ours hold every input in their keys: they stay

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        if row_index < self.fixed_rows or not self.zebra_stripes:
            return super()._get_row_style(row_index, base_style)
        key = self._row_locations.get_key(row_index)
        stripe = row_index % 2 if key is None else self._stripes.get(key, row_index % 2)
        name = "datatable--odd-row" if stripe else "datatable--even-row"
        return self.get_component_styles(name).rich_style

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """One line of the table, cached by what it shows (row, content version, position,
        cursor and hover on it, styles), so repainting an unchanged table after a focus
        change or a relayout costs lookups, not renders."""
        try:
            row_key, _ = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        if row_key is self._header_row_key:
            return super()._render_line(y, x1, x2, base_style)
        row_index = y - (self.header_height if self.show_header else 0)
        key = (
            row_key,
            self._versions.get(row_key, 0),
            row_index,
            self._stripes.get(row_key),
            x1,
            x2,
            self.size.width,
            self.cursor_coordinate.row == row_index,
            self.hover_coordinate.row == row_index,
            base_style,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.app.theme,
        )
        strip = self._strips_cache.get(key)
        if strip is None:
            strip = self._strips_cache[key] = super()._render_line(y, x1, x2, base_style)
        return strip

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        if row_index < max(0, self.fixed_rows) or column_index < max(0, self.fixed_columns):
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        if row_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        # Everything the rendered cell depends on, styles included, so a restyle (focus,
        # theme) needs no cache clearing: it simply asks for other keys.
        key = (
            row_key,
            column_index,
            base_style,
            component_style,
            post_style,
            width,
            self._versions.get(row_key, 0),
        )
        lines: list[list[Segment]] | None = self._cells_cache.get(key)
        if lines is None:
            _, cells = self._get_row_renderables(row_index)
            options = self.app.console_options.update_dimensions(width, self.rows[row_key].height)
            if self.rows[row_key].height == 1:
                options = options.update(no_wrap=True)
            lines = self.app.console.render_lines(
                Styled(
                    Padding(cells[column_index], (0, self.cell_padding)),
                    pre_style=base_style + component_style,
                    post_style=post_style,
                ),
                options,
            )
            self._cells_cache[key] = lines
        meta = Style.from_meta({"row": row_index, "column": column_index})
        return [list(Segment.apply_style(line, post_style=meta)) for line in lines]

    # -- who moved the cursor -----------------------------------------------------------------

    def take_user_move(self) -> bool:
        """Whether the last cursor move came from the reviewer (and forget it)."""
        moved, self._user_moved = self._user_moved, False
        return moved

    def mark_user_move(self) -> None:
        self._user_moved = True

    covered_by: Widget | None = None
    """The detail view while it is drawn over the queue: the queue keeps the focus (moving it
    would restyle the table) and its keys scroll the detail instead of moving the cursor."""

    on_move: Callable[[], None] | None = None
    """Called right after the reviewer moved the cursor, in the same keypress (before the
    `RowHighlighted` message arrives): the app shows the new row's summary in the same frame."""

    def _moved(self) -> None:
        if self.on_move is not None:
            self.on_move()

    def _scroll_cover(self, action: str) -> bool:
        view = self.covered_by
        if view is None:
            return False
        getattr(view, f"action_{action}")()
        return True

    def action_select_cursor(self) -> None:
        if self.covered_by is None:  # Enter on the detail does nothing (never a decision)
            super().action_select_cursor()

    def action_cursor_up(self) -> None:
        if not self._scroll_cover("scroll_up"):
            self._user_moved = True
            super().action_cursor_up()
            self._moved()

    def action_cursor_down(self) -> None:
        if not self._scroll_cover("scroll_down"):
            self._user_moved = True
            super().action_cursor_down()
            self._moved()

    def action_cursor_left(self) -> None:
        if self.covered_by is None:
            super().action_cursor_left()

    def action_cursor_right(self) -> None:
        if self.covered_by is None:
            super().action_cursor_right()

    def action_page_up(self) -> None:
        if not self._scroll_cover("page_up"):
            self._user_moved = True
            super().action_page_up()
            self._moved()

    def action_page_down(self) -> None:
        if not self._scroll_cover("page_down"):
            self._user_moved = True
            super().action_page_down()
            self._moved()

    def action_scroll_top(self) -> None:
        if not self._scroll_cover("scroll_home"):
            self._user_moved = True
            super().action_scroll_top()
            self._moved()

    def action_scroll_bottom(self) -> None:
        if not self._scroll_cover("scroll_end"):
            self._user_moved = True
            super().action_scroll_bottom()
            self._moved()

    def action_scroll_home(self) -> None:
        if not self._scroll_cover("scroll_home"):
            super().action_scroll_home()

    def action_scroll_end(self) -> None:
        if not self._scroll_cover("scroll_end"):
            super().action_scroll_end()

    async def _on_click(self, event: events.Click) -> None:
        self._user_moved = True
        await super()._on_click(event)

    # -- rows ----------------------------------------------------------------------------------

    def current_key(self) -> str | None:
        """The gate id under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # the cursor is out of range while rows change
            return None
        return None if key.value is None else str(key.value)

    def _cells(self, record: GateRecord) -> list[Any]:
        closed = record.gate_id in self.closed
        status: str | Text = needs(record)
        if record.gate_id in self.pending:
            status = Text(f"{self.pending[record.gate_id]}…", style="italic")
        elif closed:
            status = Text("decided elsewhere", style="italic")
        elif self.reviewer in record.approvers():
            status = Text(f"{status} ✓you", style="italic")
        # DataTable reads str cells as Rich markup: escape what agents wrote, or a title
        # like "[/] fix" would fail to render (and "[red]" would restyle the row).
        return [
            risk_text(record.proposal.risk, self.dark),
            escape(record.proposal.kind),
            escape(record.proposal.title),
            status,
            self._age(record),
            escape(f"{record.request.gate}#{record.request.round}"),
            escape(record.run_id),
            escape(record.request.graph),
        ]

    def _age(self, record: GateRecord) -> str:
        text = self._ages[record.gate_id] = age(self._now() - record.opened.at)
        return text

    def _visible(self, records: Iterable[GateRecord]) -> list[GateRecord]:
        return [
            r
            for r in records
            if (not self.filter_text or matches(r, self.filter_text))
            and (not self.only_mine or self.mine(r))
        ]

    def _keep_cursor(self, key: str | None) -> None:
        if key is None:
            return
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, scroll=False)

    def rebuild(self, keep: str | None = None) -> None:
        """Re-sort and re-filter every row; the cursor stays on `keep` (default: current)."""
        keep = keep if keep is not None else self.current_key()
        ordered = sorted(
            self._visible(self.records.values()),
            key=_sort_key(self.sort_column),
            reverse=self.sort_reverse,
        )
        self.clear()
        for record in ordered:
            self.add_row(*self._cells(record), key=record.gate_id)
        self.new_count = 0
        self._keep_cursor(keep)

    def add(self, records: Iterable[GateRecord]) -> int:
        """Append newly opened gates at the end (no re-sorting); returns how many show."""
        shown = 0
        for record in records:
            if record.gate_id in self.records:
                continue
            self.records[record.gate_id] = record
            if self._visible([record]):
                self.add_row(*self._cells(record), key=record.gate_id)
                shown += 1
        return shown

    def update(self, records: Iterable[GateRecord]) -> None:
        """Refresh the cells of gates that changed but are still open."""
        for record in records:
            if record.gate_id not in self.records:
                continue
            self.records[record.gate_id] = record
            self._set_cells(record)

    def _set_cells(self, record: GateRecord) -> None:
        if record.gate_id not in self.rows:
            return
        for (column, _, _), value in zip(COLUMNS, self._cells(record), strict=True):
            self.update_cell(record.gate_id, column, value)

    def mark_pending(self, gate_id: str, verdict: str) -> None:
        """Show that a decision on `gate_id` is being recorded."""
        self.pending[gate_id] = verdict.replace("_", " ")
        if gate_id in self.records:
            self._set_cells(self.records[gate_id])

    def unmark_pending(self, gate_id: str) -> None:
        if self.pending.pop(gate_id, None) is not None and gate_id in self.records:
            self._set_cells(self.records[gate_id])

    def close(self, records: Iterable[GateRecord], *, keep: str | None) -> None:
        """Gates resolved elsewhere: remove them, except `keep` (under the cursor), marked."""
        current = self.current_key()
        for record in records:
            if record.gate_id not in self.records:
                continue
            if record.gate_id == keep:
                self.closed[record.gate_id] = record
                self.records[record.gate_id] = record
                self._set_cells(record)
            else:
                self.discard(record.gate_id, keep_cursor=False)
        self._keep_cursor(current)

    def discard(self, gate_id: str, *, keep_cursor: bool = True) -> None:
        """Remove one gate's row (the cursor stays on its gate unless that one goes)."""
        current = self.current_key()
        self.records.pop(gate_id, None)
        self.closed.pop(gate_id, None)
        self.pending.pop(gate_id, None)
        self.contents.pop(gate_id, None)
        self._ages.pop(gate_id, None)
        if gate_id in self.rows:
            self.remove_row(gate_id)
        if keep_cursor and current != gate_id:
            self._keep_cursor(current)

    def drop_closed(self, except_key: str | None) -> None:
        """Remove rows marked as decided elsewhere once the cursor has left them."""
        for gate_id in [g for g in self.closed if g != except_key]:
            self.discard(gate_id)

    def tick(self) -> None:
        """Update the age column (only the cells whose text changed)."""
        now = self._now()
        for gate_id, record in self.records.items():
            if gate_id in self.rows:
                text = age(now - record.opened.at)
                if self._ages.get(gate_id) != text:
                    self._ages[gate_id] = text
                    self.update_cell(gate_id, "age", text)

    def restyle(self, dark: bool) -> None:
        """Re-colour the risk column for a light or dark theme."""
        self.dark = dark
        for gate_id, record in self.records.items():
            if gate_id in self.rows:
                self.update_cell(gate_id, "risk", risk_text(record.proposal.risk, dark))
