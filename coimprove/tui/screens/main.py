"""The main screen: status line, the queue, the summary of the gate under the cursor, stats,
and the detail of that gate (mounted once, shown in place of the queue).

The detail lives in this screen rather than a screen of its own: switching screens costs
Textual a full restyle and relayout (100+ ms with thousands of rows), toggling `display` on
two mounted containers does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Static

from coimprove.tui.format import StyledLine
from coimprove.tui.widgets.feedback import FeedbackLog
from coimprove.tui.widgets.footer import KeyBar
from coimprove.tui.widgets.lines import ArtifactLines
from coimprove.tui.widgets.queue import QueueTable
from coimprove.tui.widgets.stats import StatsPanel

DECISION_BINDINGS = [
    Binding("a", "app.decide('approve')", "Approve"),
    Binding("r", "app.decide('reject')", "Reject"),
    Binding("c", "app.decide('request_changes')", "Changes"),
    Binding("e", "app.decide('edit')", "Edit"),
    Binding("u", "app.decide('escalate')", "Escalate"),
]


DetailParts = tuple[RenderableType, list[StyledLine], RenderableType]


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
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail")
            yield ArtifactLines(id="detail-lines")
            yield Static("", id="detail-tail")
        yield Input(placeholder="filter: words that must all appear (Esc clears)", id="filter")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#detail-scroll").display = False
        self.query_one(FeedbackLog).display = False
        self.query_one(QueueTable).focus()

    @property
    def detail_open(self) -> bool:
        return bool(self.query_one("#detail-scroll").display)

    def show_summary(self, content: RenderableType) -> None:
        """Replace the summary under the queue (a fixed-size area: no relayout)."""
        self.query_one("#summary", Static).update(content, layout=False)

    def show_detail(self, content: DetailParts) -> None:
        """Show the detail in place of the queue, from the top."""
        self.update_detail(content)
        scroll = self.query_one("#detail-scroll", VerticalScroll)
        scroll.scroll_home(animate=False, immediate=True)
        if not scroll.display:
            self.query_one("#body").visible = False  # keeps its size: no relayout of the queue
            self.query_one("#filter", Input).display = False
            self._fit_detail()
            scroll.display = True
            scroll.focus()
            self.refresh_bindings()

    def update_detail(self, content: DetailParts) -> None:
        """Replace the detail's content (once its extra data is loaded)."""
        head, lines, tail = content
        self.query_one("#detail", Static).update(head)
        self.query_one(ArtifactLines).show(lines)
        self.query_one("#detail-tail", Static).update(tail)
        self.query_one("#detail-tail").display = bool(lines)  # else everything is in the head

    def hide_detail(self) -> None:
        """Back to the queue (the filter field shows again if it holds a filter)."""
        scroll = self.query_one("#detail-scroll", VerticalScroll)
        if not scroll.display:
            return
        scroll.display = False
        self.query_one("#body").visible = True
        field = self.query_one("#filter", Input)
        field.display = bool(field.value)
        self.query_one(QueueTable).focus()
        self.refresh_bindings()

    def on_resize(self) -> None:
        self._fit_detail()

    def _fit_detail(self) -> None:
        """The detail covers everything between the status line and the footer."""
        self.query_one("#detail-scroll").styles.height = max(1, self.size.height - 2)

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
