"""The detail screen: the whole proposal (payload, diff, spec, results, earlier rounds).

One instance is installed and re-used for every gate (building a screen is the expensive
part of opening it).
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from coimprove.tui.screens.main import DECISION_BINDINGS


class DetailScreen(Screen[None]):
    """Opened with Enter or ``d``; Escape goes back to the queue."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *DECISION_BINDINGS,
        Binding("escape,q", "app.close_detail", "Back"),
        Binding("t", "app.toggle_theme", "Theme"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.gate_id = ""
        self._content: RenderableType = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._sync()

    def on_screen_resume(self) -> None:
        self.query_one("#detail-scroll").focus()

    def set_gate(self, gate_id: str, content: RenderableType) -> None:
        """Show `gate_id` from the top."""
        self.gate_id, self._content = gate_id, content
        if self.is_mounted:
            self._sync()
            self.query_one("#detail-scroll", VerticalScroll).scroll_home(animate=False)

    def show(self, content: RenderableType) -> None:
        """Replace the content (the full detail once its extra data is loaded)."""
        self._content = content
        if self.is_mounted:
            self.query_one("#detail", Static).update(content)

    def _sync(self) -> None:
        self.query_one("#status", Static).update(f"detail · {self.gate_id}")
        self.query_one("#detail", Static).update(self._content)
