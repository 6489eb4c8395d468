"""The main screen: status line, the queue, the summary of the gate under the cursor, stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from coimprove.tui.widgets.queue import QueueTable
from coimprove.tui.widgets.stats import StatsPanel

DECISION_BINDINGS = [
    Binding("a", "app.decide('approve')", "Approve"),
    Binding("r", "app.decide('reject')", "Reject"),
    Binding("c", "app.decide('request_changes')", "Changes"),
    Binding("e", "app.decide('edit')", "Edit"),
    Binding("u", "app.decide('escalate')", "Escalate"),
]


class MainScreen(Screen[None]):
    """Queue on top, summary below, the reviewer's stats on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *DECISION_BINDINGS,
        Binding("d", "app.open_detail", "Detail"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "app.cycle_sort", "Sort"),
        Binding("s", "app.toggle_stats", "Stats"),
        Binding("t", "app.toggle_theme", "Theme"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, reviewer: str, now: Callable[[], float]) -> None:
        super().__init__()
        self.reviewer = reviewer
        self._now = now

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield QueueTable(now=self._now, reviewer=self.reviewer, id="queue")
                with VerticalScroll(id="preview", can_focus=False):
                    yield Static("", id="summary")
            yield StatsPanel(self.reviewer, id="stats")
        yield Input(placeholder="filter: words that must all appear (Esc clears)", id="filter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one(QueueTable).focus()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            table = self.query_one(QueueTable)
            table.filter_text = event.value
            table.mark_user_move()
            table.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter(clear=False)

    def key_escape(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            self._close_filter(clear=True)

    def _close_filter(self, *, clear: bool) -> None:
        field = self.query_one("#filter", Input)
        if clear and field.value:
            field.value = ""  # Input.Changed rebuilds the table
        field.display = bool(field.value)
        self.query_one(QueueTable).focus()
