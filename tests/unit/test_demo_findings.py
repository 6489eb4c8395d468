"""The demo's findings come from the ledger: planted experiment metrics and reviewer decisions
are recovered exactly, with intervals that cover them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coimprove import SqliteLedger
from coimprove.cli import with_model_input
from coimprove.demo_findings import (
    ReviewerOversight,
    finding_markdown,
    oversight_verdict,
    research_finding,
)
from coimprove.errors import CoimproveError
from coimprove.metrics.stats import mean_interval
from coimprove.runner import load_workflow

ACCURACY = {"r-a": 0.93, "r-b": 0.91, "r-c": 0.95, "r-d": 0.55}
BASELINE = 0.5575


def _ledger(path: Path) -> SqliteLedger:
    ledger = SqliteLedger(path)
    for i, (rid, acc) in enumerate(ACCURACY.items()):
        model = "logistic" if rid == "r-d" else "mlp"
        # a first (replaced) record, then the one that counts: the run's last
        for value in (0.1, acc):
            ledger.append(
                "experiment.recorded",
                at=float(i),
                run_id=rid,
                gate_id=f"{rid}.experiment_gate.1",
                data={
                    "metrics": {
                        "model": model,
                        "hidden_units": 16 if model == "mlp" else 0,
                        "features": "raw",
                        "seed": i,
                        "held_out_accuracy": value,
                        "diverged": False,
                        "baseline": {"held_out_accuracy": BASELINE},
                    }
                },
            )
    return ledger


def test_the_finding_recovers_the_recorded_accuracies_and_report_md_shows_them(
    tmp_path: Path,
) -> None:
    with _ledger(tmp_path / "l.db") as ledger:
        finding = research_finding(ledger, [*ACCURACY, "r-never-ran"])
    assert [c.held_out_accuracy for c in finding.cycles] == list(ACCURACY.values())
    assert finding.runs == 5 and finding.beat == 3
    assert finding.method is not None and finding.baseline is not None
    mean = sum(ACCURACY.values()) / 4
    assert finding.method.mean == pytest.approx(mean)
    assert finding.method.low < mean < finding.method.high
    assert finding.baseline.low == finding.baseline.high == pytest.approx(BASELINE)
    md = finding_markdown(finding)
    table = {
        m[0]: float(m[1]) for m in re.findall(r"\| (r-\w) \| \d+ \| [^|]+ \| ([0-9.]+) \|", md)
    }
    assert table == ACCURACY  # REPORT.md's numbers are the ledger's
    assert f"{mean:.3f}" in md and "3 of 4 runs beat it" in md
    assert "1 run(s) ended before an experiment ran" in md


def test_intervals_stay_within_what_an_accuracy_can_be(tmp_path: Path) -> None:
    """Two seeds (0.557 and 0.830, as a demo run measured): the t interval of the mean runs
    to about [-1.04, 2.43]; the finding clips it to [0, 1] (and the difference to [-1, 1])."""
    ledger = SqliteLedger(tmp_path / "l.db")
    for i, acc in enumerate((0.557, 0.830)):
        ledger.append(
            "experiment.recorded",
            at=float(i),
            run_id=f"r-{i}",
            gate_id=f"r-{i}.experiment_gate.1",
            data={
                "metrics": {
                    "model": "mlp",
                    "held_out_accuracy": acc,
                    "baseline": {"held_out_accuracy": BASELINE},
                }
            },
        )
    with ledger:
        f = research_finding(ledger, ["r-0", "r-1"])
    assert f.method is not None and f.difference is not None
    raw = mean_interval([0.557, 0.830])
    assert raw is not None and raw[1] < 0 and raw[2] > 1  # what clipping guards against
    assert (f.method.low, f.method.high) == (0.0, 1.0)
    assert -1.0 <= f.difference.low < f.difference.high <= 1.0


def test_mean_interval_is_the_student_t_interval() -> None:
    got = mean_interval([1.0, 2.0, 3.0])
    assert got is not None
    assert got[0] == pytest.approx(2.0)
    assert got[2] - got[0] == pytest.approx(4.303 * 1.0 / 3**0.5, rel=1e-4)
    assert mean_interval([]) is None and mean_interval([0.5]) == (0.5, 0.5, 0.5)


def _row(rid: str, caught: int, n: int, lo: float, hi: float) -> ReviewerOversight:
    return ReviewerOversight(
        reviewer=rid, decisions=20, approvals=10, rubber_stamps=1, rubber_stamp_rate=0.1,
        rubber_stamp_ci=(0.0, 0.4), canaries=n, caught=caught, catch_rate=caught / n,
        catch_ci=(lo, hi),
    )  # fmt: skip


def test_the_verdict_line_names_who_caught_more_and_whether_it_is_chance() -> None:
    apart = oversight_verdict([_row("careful-1", 9, 10, 0.6, 0.98), _row("stamp-2", 0, 10, 0, 0.3)])
    assert "careful-1 stopped 9/10" in apart and "stamp-2 0/10" in apart
    assert "not chance" in apart
    close = oversight_verdict([_row("a", 5, 10, 0.2, 0.8), _row("b", 4, 10, 0.15, 0.7)])
    assert "overlap" in close
    assert "Not enough" in oversight_verdict([_row("a", 5, 10, 0.2, 0.8)])


def test_run_model_sets_the_model_input_and_refuses_conflicts_and_graphs_without_one() -> None:
    rc = load_workflow("research_cycle")
    assert with_model_input(rc, {"topic": "t"}, "fake") == {"topic": "t", "model": "fake"}
    assert with_model_input(rc, {"model": "fake"}, "fake") == {"model": "fake"}
    with pytest.raises(CoimproveError, match="differ"):
        with_model_input(rc, {"model": "local"}, "fake")
    assert with_model_input(load_workflow("benchmark_cocreation"), {}, "fake")["model"] == "fake"
    with pytest.raises(CoimproveError, match="takes no 'model' input"):
        with_model_input(load_workflow("behavior_diff"), {}, "fake")
