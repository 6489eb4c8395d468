"""Dead ends as cost, not only a label: what a sweep's arms spend on dead-end proposals.

For the proposals of a group of cells (`coimprove.ablate.proposals`), with a 95 % interval:

* steps — dead-end proposals per run (a dead end shipped and pursued costs the following steps
  too, when the synthetic graph's ``dead_end_depth`` says so) and their share of all proposals;
* agent model seconds — of the model calls that produced dead-end proposals, per run;
* reviewer seconds — simulated reviewer dwell on dead-end proposals, per run (a model
  reviewer's ``think_s``, a scripted reviewer's review or skim time), plus the seconds of model
  reviewers' own calls on them;
* dead ends shipped — of the dead-end proposals, the share that was approved.

Per-run means have normal intervals over runs (every run of every pooled cell, a run without
dead ends counting zero); shares have Wilson intervals. Compare the arms: an autonomous arm
spends no reviewer time but ships dead ends (and pursues them); a self-critique arm spends model
time; people spend their time.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from coimprove.ablate.cells import CellResult
from coimprove.ablate.stats import Estimate, mean_ci, wilson

__all__ = ["DeadEndCost", "dead_end_cost"]

_DEAD_END = "dead_end"
_SHIPPED = ("approve", "edit")


class DeadEndCost(BaseModel):
    """What one group of cells (an arm) spent on dead-end proposals."""

    model_config = ConfigDict(frozen=True)

    label: str
    arm: str | None = None
    runs: int = 0
    proposals: int = 0
    dead_end_proposals: int = 0
    step_share: Estimate
    steps_per_run: Estimate
    agent_model_s_per_run: Estimate
    reviewer_s_per_run: Estimate
    reviewer_model_s_per_run: Estimate
    shipped: Estimate
    reviewer_s_share: float | None = None
    """Share of all simulated reviewer time that went to dead ends."""
    agent_model_s_share: float | None = None
    """Share of all agent model seconds that went to dead ends."""


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def dead_end_cost(
    label: str, results: Sequence[CellResult], *, arm: str | None = None
) -> DeadEndCost:
    """Pool the proposals of `results` (finished cells) into their dead-end cost."""
    per_run: dict[tuple[str, str], list[float]] = {}  # (cell, run) -> steps, agent s, rev s, rm s
    proposals = dead = shipped = 0
    reviewer_total = agent_total = reviewer_dead = agent_dead = 0.0
    for result in results:
        if not result.ok or result.measures is None:
            continue
        cols = result.measures.proposals
        own = {run for run in cols.run}
        for i in range(max(result.measures.runs_started - len(own), 0)):
            per_run[(result.key, f"#no-proposal-{i}")] = [0.0, 0.0, 0.0, 0.0]
        for j, run in enumerate(cols.run):
            key = (result.key, run)
            per_run.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            proposals += 1
            reviewer_total += cols.reviewer_s[j]
            agent_total += cols.agent_model_s[j]
            if cols.truth[j] != _DEAD_END:
                continue
            dead += 1
            shipped += cols.outcome[j] in _SHIPPED
            reviewer_dead += cols.reviewer_s[j]
            agent_dead += cols.agent_model_s[j]
            acc = per_run[key]
            acc[0] += 1
            acc[1] += cols.agent_model_s[j]
            acc[2] += cols.reviewer_s[j]
            acc[3] += cols.reviewer_model_s[j]
    runs = list(per_run.values())
    return DeadEndCost(
        label=label,
        arm=arm,
        runs=len(runs),
        proposals=proposals,
        dead_end_proposals=dead,
        step_share=wilson(dead, proposals),
        steps_per_run=mean_ci([r[0] for r in runs]),
        agent_model_s_per_run=mean_ci([r[1] for r in runs]),
        reviewer_s_per_run=mean_ci([r[2] for r in runs]),
        reviewer_model_s_per_run=mean_ci([r[3] for r in runs]),
        shipped=wilson(shipped, dead),
        reviewer_s_share=_share(reviewer_dead, reviewer_total),
        agent_model_s_share=_share(agent_dead, agent_total),
    )
