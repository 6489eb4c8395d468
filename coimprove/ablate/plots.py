"""The sweep's figures (PNG, matplotlib's object API: no global pyplot state, no display).

* ``fatigue.png`` — rubber-stamp rate (of approvals) and canary catch rate against the queue
  length when the reviewer first looked and against hours into the session, per panel;
* ``by_policy.png`` — the same two rates per policy and panel;
* ``latency.png`` — distributions (ECDF) of oversight latency and dwell per panel;
* ``arms.png`` — autonomous vs AI-reviewed vs human-in-the-loop: flaws shipped per 100
  proposals and how long a run takes, per panel.

Every point carries its 95 % interval (Wilson for rates, order statistics for medians); bins
with fewer than `MIN_BIN` decisions are left out rather than drawn as noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coimprove.ablate.cells import CellResult
from coimprove.ablate.spec import ARMS
from coimprove.ablate.stats import Estimate, quantile_ci, wilson
from coimprove.ablate.summary import Measures, pooled_decisions, stopping

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MIN_BIN", "draw_all"]

MIN_BIN = 20
_DPI = 110
_QUEUE_EDGES = (0, 1, 2, 3, 5, 9, 17, 33, 65)
_HOUR_EDGES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_ARM_COLOURS = {
    "autonomous": "#c44e52",
    "self_critique": "#dd8452",
    "ai_reviewed": "#4c72b0",
    "human_in_the_loop": "#55a868",
}
_ARM_NAMES = {
    "autonomous": "autonomous",
    "self_critique": "self-critique",
    "ai_reviewed": "AI-reviewed",
    "human_in_the_loop": "human-in-the-loop",
}


def _figure(width: float, height: float) -> Any:
    """A figure not tied to pyplot (matplotlib is imported only when drawing)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _colours(panels: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {p: cmap(i % 10) for i, p in enumerate(panels)}


def _labels(edges: Sequence[float], *, integer: bool) -> list[str]:
    """Bin labels: ``0``, ``3–4``, ``65+`` for counts; ``2–4`` (hours, half-open) otherwise."""
    out = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=True):
        if hi is None:
            out.append(f"{lo:g}+")
        elif integer and hi - lo == 1:
            out.append(f"{lo:g}")
        else:
            out.append(f"{lo:g}–{(hi - 1) if integer else hi:g}")
    return out


def _bin(value: float, edges: Sequence[float]) -> int:
    index = 0
    for i, edge in enumerate(edges):
        if value >= edge:
            index = i
    return index


def _binned_rates(
    xs: Sequence[float], hits: Sequence[bool], edges: Sequence[float]
) -> list[Estimate]:
    k = [0] * len(edges)
    n = [0] * len(edges)
    for x, hit in zip(xs, hits, strict=True):
        b = _bin(x, edges)
        n[b] += 1
        k[b] += int(hit)
    return [wilson(k[i], n[i]) for i in range(len(edges))]


def _yerr(estimates: Sequence[Estimate], scale: float = 1.0) -> list[list[float]]:
    """Error-bar lengths below and above each value (0 where the interval is undefined)."""
    below, above = [], []
    for e in estimates:
        v = e.value or 0.0
        below.append(max(v - (e.lo if e.lo is not None else v), 0.0) * scale)
        above.append(max((e.hi if e.hi is not None else v) - v, 0.0) * scale)
    return [below, above]


def _rate_line(ax: Axes, estimates: Sequence[Estimate], label: str, colour: Any) -> bool:
    points = [(i, e) for i, e in enumerate(estimates) if e.n >= MIN_BIN and e.value is not None]
    if not points:
        return False
    xs = [i for i, _ in points]
    ys = [e.value or 0.0 for _, e in points]
    ax.errorbar(
        xs,
        ys,
        yerr=_yerr([e for _, e in points]),
        label=label,
        color=colour,
        marker="o",
        capsize=3,
        lw=1.6,
    )
    return True


def _panel_columns(results: Sequence[CellResult]) -> dict[str, dict[str, list[Any]]]:
    panels: dict[str, list[CellResult]] = {}
    for r in results:
        panels.setdefault(r.cell.panel.name, []).append(r)
    return {name: pooled_decisions(rs) for name, rs in panels.items()}


def _fatigue(results: Sequence[CellResult], path: Path) -> Path:
    columns = _panel_columns(results)
    colours = _colours(list(columns))
    fig = _figure(12, 8)
    axes = fig.subplots(2, 2, sharey="row")
    axes_by = {
        ("rubber", "queue"): axes[0][0],
        ("rubber", "hours"): axes[0][1],
        ("catch", "queue"): axes[1][0],
        ("catch", "hours"): axes[1][1],
    }
    drawn: dict[tuple[str, str], bool] = dict.fromkeys(axes_by, False)
    for panel, col in columns.items():
        approved = [i for i, v in enumerate(col.get("verdict", [])) if v in ("approve", "edit")]
        canary = [
            i for i, v in enumerate(col.get("verdict", [])) if col["canary"][i] and v != "escalate"
        ]
        hours = [float(t) / 3600.0 for t in col.get("first_view_at", [])]
        queue = [float(q) for q in col.get("queue", [])]
        stamped = [col["rubber_stamp"][i] == 1 for i in approved]
        caught = [stopping(col["verdict"][i]) for i in canary]
        for what, rows, hits in (("rubber", approved, stamped), ("catch", canary, caught)):
            for axis, xs, edges in (("queue", queue, _QUEUE_EDGES), ("hours", hours, _HOUR_EDGES)):
                est = _binned_rates([xs[i] for i in rows], hits, edges)
                if _rate_line(axes_by[what, axis], est, panel, colours[panel]):
                    drawn[what, axis] = True
    for (what, axis), ax in axes_by.items():
        edges = _QUEUE_EDGES if axis == "queue" else _HOUR_EDGES
        ax.set_xticks(range(len(edges)))
        ax.set_xticklabels(_labels(edges, integer=axis == "queue"))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.set_xlabel(
            "other gates open when the reviewer first looked"
            if axis == "queue"
            else "hours into the session when the reviewer first looked"
        )
        if axis == "queue":
            ax.set_ylabel(
                "rubber-stamp rate (of approvals)" if what == "rubber" else "canary catch rate"
            )
        if not drawn[what, axis]:
            ax.text(
                0.5,
                0.5,
                "no canaries in this sweep" if what == "catch" else "no approvals",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="grey",
            )
    handles, labels = axes[0][0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
    fig.suptitle(
        f"Oversight under load (95% Wilson intervals; bins with < {MIN_BIN} decisions omitted)",
        fontsize=13,
    )
    fig.savefig(path, dpi=_DPI)
    return path


def _grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: dict[str, list[Estimate]],
    colours: dict[str, Any],
    *,
    percent: bool = False,
) -> None:
    width = 0.8 / max(len(series), 1)
    scale = 100.0 if percent else 1.0
    for j, (name, estimates) in enumerate(series.items()):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        ys = [(e.value or 0.0) * scale for e in estimates]
        ax.bar(
            xs,
            ys,
            width=width * 0.95,
            color=colours[name],
            label=name,
            yerr=_yerr(estimates, scale),
            capsize=3,
        )
        for x, e in zip(xs, estimates, strict=True):
            if e.value is None:
                ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=15 if len(groups) > 3 else 0)
    ax.grid(axis="y", alpha=0.3)


def _by_policy(by_policy_panel: Sequence[Measures], path: Path) -> Path:
    policies = list(dict.fromkeys(str(m.policy) for m in by_policy_panel))
    panels = list(dict.fromkeys(str(m.panel) for m in by_policy_panel))
    colours = _colours(panels)
    index = {(m.policy, m.panel): m for m in by_policy_panel}
    empty = Estimate(value=None)
    fig = _figure(12, 5.5)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for ax, field, title in (
        (ax1, "rubber_stamp_rate", "rubber-stamp rate (of approvals)"),
        (ax2, "canary_catch_rate", "canary catch rate"),
    ):
        series = {
            panel: [
                getattr(index[p, panel], field) if (p, panel) in index else empty for p in policies
            ]
            for panel in panels
        }
        _grouped_bars(ax, policies, series, colours)
        ax.set_title(title)
        ax.set_xlabel("policy")
        ax.set_ylim(0, 1.05)
    ax1.set_ylabel("rate (95% Wilson interval)")
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
    fig.suptitle("Rates per policy and reviewer panel (pooled over models and seeds)")
    fig.savefig(path, dpi=_DPI)
    return path


def _ecdf(ax: Axes, values: Sequence[float], label: str, colour: Any, floor: float) -> None:
    if not values:
        return
    xs = sorted(max(v, floor) for v in values)
    n = len(xs)
    ax.step(xs, [(i + 1) / n for i in range(n)], where="post", label=label, color=colour, lw=1.6)


def _latency(results: Sequence[CellResult], path: Path) -> Path:
    columns = _panel_columns(results)
    colours = _colours(list(columns))
    fig = _figure(12, 5.5)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for panel, col in columns.items():
        _ecdf(ax1, [float(x) / 60.0 for x in col.get("latency_s", [])], panel, colours[panel], 0.01)
        _ecdf(ax2, [float(x) for x in col.get("dwell_s", [])], panel, colours[panel], 0.1)
    ax1.set_xscale("log")
    ax2.set_xscale("log")
    ax1.set_xlabel("oversight latency: gate opened → decided (minutes, log scale)")
    ax2.set_xlabel("dwell: first look → decided (seconds, log scale)")
    ax1.set_ylabel("share of decisions at or below")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
        ax.set_ylim(0, 1.01)
    ax1.set_title("latency (values below 0.01 min drawn at 0.01)")
    ax2.set_title("dwell (values below 0.1 s drawn at 0.1)")
    handles, labels = ax1.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
    fig.suptitle("How long oversight takes (empirical distribution per panel)")
    fig.savefig(path, dpi=_DPI)
    return path


def _arms(by_panel: Sequence[Measures], results: Sequence[CellResult], path: Path) -> Path:
    order = sorted(by_panel, key=lambda m: (ARMS.index(m.arm) if m.arm in ARMS else 9, m.label))
    names = [str(m.panel) for m in order]
    colours = [_ARM_COLOURS.get(str(m.arm), "#888888") for m in order]
    fig = _figure(12, 5.5)
    ax1, ax2 = fig.subplots(1, 2)
    for ax, estimates, ylabel in (
        (ax1, [m.flaws_shipped_per_100 for m in order], "flaws shipped per 100 proposals"),
        (ax2, _run_hours(order, results), "median simulated hours per run"),
    ):
        ys = [e.value or 0.0 for e in estimates]
        ax.bar(range(len(order)), ys, color=colours, yerr=_yerr(estimates), capsize=4)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(names, rotation=15 if len(names) > 3 else 0)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        for x, e in enumerate(estimates):
            if e.value is not None:
                ax.annotate(
                    f"{e.value:.1f}",
                    (x, e.hi if e.hi is not None else e.value),
                    textcoords="offset points",
                    xytext=(0, 4),
                    ha="center",
                    fontsize=9,
                )
    ax1.set_title("what got through (ground truth; 95% Wilson interval)")
    ax2.set_title("what oversight costs in time (95% order-statistic interval)")
    from matplotlib.patches import Patch

    present = [a for a in ARMS if any(m.arm == a for m in order)]
    fig.legend(
        [Patch(color=_ARM_COLOURS[a]) for a in present],
        [_ARM_NAMES[a] for a in present],
        loc="outside lower center",
        ncols=len(present) or 1,
    )
    fig.suptitle("Autonomous vs AI-reviewed vs human-in-the-loop (pooled over policies and seeds)")
    fig.savefig(path, dpi=_DPI)
    return path


def _run_hours(order: Sequence[Measures], results: Sequence[CellResult]) -> list[Estimate]:
    out = []
    for m in order:
        hours = [
            s / 3600.0
            for r in results
            if r.cell.panel.name == m.panel and r.measures is not None
            for s in r.measures.run_seconds
        ]
        out.append(quantile_ci(hours, 0.5))
    return out


def draw_all(
    results: Sequence[CellResult],
    by_panel: Sequence[Measures],
    by_policy_panel: Sequence[Measures],
    folder: Path,
) -> list[Path]:
    """Draw every figure into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = [r for r in results if r.ok and r.measures is not None]
    return [
        _fatigue(ok, folder / "fatigue.png"),
        _by_policy(by_policy_panel, folder / "by_policy.png"),
        _latency(ok, folder / "latency.png"),
        _arms(by_panel, ok, folder / "arms.png"),
    ]
