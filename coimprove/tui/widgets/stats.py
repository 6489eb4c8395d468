"""The reviewer's own measures, from the same metrics module as `coimprove report`."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from coimprove.metrics import GroupMeasures


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def stats_table(reviewer: str, m: GroupMeasures | None, *, training: bool = False) -> Table:
    """A two-column table of this reviewer's measures (in training, the catch rate first)."""
    table = Table(show_header=False, box=None, pad_edge=False, expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right")
    table.title = Text(f"you: {reviewer}", style="bold")
    m = m or GroupMeasures()
    c = m.canary
    rows = [
        ("decisions", str(m.decisions)),
        ("latency p50", _secs(m.latency_s.p50)),
        ("latency p90", _secs(m.latency_s.p90)),
        ("dwell p50", _secs(m.dwell_s.p50)),
        ("approval rate", _pct(m.approval_rate)),
        ("rubber-stamps", f"{m.rubber_stamps} ({_pct(m.rubber_stamp_rate)})"),
        ("canaries caught", f"{c.caught}/{c.n}"),
        # without truth labels a stopped real flaw would count as a false alarm
        ("false alarms", f"{c.sound_false_alarms}/{c.sound}")
        if c.sound
        else ("non-canary stopped", f"{c.false_alarms}/{c.non_canary}"),
    ]
    if training:
        rows.insert(0, ("catch rate", f"{_pct(c.catch_rate)} of {c.n}"))
    for key, value in rows:
        table.add_row(key, value)
    return table


class StatsPanel(Static):
    """Side panel with this reviewer's latency, dwell, approval, rubber-stamp, canaries."""

    DEFAULT_CSS = """
    StatsPanel {
        dock: right;
        width: 30;
        height: 1fr;
        padding: 0 1;
        border-left: solid $primary;
    }
    """

    def __init__(self, reviewer: str, **kwargs: object) -> None:
        super().__init__(stats_table(reviewer, None), **kwargs)  # type: ignore[arg-type]
        self.reviewer = reviewer
        self.training = False
        self.measures: GroupMeasures | None = None

    def show(self, measures: GroupMeasures | None) -> None:
        self.measures = measures
        self.update(stats_table(self.reviewer, measures, training=self.training))
