"""The sweep report: ``report.json``, ``report.md``, ``cells.csv`` and ``figures/*.png``.

Measures per cell, per condition (model × policy × panel, seeds pooled), per panel and per
arm, each with a 95 % interval (`coimprove.ablate.stats`). Everything is derived from the
cells' results, which were read from their ledgers — nothing from runner memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coimprove.ablate.cells import CellResult
from coimprove.ablate.costs import DeadEndCost, dead_end_cost
from coimprove.ablate.edits import EditOutcomes, edit_outcomes
from coimprove.ablate.plots import draw_all
from coimprove.ablate.spec import ARMS, SweepSpec
from coimprove.ablate.stats import Estimate
from coimprove.ablate.summary import OVERRIDES, Measures, summarize

__all__ = ["SweepReport", "build_report", "write_atomic"]


class SweepReport(BaseModel):
    """What ``report.json`` holds."""

    model_config = ConfigDict(frozen=True)

    sweep: str
    description: str = ""
    cells_total: int
    cells_ok: int
    cells_failed: int
    gates: int
    decisions: int
    wall_s: float = Field(description="sum of the cells' own wall times (not the sweep's)")
    overall: Measures
    arms: list[Measures]
    panels: list[Measures]
    conditions: list[Measures]
    cells: list[Measures]
    failed: list[dict[str, Any]]
    figures: list[str]
    spec: dict[str, Any]
    reviewer_modes: dict[str, str] = Field(
        default_factory=dict,
        description="panel -> what produced its decisions (scripted catch_mode label/content, "
        "a model, self-critique)",
    )
    dead_end_cost: list[DeadEndCost] = Field(
        default_factory=list, description="per arm: steps, model and reviewer time on dead ends"
    )
    edit_outcomes: list[EditOutcomes] = Field(
        default_factory=list, description="per panel: edited vs unedited outcomes over time"
    )


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _group(
    results: Sequence[CellResult], key: Callable[[CellResult], tuple[Any, ...]]
) -> dict[tuple[Any, ...], list[CellResult]]:
    out: dict[tuple[Any, ...], list[CellResult]] = {}
    for r in results:
        out.setdefault(key(r), []).append(r)
    return out


def build_report(
    spec: SweepSpec, results: Sequence[CellResult], failed: Sequence[CellResult], out: Path
) -> SweepReport:
    """Summarise, draw and write the report files into `out`."""
    ok = [r for r in results if r.ok]
    order = {c.key: i for i, c in enumerate(spec.cells())}
    ok.sort(key=lambda r: order.get(r.key, len(order)))

    cells = [
        summarize(
            r.key,
            [r],
            model=r.cell.model,
            policy=r.cell.policy.label,
            panel=r.cell.panel.name,
            arm=r.arm,
            seed=r.cell.seed,
        )
        for r in ok
    ]
    conditions = [
        summarize(
            f"{panel} · {policy} · {model}",
            rs,
            model=model,
            policy=policy,
            panel=panel,
            arm=rs[0].arm,
        )
        for (model, policy, panel), rs in _group(ok, lambda r: r.cell.condition).items()
    ]
    panels = [
        summarize(panel, rs, panel=panel, arm=rs[0].arm)
        for (panel,), rs in _group(ok, lambda r: (r.cell.panel.name,)).items()
    ]
    policy_panel = [
        summarize(f"{panel} · {policy}", rs, policy=policy, panel=panel, arm=rs[0].arm)
        for (policy, panel), rs in _group(
            ok, lambda r: (r.cell.policy.label, r.cell.panel.name)
        ).items()
    ]
    by_arm = _group(ok, lambda r: (r.arm,))
    arms = [summarize(arm, by_arm[(arm,)], arm=arm) for arm in ARMS if (arm,) in by_arm]
    overall = summarize("all", ok)
    costs = [dead_end_cost(arm, by_arm[(arm,)], arm=arm) for arm in ARMS if (arm,) in by_arm]
    edits = [
        edit_outcomes(panel, rs, arm=rs[0].arm)
        for (panel,), rs in _group(ok, lambda r: (r.cell.panel.name,)).items()
    ]
    modes = {panel.name: panel.mode for panel in spec.reviewers}

    figures_dir = out / "figures"
    figures = draw_all(ok, panels, policy_panel, figures_dir) if ok else []
    report = SweepReport(
        sweep=spec.name,
        description=spec.description,
        cells_total=len(spec.cells()),
        cells_ok=len(ok),
        cells_failed=len(failed),
        gates=overall.gates,
        decisions=overall.decisions,
        wall_s=overall.wall_s,
        overall=overall,
        arms=arms,
        panels=panels,
        conditions=conditions,
        cells=cells,
        failed=[{"key": f.key, "error": f.error} for f in failed],
        figures=[str(p.relative_to(out)) for p in figures],
        spec=spec.model_dump(mode="json"),
        reviewer_modes=modes,
        dead_end_cost=costs,
        edit_outcomes=edits,
    )
    write_atomic(out / "report.json", report.model_dump_json(indent=1))
    write_atomic(out / "cells.csv", _csv(cells))
    write_atomic(out / "report.md", _markdown(report))
    return report


# -- cells.csv --------------------------------------------------------------------------------

_ESTIMATES: tuple[str, ...] = (
    "approval_rate",
    "rubber_stamp_rate",
    "canary_catch_rate",
    "false_alarm_rate",
    "sound_false_alarm_rate",
    "d_prime_sound",
    "d_prime_lower_bound",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "dwell_p50_s",
    "timeout_rate",
    "human_contribution",
    "dead_end_detection",
    "bad_catch_rate",
    "flaws_shipped_per_100",
    "reward_capture_rate",
    "run_hours_p50",
)


def _flat(m: Measures) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cell": m.label,
        "model": m.model,
        "policy": m.policy,
        "panel": m.panel,
        "arm": m.arm,
        "seed": m.seed,
        "runs": m.runs,
        "runs_finished": m.runs_finished,
        "gates": m.gates,
        "decisions": m.decisions,
        "proposals": m.proposals,
        "wall_s": m.wall_s,
        "sim_hours": m.sim_hours,
        "human_wait_share": m.human_wait_share,
        "fleiss_kappa": m.fleiss_kappa,
    }
    estimates: list[tuple[str, Estimate]] = [(f, getattr(m, f)) for f in _ESTIMATES]
    estimates += [(f"override_{v}", m.override[v]) for v in OVERRIDES]
    for name, e in estimates:
        row[name] = e.value
        row[f"{name}_lo"] = e.lo
        row[f"{name}_hi"] = e.hi
        row[f"{name}_n"] = e.n
    return row


def _csv(cells: Sequence[Measures]) -> str:
    buffer = io.StringIO()
    rows = [_flat(m) for m in cells]
    if not rows:
        return ""
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# -- report.md --------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _secs(e: Estimate) -> str:
    if e.value is None:
        return "–"

    def f(v: float) -> str:
        return f"{v / 60:.1f}m" if v >= 120 else f"{v:.0f}s"

    if e.lo is None or e.hi is None:
        return f(e.value)
    return f"{f(e.value)} [{f(e.lo)}, {f(e.hi)}]"


def _num(e: Estimate, digits: int = 2) -> str:
    return e.fmt(digits)


def _markdown(rep: SweepReport) -> str:
    out = [f"# Sweep `{rep.sweep}`", ""]
    if rep.description:
        out += [rep.description.strip(), ""]
    out += [
        f"{rep.cells_ok} of {rep.cells_total} cells finished"
        + (f", **{rep.cells_failed} failed**" if rep.cells_failed else "")
        + f"; {rep.gates:,} gates, {rep.decisions:,} decisions; "
        f"{rep.wall_s:.1f} s of cell time.",
        "",
        "Every number comes from the cells' ledgers. Brackets are 95 % intervals: Wilson for "
        "rates, delta-method normal for d′, order statistics for percentiles. A condition "
        "pools the seeds of one model × policy × reviewer panel.",
        "",
        "## Arms",
        "",
    ]
    out.append(
        _table(
            [
                "arm",
                "decisions",
                "flaws shipped /100 proposals",
                "rubber-stamp",
                "canary catch",
                "d′ sound-only",
                "d′ lower bound",
                "latency p50",
                "run hours p50",
            ],
            [
                [
                    str(m.label),
                    f"{m.decisions:,}",
                    m.flaws_shipped_per_100.fmt(1),
                    m.rubber_stamp_rate.fmt(1, pct=True),
                    m.canary_catch_rate.fmt(1, pct=True),
                    _num(m.d_prime_sound),
                    _num(m.d_prime_lower_bound),
                    _secs(m.latency_p50_s),
                    _num(m.run_hours_p50, 1),
                ]
                for m in rep.arms
            ],
        )
    )
    out += ["", "## Conditions", ""]
    out.append(
        _table(
            [
                "panel",
                "policy",
                "model",
                "arm",
                "decisions",
                "approval",
                "rubber-stamp",
                "canary catch",
                "false alarm (sound)",
                "false alarm (all non-canary)",
                "d′ sound-only",
                "d′ lower bound",
                "latency p50",
                "latency p90",
                "dwell p50",
            ],
            [
                [
                    str(m.panel),
                    str(m.policy),
                    str(m.model),
                    str(m.arm),
                    f"{m.decisions:,}",
                    m.approval_rate.fmt(1, pct=True),
                    m.rubber_stamp_rate.fmt(1, pct=True),
                    m.canary_catch_rate.fmt(1, pct=True),
                    m.sound_false_alarm_rate.fmt(1, pct=True),
                    m.false_alarm_rate.fmt(1, pct=True),
                    _num(m.d_prime_sound),
                    _num(m.d_prime_lower_bound),
                    _secs(m.latency_p50_s),
                    _secs(m.latency_p90_s),
                    _secs(m.dwell_p50_s),
                ]
                for m in rep.conditions
            ],
        )
    )
    out += ["", "### Ground truth and overrides", ""]
    out.append(
        _table(
            [
                "panel",
                "policy",
                "model",
                "dead-end detection",
                "bad caught",
                "reward capture",
                "flaws /100",
                "request changes",
                "reject",
                "edit",
                "escalate",
                "timeout",
                "human contribution",
                "wait share",
            ],
            [
                [
                    str(m.panel),
                    str(m.policy),
                    str(m.model),
                    m.dead_end_detection.fmt(1, pct=True),
                    m.bad_catch_rate.fmt(1, pct=True),
                    m.reward_capture_rate.fmt(1, pct=True),
                    m.flaws_shipped_per_100.fmt(1),
                    m.override["request_changes"].fmt(1, pct=True),
                    m.override["reject"].fmt(1, pct=True),
                    m.override["edit"].fmt(1, pct=True),
                    m.override["escalate"].fmt(1, pct=True),
                    m.timeout_rate.fmt(1, pct=True),
                    m.human_contribution.fmt(1, pct=True),
                    "–" if m.human_wait_share is None else f"{m.human_wait_share:.0%}",
                ]
                for m in rep.conditions
            ],
        )
    )
    out += ["", *_modes_section(rep), *_cost_section(rep), *_edits_section(rep)]
    out += ["## Figures", ""]
    captions = {
        "fatigue.png": "Rubber-stamp and canary catch rates against queue length and time in "
        "session",
        "by_policy.png": "Rubber-stamp and canary catch rates per policy",
        "latency.png": "Latency and dwell distributions",
        "arms.png": "Autonomous vs AI-reviewed vs human-in-the-loop",
    }
    for fig in rep.figures:
        name = Path(fig).name
        out += [f"![{captions.get(name, name)}]({fig})", ""]
    if rep.failed:
        out += ["## Failed cells (re-run the sweep to retry them)", ""]
        out += [f"- `{f['key']}`: {f['error']}" for f in rep.failed]
        out.append("")
    out += [
        "## Definitions",
        "",
        "- **rubber-stamp rate**: approvals with dwell below the gate's minimum review time and "
        "the detail never opened, over approvals (DESIGN.md).",
        "- **canary catch rate**: canaries rejected or sent back over canaries decided; "
        "**false alarm (sound)**: the same on ordinary gates whose proposal is labelled sound; "
        "**false alarm (all non-canary)**: the same on every ordinary gate, so real flaws "
        "caught count too (an upper bound of the false-alarm rate).",
        "- **d′** = z(hit) − z(false alarm) with the log-linear correction (so a panel that "
        "never says no gets a d′ away from 0 when the counts differ: read it with its interval). "
        "**d′ sound-only** takes its false alarms from proposals known to be sound: the "
        "reviewer's sensitivity. **d′ lower bound** takes them from every ordinary gate, so "
        "catching a real flaw counts against the reviewer: a lower bound of sensitivity when "
        "real flaws are present (the only d′ without ground truth).",
        "- **dead-end detection**: planted dead ends stopped at their gate; **bad caught**: "
        "decisions that stopped a flawed or dead-end proposal (not canaries).",
        "- **flaws shipped /100**: non-canary proposals approved while flawed or a dead end, per "
        "100 proposals; **reward capture**: revisions approved while still bad, over approved "
        "revisions.",
        "- **run hours**: simulated time from a run's start to its end; **wait share**: share "
        "of a run's time spent waiting at gates.",
        "",
        "Per-cell numbers: `cells.csv`; everything: `report.json`.",
        "",
    ]
    return "\n".join(out)


def _modes_section(rep: SweepReport) -> list[str]:
    if not rep.reviewer_modes:
        return []
    out = [
        "## Reviewer modes",
        "",
        "What produced each panel's decisions. A scripted profile in `catch_mode label` "
        "catches by the hidden label alone (its numbers reproduce its own settings); in "
        "`catch_mode content` it catches by what the gate shows (flags, risk, critique, "
        "phrases, size).",
        "",
    ]
    out += [f"- `{panel}`: {mode}" for panel, mode in rep.reviewer_modes.items()]
    return [*out, ""]


def _cost_section(rep: SweepReport) -> list[str]:
    if not rep.dead_end_cost:
        return []
    out = [
        "## Dead ends as cost",
        "",
        "Per run (mean, 95 % normal interval over runs): dead-end proposals (steps), seconds of "
        "the agent's model calls that made them, simulated reviewer seconds on them and model "
        "reviewers' call seconds; share of steps (Wilson) and share shipped (Wilson).",
        "",
    ]
    out.append(
        _table(
            [
                "arm",
                "runs",
                "dead-end steps /run",
                "share of steps",
                "agent model s /run",
                "reviewer s /run",
                "reviewer model s /run",
                "reviewer time share",
                "dead ends shipped",
            ],
            [
                [
                    c.label,
                    f"{c.runs:,}",
                    c.steps_per_run.fmt(2),
                    c.step_share.fmt(1, pct=True),
                    c.agent_model_s_per_run.fmt(3),
                    _secs(c.reviewer_s_per_run),
                    c.reviewer_model_s_per_run.fmt(3),
                    "–" if c.reviewer_s_share is None else f"{c.reviewer_s_share:.0%}",
                    c.shipped.fmt(1, pct=True),
                ]
                for c in rep.dead_end_cost
            ],
        )
    )
    return [*out, ""]


def _edits_section(rep: SweepReport) -> list[str]:
    shown = [e for e in rep.edit_outcomes if e.overall.edited]
    if not shown:
        return []
    out = [
        "## Do edits improve outcomes?",
        "",
        "Approved proposals per panel, in windows of each cell's sequence of proposals (1 = "
        "earliest). Paired: of edited proposals, bad as proposed vs bad as shipped, and the "
        "share of bad ones the edit repaired; unpaired: flaws shipped per edited vs unedited "
        "approval and the difference (Newcombe). A repaired share of 0 with equal flaw rates "
        "means the edits were noise.",
        "",
    ]
    rows = []
    for e in shown:
        for w in [*e.windows, e.overall]:
            rows.append(
                [
                    e.label,
                    "all" if w.window == 0 else str(w.window),
                    f"{w.edited:,}",
                    w.edited_bad_as_proposed.fmt(1, pct=True),
                    w.edited_bad_shipped.fmt(1, pct=True),
                    w.repaired.fmt(1, pct=True),
                    f"{w.approved_unedited:,}",
                    w.unedited_bad_shipped.fmt(1, pct=True),
                    w.difference.fmt(1, pct=True),
                    w.edited_effect_failed.fmt(1, pct=True),
                ]
            )
    out.append(
        _table(
            [
                "panel",
                "window",
                "edited",
                "bad as proposed",
                "bad as shipped",
                "repaired",
                "unedited approvals",
                "unedited bad shipped",
                "difference",
                "effect failed (edited)",
            ],
            rows,
        )
    )
    return [*out, ""]


def load_report(out: Path) -> SweepReport:
    """Read ``report.json`` back."""
    return SweepReport.model_validate(json.loads((out / "report.json").read_text()))
