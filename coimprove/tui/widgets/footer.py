"""The key bar: the screen's active keys on one line, redrawn only when they change.

Textual's `Footer` mounts one widget per key and re-creates them whenever the keys change,
which here happens on every switch between the queue and the detail: mounting and styling a
dozen widgets cost more than the rest of that keypress. This bar is one line of text (a
click on a key presses it, as in `Footer`) updated in place without a relayout.
"""

from __future__ import annotations

from collections.abc import Hashable

from rich.style import Style
from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    """The keys the reviewer can press now, with what they do."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    _shown: Hashable = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        keys = tuple(
            (binding.key, self.app.get_key_display(binding), binding.description, enabled)
            for _, binding, enabled, _ in screen.active_bindings.values()
            if binding.show
        )
        if keys == self._shown:
            return
        self._shown = keys
        key_style = Style(bold=True, reverse=True)
        line = Text(no_wrap=True, overflow="ellipsis")
        for key, display, description, enabled in keys:
            click = Style(meta={"@click": f"app.simulate_key({key!r})"})
            dim = Style(dim=not enabled)
            line.append(f" {display} ", key_style + dim + click)
            line.append(f" {description} ", dim + click)
        self.update(line, layout=False)
