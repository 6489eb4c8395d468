"""The detail screen body, drawn from lines rendered ahead of time.

A `Static` renders its whole content when it is shown (and once more to measure its height),
in the keypress that opened it. `DetailView` is a Line API widget: the detail is rendered to
strips by `render_detail` — on a worker thread while the reviewer is still reading the summary
— and opening the detail only hands those strips over. Long artifacts stay as styled text
lines and are drawn one line at a time, only where the view shows them.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from coimprove.tui.format import StyledLine

_consoles = threading.local()


def _console(width: int) -> Console:
    """A console per thread, set up as Textual's own (truecolor, no markup in Text)."""
    console: Console | None = getattr(_consoles, "console", None)
    if console is None:
        console = Console(
            file=io.StringIO(),
            force_terminal=True,
            color_system="truecolor",
            highlight=False,
            emoji=False,
            legacy_windows=False,
            safe_box=False,
            width=width,
        )
        _consoles.console = console
    console.width = width
    return console


def _strips(renderable: RenderableType, width: int, style: Style) -> list[Strip]:
    console = _console(width)
    lines = console.render_lines(renderable, console.options.update_width(width), style=style)
    return [Strip(line, width) for line in lines]


def _line_strip(line: StyledLine, width: int, style: Style) -> Strip:
    text, line_style = line
    rendered = Text(text, style=line_style, no_wrap=True, overflow="crop", end="")
    segments = Segment.apply_style(rendered.render(_console(max(width, 1))), style)
    return Strip(list(segments)).crop_extend(0, width, style)


@dataclass
class RenderedDetail:
    """A detail rendered for one width and theme: head strips, artifact lines drawn on
    demand, tail strips."""

    key: object
    width: int
    head: list[Strip]
    lines: list[StyledLine]
    tail: list[Strip]
    style: Style
    complete: bool = False
    """Rendered with everything `load_detail` reads (earlier rounds, results)."""
    _drawn: dict[int, Strip] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return len(self.head) + len(self.lines) + len(self.tail)

    def line(self, y: int) -> Strip:
        """Screen line `y` of the detail (blank past the end)."""
        if y < len(self.head):
            return self.head[y]
        y -= len(self.head)
        if y < len(self.lines):
            strip = self._drawn.get(y)
            if strip is None:
                strip = self._drawn[y] = _line_strip(self.lines[y], self.width, self.style)
            return strip
        y -= len(self.lines)
        if y < len(self.tail):
            return self.tail[y]
        return Strip.blank(self.width, self.style)


def render_detail(
    parts: tuple[RenderableType, list[StyledLine], RenderableType],
    width: int,
    style: Style,
    key: object = None,
    *,
    complete: bool = False,
) -> RenderedDetail:
    """Render the parts of `coimprove.tui.widgets.detail.detail_parts` to strips `width`
    cells wide over the base `style`. Safe on a worker thread (a console per thread)."""
    head, lines, tail = parts
    width = max(width, 1)
    tail_strips = _strips(tail, width, style) if lines else []
    head_strips = _strips(head, width, style)
    return RenderedDetail(key, width, head_strips, lines, tail_strips, style, complete)


class DetailView(ScrollView, can_focus=True):
    """Shows a `RenderedDetail`; scrolls with the keys and the mouse."""

    DEFAULT_CSS = """
    DetailView {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    class WidthChanged(Message):
        """The view is now another width than the detail it shows was rendered at."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rendered: RenderedDetail | None = None

    @property
    def text_width(self) -> int:
        """The width details must be rendered at to fill this view (it spans the screen; while
        hidden it has no region, so the width comes from the screen's)."""
        if self.region.width:
            return max(1, self.scrollable_content_region.width)
        styles = self.styles
        outer = self.screen.size.width
        return max(1, outer - styles.gutter.width - styles.scrollbar_size_vertical)

    def show(self, rendered: RenderedDetail, *, home: bool = True) -> None:
        """Show `rendered` (from the top unless not `home`)."""
        self.rendered = rendered
        self.virtual_size = Size(rendered.width, rendered.height)
        if home:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.rendered is not None and self.rendered.width != self.text_width:
            self.post_message(self.WidthChanged())

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        rendered = self.rendered
        if rendered is None:
            return Strip.blank(width, self.rich_style)
        return rendered.line(y + self.scroll_offset.y).crop_extend(0, width, rendered.style)
