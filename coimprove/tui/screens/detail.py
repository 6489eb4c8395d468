"""The detail screen: the whole proposal (payload, diff, spec, results, earlier rounds)."""

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

    def __init__(self, gate_id: str, first: RenderableType) -> None:
        super().__init__()
        self.gate_id = gate_id
        self._first = first

    def compose(self) -> ComposeResult:
        yield Static(f"detail · {self.gate_id}", id="status")
        with VerticalScroll(id="detail-scroll"):
            yield Static(self._first, id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()

    def show(self, content: RenderableType) -> None:
        self.query_one("#detail", Static).update(content)
