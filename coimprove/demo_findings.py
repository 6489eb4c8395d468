"""What ``coimprove demo`` found, computed from the ledger only (never typed in).

Two findings, each with 95% intervals:

- `research_finding`: the held-out accuracy the approved methods reached over the
  research_cycle runs (one run per seed), beside the baseline trained in the same sandbox runs,
  from the ``experiment.recorded`` events; `finding_markdown` renders it for REPORT.md.
- `reviewer_oversight`: each reviewer's rubber-stamp rate and canary catch rate (Wilson
  intervals) from the oversight report, and `oversight_verdict`, one line on what the
  difference between the most and the least vigilant reviewer means.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from rich import box
from rich.table import Table

from coimprove.metrics import Report
from coimprove.metrics.stats import mean_interval, wilson
from coimprove.protocols import LedgerReader

Interval = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CycleResult(_Model):
    """One research_cycle run's executed experiment (its last ``experiment.recorded``)."""

    run_id: str
    seed: int | None
    method: str
    held_out_accuracy: float
    baseline_held_out_accuracy: float
    diverged: bool

    @property
    def beats_baseline(self) -> bool:
        return self.held_out_accuracy > self.baseline_held_out_accuracy


class MeanCI(_Model):
    mean: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.mean:.3f} [95% CI {self.low:.3f}, {self.high:.3f}]"


class ResearchFinding(_Model):
    """The approved methods against the baseline, over the runs that executed an experiment."""

    runs: int
    """research_cycle runs looked at (some may have ended before an experiment ran)."""
    cycles: list[CycleResult]
    method: MeanCI | None
    baseline: MeanCI | None
    difference: MeanCI | None
    """Paired: method minus baseline within each run."""
    beat: int
    beat_ci: Interval | None
    """Wilson interval of the share of executed cycles whose method beat the baseline."""


def _label(metrics: dict[str, object]) -> str:
    model, features = metrics.get("model"), metrics.get("features")
    if model == "mlp":
        return f"MLP ({metrics.get('hidden_units')} hidden units)"
    return "quadratic features" if features == "quadratic" else "logistic regression (raw x, y)"


def research_finding(ledger: LedgerReader, run_ids: Sequence[str]) -> ResearchFinding:
    """The finding over `run_ids` (research_cycle runs), from their recorded experiments."""
    cycles = []
    for rid in run_ids:
        recorded = [
            e
            for e in ledger.events(run_id=rid, types=["experiment.recorded"])
            if isinstance((e.data.get("metrics") or {}).get("held_out_accuracy"), float)
            and isinstance(
                (e.data["metrics"].get("baseline") or {}).get("held_out_accuracy"), float
            )
        ]
        if not recorded:
            continue
        m = recorded[-1].data["metrics"]
        seed = m.get("seed")
        cycles.append(
            CycleResult(
                run_id=rid,
                seed=seed if isinstance(seed, int) else None,
                method=_label(m),
                held_out_accuracy=m["held_out_accuracy"],
                baseline_held_out_accuracy=m["baseline"]["held_out_accuracy"],
                diverged=bool(m.get("diverged")),
            )
        )

    def ci(values: list[float], lo: float = 0.0, hi: float = 1.0) -> MeanCI | None:
        """Student-t interval of the mean, clipped to the range the quantity can take (with two
        or three seeds the t interval of an accuracy runs far outside [0, 1])."""
        got = mean_interval(values)
        if got is None:
            return None
        return MeanCI(mean=got[0], low=max(lo, got[1]), high=min(hi, got[2]))

    beat = sum(c.beats_baseline for c in cycles)
    return ResearchFinding(
        runs=len(run_ids),
        cycles=cycles,
        method=ci([c.held_out_accuracy for c in cycles]),
        baseline=ci([c.baseline_held_out_accuracy for c in cycles]),
        difference=ci(
            [c.held_out_accuracy - c.baseline_held_out_accuracy for c in cycles], lo=-1.0
        ),
        beat=beat,
        beat_ci=wilson(beat, len(cycles)),
    )


def finding_sentence(f: ResearchFinding) -> str:
    """The finding in one sentence (or why there is none)."""
    if not f.cycles or f.method is None or f.baseline is None or f.difference is None:
        return f"No finding: none of the {f.runs} runs executed an approved experiment."
    n = len(f.cycles)
    better = "beat" if f.difference.low > 0 else "did not clearly beat"
    return (
        f"Over {n} seeds, the approved methods reached held-out accuracy {f.method.text()}, "
        f"against {f.baseline.text()} for the baseline trained in the same runs: they {better} "
        f"it (paired difference {f.difference.text()}; {f.beat} of {n} runs beat it)."
    )


def finding_markdown(f: ResearchFinding) -> str:
    """REPORT.md: the finding and the table of runs it comes from."""
    rows = "\n".join(
        f"| {c.run_id} | {c.seed} | {c.method} | {c.held_out_accuracy:.4f} | "
        f"{c.baseline_held_out_accuracy:.4f} | {'yes' if c.beats_baseline else 'no'} |"
        for c in f.cycles
    )
    skipped = f.runs - len(f.cycles)
    return (
        "# Demo finding: the rings classifier\n\n"
        f"{finding_sentence(f)}\n\n"
        "Every number below is read from the ledger's `experiment.recorded` events (the metrics "
        "the sandboxed `train.py` wrote), not written by a model. The baseline (logistic "
        "regression on raw x, y) is trained in each run beside the approved method, with the "
        "same data and seed. Intervals: Student t over seeds (95%).\n\n"
        "| run | seed | approved method | held-out accuracy | baseline | beats it |\n"
        "|---|---|---|---|---|---|\n"
        f"{rows}\n"
        + (
            f"\n{skipped} run(s) ended before an experiment ran (rejected at a gate, or failed).\n"
            if skipped
            else ""
        )
    )


# -- oversight per reviewer -------------------------------------------------------------------


class ReviewerOversight(_Model):
    reviewer: str
    decisions: int
    approvals: int
    rubber_stamps: int
    rubber_stamp_rate: float | None
    rubber_stamp_ci: Interval | None
    canaries: int
    caught: int
    catch_rate: float | None
    catch_ci: Interval | None


def reviewer_oversight(report: Report) -> list[ReviewerOversight]:
    """Each reviewer's rubber-stamp and canary catch rates with 95% Wilson intervals."""
    out = []
    for rid, m in sorted(report.by_reviewer.items()):
        approvals = m.verdicts.get("approve", 0) + m.verdicts.get("edit", 0)
        out.append(
            ReviewerOversight(
                reviewer=rid,
                decisions=m.decisions,
                approvals=approvals,
                rubber_stamps=m.rubber_stamps,
                rubber_stamp_rate=m.rubber_stamp_rate,
                rubber_stamp_ci=wilson(m.rubber_stamps, approvals),
                canaries=m.canary.n,
                caught=m.canary.caught,
                catch_rate=m.canary.catch_rate,
                catch_ci=wilson(m.canary.caught, m.canary.n),
            )
        )
    return out


def _rate(hits: int, n: int, value: float | None) -> str:
    return f"{hits}/{n} " + ("-" if value is None else f"{value:.2f}")


def _ci(ci: Interval | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def oversight_table(rows: Sequence[ReviewerOversight]) -> Table:
    """One row per reviewer: rubber stamps / approvals and canaries caught / decided, each
    with its 95% Wilson interval."""
    table = Table(
        "reviewer",
        "rubber-stamped",
        "95% CI",
        "canaries caught",
        "95% CI",
        title="oversight per reviewer (every gate decided by each)",
        box=box.SIMPLE_HEAD,
    )
    for r in rows:
        table.add_row(
            r.reviewer,
            _rate(r.rubber_stamps, r.approvals, r.rubber_stamp_rate),
            _ci(r.rubber_stamp_ci),
            _rate(r.caught, r.canaries, r.catch_rate),
            _ci(r.catch_ci),
        )
    return table


def oversight_verdict(rows: Sequence[ReviewerOversight]) -> str:
    """One line: how the most and the least vigilant reviewer differ, and what it means."""
    rated = [(r, r.catch_rate, r.catch_ci) for r in rows if r.catch_rate is not None and r.catch_ci]
    if len(rated) < 2:
        return "Not enough canaries decided by two reviewers to compare their vigilance."
    best, best_rate, best_ci = max(rated, key=lambda t: (t[1], -(t[0].rubber_stamp_rate or 0)))
    worst, worst_rate, worst_ci = min(rated, key=lambda t: (t[1], -(t[0].rubber_stamp_rate or 0)))
    if best_rate == worst_rate:
        return "Both reviewers caught the same share of planted flaws: no difference measured."
    apart = best_ci[0] > worst_ci[1]
    how = (
        "the intervals do not overlap, so the difference is not chance"
        if apart
        else "the intervals overlap: more gates are needed to be sure"
    )
    return (
        f"On the same gates, {best.reviewer} stopped {best.caught}/{best.canaries} planted flaws "
        f"and {worst.reviewer} {worst.caught}/{worst.canaries} ({how}): an approval by "
        f"{worst.reviewer} says little about whether a proposal is sound."
    )


__all__ = [
    "CycleResult",
    "ResearchFinding",
    "ReviewerOversight",
    "finding_markdown",
    "finding_sentence",
    "oversight_table",
    "oversight_verdict",
    "research_finding",
    "reviewer_oversight",
]
