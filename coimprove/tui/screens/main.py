"""The main screen: status line, the queue, the summary of the gate under the cursor, stats,
and the detail of that gate (mounted once, drawn over the queue when open).

The detail lives in this screen rather than a screen of its own: switching screens costs
Textual a full restyle and relayout (100+ ms with thousands of rows). Opening it changes no
layout and no focus either: the detail and the queue swap `visibility` (a repaint), and the
queue keeps the focus while its cursor keys scroll the detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from coimprove.tui.widgets.detail_view import DetailView, RenderedDetail
from coimprove.tui.widgets.feedback import FeedbackLog
from coimprove.tui.widgets.footer import KeyBar
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
        Binding("escape", "app.close_detail", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "app.cycle_sort", "Sort"),
        Binding("m", "app.toggle_mine", "Mine"),
        Binding("s", "app.toggle_stats", "Stats"),
        Binding("f", "app.toggle_feedback", "Feedback"),
        Binding("t", "app.toggle_theme", "Theme"),
        Binding("q", "leave", "Quit"),
        Binding("q", "app.close_detail", "Back", show=False),
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
                with Vertical(id="preview"):
                    yield Static("", id="summary")
                yield FeedbackLog(id="feedback")
            yield StatsPanel(self.reviewer, id="stats")
        yield DetailView(id="detail")
        yield Input(placeholder="filter: words that must all appear (Esc clears)", id="filter")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one(DetailView).visible = False
        self._fit_detail()
        self.query_one(FeedbackLog).display = False
        self.query_one(QueueTable).focus()

    @property
    def detail(self) -> DetailView:
        return self.query_one(DetailView)

    @property
    def detail_open(self) -> bool:
        return self.detail.visible

    def show_summary(self, content: RenderableType) -> None:
        """Replace the summary under the queue (a fixed-size area: no relayout)."""
        self.query_one("#summary", Static).update(content, layout=False)

    def show_detail(self, rendered: RenderedDetail) -> None:
        """Show the detail in place of the queue, from the top."""
        view = self.detail
        view.show(rendered)
        if not view.visible:
            self.query_one("#filter", Input).display = False
            view.visible = True
            self.query_one(QueueTable).covered_by = view
            self.refresh_bindings()

    def update_detail(self, rendered: RenderedDetail) -> None:
        """Replace the detail's content (once its extra data is loaded), keeping the scroll."""
        self.detail.show(rendered, home=False)

    def hide_detail(self) -> None:
        """Back to the queue (the filter field shows again if it holds a filter)."""
        view = self.detail
        if not view.visible:
            return
        view.visible = False
        field = self.query_one("#filter", Input)
        field.display = bool(field.value)
        queue = self.query_one(QueueTable)
        queue.covered_by = None
        queue.focus()
        self.refresh_bindings()

    def on_resize(self) -> None:
        self._fit_detail()

    def _fit_detail(self) -> None:
        """The detail covers everything between the status line and the footer."""
        self.detail.styles.height = max(1, self.size.height - 2)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("filter", "leave"):
            return not self.detail_open
        return True

    async def action_leave(self) -> None:
        """Quit the app (``q`` on the queue; on the detail, ``q`` goes back)."""
        await self.app.action_quit()

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

    async def key_escape(self) -> None:
        if self.detail_open:
            await self.app.run_action("app.close_detail")
            return
        field = self.query_one("#filter", Input)
        if field.display:
            self._close_filter(clear=True)

    def _close_filter(self, *, clear: bool) -> None:
        field = self.query_one("#filter", Input)
        if clear and field.value:
            field.value = ""  # Input.Changed rebuilds the table
        field.display = bool(field.value)
        self.query_one(QueueTable).focus()
