"""Long artifacts (a big diff, a long log) drawn a line at a time, only where visible.

A `Static` renders its whole content whenever it is shown: a 2,000-line diff costs hundreds
of milliseconds before the first line appears. `ArtifactLines` is as tall as its lines but
renders (and caches) only the lines the scroll view actually shows.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from coimprove.tui.format import StyledLine


class ArtifactLines(Widget):
    """Styled lines of text, one screen line each (long lines are cut, not wrapped)."""

    DEFAULT_CSS = """
    ArtifactLines { height: auto; }
    """

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._lines: list[StyledLine] = []
        self._strips: dict[tuple[int, int], Strip] = {}

    @property
    def lines(self) -> list[StyledLine]:
        return self._lines

    def show(self, lines: list[StyledLine]) -> None:
        """Replace the lines (none: the widget is hidden)."""
        self._lines = lines
        self._strips.clear()
        self.display = bool(lines)
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        key = (y, width)
        strip = self._strips.get(key)
        if strip is None:
            text, style = self._lines[y]
            line = Text(text, style=style, no_wrap=True, overflow="crop", end="")
            segments = list(Segment.apply_style(line.render(self.app.console), self.rich_style))
            strip = Strip(segments).crop_extend(0, width, self.rich_style)
            self._strips[key] = strip
        return strip
