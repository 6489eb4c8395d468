"""Pool cells into measures with confidence intervals (per cell, per condition, per arm).

Counts are summed across the pooled cells and intervals computed on the totals; percentiles
pool the cells' single decisions. A *condition* is a cell without its seed (model × policy ×
panel): seeds are replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coimprove.ablate.cells import CellResult
from coimprove.ablate.stats import Estimate, d_prime_ci, quantile_ci, wilson

__all__ = ["OVERRIDES", "Measures", "pooled_decisions", "summarize"]

OVERRIDES = ("edit", "reject", "request_changes", "escalate")
_STOPPING = ("reject", "request_changes")


class Measures(BaseModel):
    """The DESIGN.md measures plus the ground-truth ones, each with a 95 % interval.

    Of the two d′, ``d_prime_sound`` is the sensitivity (false alarms on proposals known to be
    sound); ``d_prime_lower_bound`` counts stopping a real flaw as a false alarm too.
    """

    model_config = ConfigDict(frozen=True)

    label: str
    model: str | None = None
    policy: str | None = None
    panel: str | None = None
    arm: str | None = None
    seed: int | None = None
    cells: int = 0
    runs: int = 0
    runs_finished: int = 0
    gates: int = 0
    decisions: int = 0
    proposals: int = 0
    wall_s: float = 0.0
    sim_hours: float = 0.0
    approval_rate: Estimate
    rubber_stamp_rate: Estimate
    canary_catch_rate: Estimate
    false_alarm_rate: Estimate = Field(
        description="stops of every non-canary proposal (real flaws included): an upper bound"
    )
    sound_false_alarm_rate: Estimate = Field(description="stops of proposals known to be sound")
    d_prime_sound: Estimate = Field(description="sound-only d′: canaries vs known-sound proposals")
    d_prime_lower_bound: Estimate = Field(
        description="canaries vs every non-canary proposal: a lower bound of d′ when real flaws "
        "are present"
    )
    latency_p50_s: Estimate
    latency_p90_s: Estimate
    latency_p99_s: Estimate
    dwell_p50_s: Estimate
    human_wait_share: float | None = None
    override: dict[str, Estimate] = Field(default_factory=dict)
    timeout_rate: Estimate
    human_contribution: Estimate
    dead_end_detection: Estimate
    bad_catch_rate: Estimate
    flaws_shipped_per_100: Estimate
    reward_capture_rate: Estimate
    run_hours_p50: Estimate
    fleiss_kappa: float | None = None


def _i(value: Any) -> int:
    return 0 if value is None else int(value)


def pooled_decisions(results: Sequence[CellResult]) -> dict[str, list[Any]]:
    """The cells' per-decision columns, concatenated."""
    out: dict[str, list[Any]] = {}
    for result in results:
        if result.measures is None:
            continue
        for name, column in result.measures.decisions.model_dump().items():
            out.setdefault(name, []).extend(column)
    return out


def summarize(label: str, results: Sequence[CellResult], **meta: Any) -> Measures:
    """Pool `results` (successful cells) into one `Measures`."""
    ok = [r for r in results if r.ok and r.measures is not None]
    reports = [r.measures.report for r in ok if r.measures is not None]
    truths = [r.measures.truth for r in ok if r.measures is not None]

    def total(path: str) -> int:
        acc = 0
        for rep in reports:
            node: Any = rep
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            acc += _i(node)
        return acc

    decisions = total("decisions")
    verdicts = {v: total(f"verdicts.{v}") for v in ("approve", *OVERRIDES)}
    approvals = verdicts["approve"] + verdicts["edit"]
    decided = total("decided")
    # the report keeps the timeout rate over resolved gates; its count is rate x resolved
    timed_out = sum(
        round(((rep.get("override") or {}).get("timeout") or 0.0) * _i(rep.get("decided")))
        for rep in reports
    )
    columns = pooled_decisions(ok)
    latency = [float(x) for x in columns.get("latency_s", [])]
    dwell = [float(x) for x in columns.get("dwell_s", [])]
    run_hours = [s / 3600.0 for r in ok if r.measures is not None for s in r.measures.run_seconds]
    waits = [
        (float(rep["human_wait_share"]), _i(rep.get("wait_share_runs")))
        for rep in reports
        if rep.get("human_wait_share") is not None
    ]
    wait_runs = sum(n for _, n in waits)
    kappas: list[float] = [
        float(k)
        for rep in reports
        if (k := (rep.get("agreement") or {}).get("fleiss_kappa")) is not None
    ]
    proposals = sum(t.proposals for t in truths)
    return Measures(
        label=label,
        cells=len(ok),
        runs=sum(r.measures.runs_started for r in ok if r.measures is not None),
        runs_finished=sum(r.measures.runs_finished for r in ok if r.measures is not None),
        gates=total("gates"),
        decisions=decisions,
        proposals=proposals,
        wall_s=round(sum(r.wall_s for r in ok), 3),
        sim_hours=round(sum(r.sim_s for r in ok) / 3600.0, 3),
        approval_rate=wilson(approvals, decisions),
        rubber_stamp_rate=wilson(total("rubber_stamps"), approvals),
        canary_catch_rate=wilson(total("canary.caught"), total("canary.n")),
        false_alarm_rate=wilson(total("canary.false_alarms"), total("canary.non_canary")),
        sound_false_alarm_rate=wilson(total("canary.sound_false_alarms"), total("canary.sound")),
        d_prime_sound=d_prime_ci(
            total("canary.caught"),
            total("canary.n"),
            total("canary.sound_false_alarms"),
            total("canary.sound"),
        ),
        d_prime_lower_bound=d_prime_ci(
            total("canary.caught"),
            total("canary.n"),
            total("canary.false_alarms"),
            total("canary.non_canary"),
        ),
        latency_p50_s=quantile_ci(latency, 0.5),
        latency_p90_s=quantile_ci(latency, 0.9),
        latency_p99_s=quantile_ci(latency, 0.99),
        dwell_p50_s=quantile_ci(dwell, 0.5),
        human_wait_share=(sum(s * n for s, n in waits) / wait_runs if wait_runs else None),
        override={v: wilson(verdicts[v], decisions) for v in OVERRIDES},
        timeout_rate=wilson(timed_out, decided),
        human_contribution=wilson(
            total("human_contribution.changed"), total("human_contribution.decisions")
        ),
        dead_end_detection=wilson(total("dead_end.stopped"), total("dead_end.n")),
        bad_catch_rate=wilson(
            sum(t.bad_caught for t in truths), sum(t.bad_decisions for t in truths)
        ),
        flaws_shipped_per_100=wilson(sum(t.flaws_shipped for t in truths), proposals).scaled(100.0),
        reward_capture_rate=wilson(
            sum(t.captured for t in truths), sum(t.approved_revisions for t in truths)
        ),
        run_hours_p50=quantile_ci(run_hours, 0.5),
        fleiss_kappa=(sum(kappas) / len(kappas)) if kappas else None,
        **meta,
    )


def stopping(verdict: str) -> bool:
    """Whether a verdict stops a proposal (reject or request_changes)."""
    return verdict in _STOPPING
