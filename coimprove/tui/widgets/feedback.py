"""The feedback log: every feedback item shown to this reviewer in this session, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from coimprove.model import FeedbackItem

_MARK = {True: ("✓", "green"), False: ("✗", "bold red"), None: ("·", "")}


def feedback_line(item: FeedbackItem) -> Text:
    """One item: a mark (✓ right, ✗ a miss or lesson), its kind and its explanation."""
    mark, style = _MARK[False if item.lesson else item.correct]
    line = Text(no_wrap=False)
    line.append(f"{mark} ", style)
    line.append(f"{item.kind:<7} ", "bold")
    line.append(item.explanation, "bold red" if item.lesson else "")
    return line


class FeedbackLog(Static):
    """What became of this reviewer's decisions (``f`` shows or hides it)."""

    DEFAULT_CSS = """
    FeedbackLog {
        height: 10;
        padding: 0 1;
        border-top: solid $primary;
        overflow-y: auto;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("no feedback yet", **kwargs)  # type: ignore[arg-type]
        self.items: list[FeedbackItem] = []

    def add(self, items: list[FeedbackItem]) -> None:
        self.items.extend(items)
        shown = self.items[-50:]
        self.update(Text("\n").join(feedback_line(i) for i in reversed(shown)))
