"""Rich tables of an oversight `Report` for people (the ``report`` and ``demo`` commands)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from coimprove.metrics import CanaryMeasures, GroupMeasures, Report, Sensitivity

CATEGORY_LABELS: dict[str, str] = {
    "problem_identification": "collaborative problem identification",
    "benchmark_creation": "benchmark creation & problem evaluation",
    "method_innovation": "method innovation & idea generation",
    "experiment_design": "joint experiment design",
    "execution": "collaborative execution",
    "error_analysis": "evaluation & error analysis",
    "safety": "safety & alignment",
    "systems_codesign": "systems & infrastructure co-design",
    "real_world": "integrating into real-world systems",
    "scientific_communication": "scientific communication",
    "collective_intelligence": "collective intelligence & group research",
    "bidirectional": "bidirectional co-improvement",
}
"""Collaboration categories of the co-improvement agenda (Weston & Foerster, Table 1), by the
slug gates record as their ``category``."""


def fmt(value: Any) -> str:
    """A measure for a table cell: ``-`` for None, 3 decimals for floats."""
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _seconds(value: float | None) -> str:
    """A duration in at most 5 characters: 42s, 25m, 3.1h."""
    if value is None:
        return "-"
    if value < 100:
        return f"{value:.0f}s"
    if value < 6000:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def category_table(report: Report, *, title: str = "oversight by collaboration category") -> Table:
    """One row per gate category: gates, verdicts (appr = approve or edit, chg = request
    changes, rej = reject, esc = escalate), rubber stamps / approvals, median latency and dwell."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0))
    table.add_column("category", no_wrap=True)
    for name in ("gates", "appr", "chg", "rej", "esc", "stamp", "latency", "dwell"):
        table.add_column(name, justify="right", no_wrap=True)
    for slug, m in sorted(report.by_category.items(), key=lambda kv: _category_order(kv[0])):
        table.add_row(*_category_cells(slug, m))
    return table


def _category_order(slug: str) -> int:
    order = list(CATEGORY_LABELS)
    return order.index(slug) if slug in order else len(order)


def _category_cells(slug: str, m: GroupMeasures) -> list[str]:
    v = m.verdicts
    return [
        slug,
        str(m.gates),
        str(v.get("approve", 0) + v.get("edit", 0)),
        str(v.get("request_changes", 0)),
        str(v.get("reject", 0)),
        str(v.get("escalate", 0)),
        f"{m.rubber_stamps}/{v.get('approve', 0)}",
        _seconds(m.latency_s.p50),
        _seconds(m.dwell_s.p50),
    ]


def overview_table(report: Report, *, title: str = "oversight report") -> Table:
    """The overall measures."""
    table = Table("measure", "value", title=title)
    for key in ("gates", "decided", "pending", "decisions", "approval_rate", "rubber_stamp_rate"):
        table.add_row(key, fmt(getattr(report, key)))
    for key in ("latency_s", "dwell_s"):
        d = getattr(report, key)
        table.add_row(key, " ".join(f"{q}={fmt(getattr(d, q))}" for q in ("p50", "p90", "p99")))
    for key, value in canary_rows(report.canary):
        table.add_row(key, value)
    usage = report.model
    table.add_row("model calls", f"{usage.calls} ({usage.seconds:.1f}s, {usage.tokens} tokens)")
    table.add_row("human_wait_share", fmt(report.human_wait_share))
    return table


def _sensitivity(d: Sensitivity) -> str:
    if d.value is None:
        return "-"
    if d.low is None or d.high is None:
        return f"{d.value:.2f}"
    return f"{d.value:.2f} [{d.low:.2f}, {d.high:.2f}]"


def canary_rows(c: CanaryMeasures) -> list[tuple[str, str]]:
    """Label and value of the canary measures, each d′ named for what it is (the sound-only
    d′ where proposals carry truth labels; the canary-vs-everything one is a lower bound)."""
    return [
        ("canary catch", f"{c.caught}/{c.n} = {fmt(c.catch_rate)}"),
        (
            "false alarms (sound)",
            f"{c.sound_false_alarms}/{c.sound} = {fmt(c.sound_false_alarm_rate)}"
            if c.sound
            else "- (no proposal labelled sound)",
        ),
        (
            "false alarms (all non-canary)",
            f"{c.false_alarms}/{c.non_canary} = {fmt(c.false_alarm_rate)}",
        ),
        ("d′ sound-only", _sensitivity(c.d_prime_sound)),
        ("d′ lower bound (vs all non-canary)", _sensitivity(c.d_prime_lower_bound)),
    ]


def reviewer_table(report: Report) -> Table:
    """One row per reviewer."""
    table = Table("reviewer", "decisions", "approval", "rubber-stamp", "dwell p50")
    for rid, m in sorted(report.by_reviewer.items()):
        table.add_row(
            rid,
            fmt(m.decisions),
            fmt(m.approval_rate),
            fmt(m.rubber_stamp_rate),
            fmt(m.dwell_s.p50),
        )
    return table


def resubmission_table(report: Report) -> Table:
    """Approved unchanged resubmissions (reward capture): per agent and per reviewer."""
    r = report.resubmissions
    table = Table("who", "resubmitted", "unchanged", "rate", "approved", "approved rate")
    table.title = "approved unchanged resubmissions"
    rows = [("all", r), *((f"agent {k}", v) for k, v in r.by_agent.items())]
    rows += [(f"reviewer {k}", v) for k, v in r.by_reviewer.items()]
    for who, m in rows:
        table.add_row(
            who,
            str(m.resubmissions),
            str(m.unchanged),
            fmt(m.unchanged_rate),
            str(m.approved_unchanged),
            fmt(m.approved_unchanged_rate),
        )
    return table
