"""Dead ends as cost and whether edits help: planted truths (known reviewer time, known pursuit
of shipped dead ends, known repair rate of edits) are recovered from the cells' ledgers."""

from __future__ import annotations

from pathlib import Path

import pytest

from coimprove.ablate.cells import CellResult
from coimprove.ablate.costs import DeadEndCost, dead_end_cost
from coimprove.ablate.edits import edit_outcomes, newcombe
from coimprove.ablate.executors import InlineExecutor
from coimprove.ablate.report import SweepReport
from coimprove.ablate.spec import spec_from_yaml
from coimprove.ablate.sweep import run_sweep
from coimprove.errors import SweepError
from coimprove.ledger import SqliteLedger

# Always stops a bad proposal, never a sound one, takes exactly 100 s, never edits.
STOPPER = """\
name: stopper
skim_rate: 0
review_time: 100
catch_rate: 1
false_alarm_rate: 0
changes_share: 1
"""
# Approves everything after exactly 50 s of review, editing every approval.
EDITOR = """\
name: editor
skim_rate: 0
review_time: 50
catch_rate: 0
false_alarm_rate: 0
edit_rate: {edit_rate}
"""


def sweep(tmp: Path, body: str, **files: str) -> tuple[SweepReport, list[CellResult]]:
    for name, text in files.items():
        (tmp / f"{name}.yaml").write_text(text)
    spec = spec_from_yaml(body, base_dir=tmp)
    outcome = run_sweep(spec, tmp / "out", executor=InlineExecutor(), progress=False)
    assert outcome.ok, outcome.failed
    assert outcome.report is not None
    return outcome.report, outcome.results


def _by_arm(report: SweepReport) -> dict[str, DeadEndCost]:
    return {c.label: c for c in report.dead_end_cost}


def test_reviewer_time_on_dead_ends_is_what_the_reviewer_spent(tmp_path: Path) -> None:
    report, results = sweep(
        tmp_path,
        """\
name: cost
synthetic: {truth: {sound: 0.6, dead_end: 0.4}}
reviewers:
  - {name: stopper, profile: stopper.yaml}
  - {name: autonomous, profile: autonomous}
seeds: 2
runs_per_cell: 10
gates_per_run: 5
""",
        stopper=STOPPER,
    )
    costs = _by_arm(report)
    people, auto = costs["human_in_the_loop"], costs["autonomous"]
    # every proposal is reviewed once for exactly 100 s: reviewer time on dead ends is 100 s
    # per dead-end step, and its share of reviewer time is the dead ends' share of steps
    assert people.dead_end_proposals > 0
    assert people.reviewer_s_per_run.value == pytest.approx(100 * people.steps_per_run.value)
    assert people.reviewer_s_share == pytest.approx(people.dead_end_proposals / people.proposals)
    assert people.shipped.value == 0.0  # every dead end stopped
    assert auto.shipped.value == 1.0 and auto.reviewer_s_per_run.value == 0.0
    assert people.runs == auto.runs == 20
    # the intervals are real ones, over runs
    lo, hi = people.steps_per_run.lo, people.steps_per_run.hi
    assert lo is not None and hi is not None and lo < people.steps_per_run.value < hi
    # every proposal's agent model call is attributed to it: the ledger's agent seconds
    for result in results:
        assert result.measures is not None
        cols = result.measures.proposals
        with SqliteLedger(Path(result.ledger)) as ledger:
            ((calls, secs),) = ledger.query(
                "SELECT COUNT(*), SUM(latency_s) FROM events WHERE type = 'model.called' "
                "AND gate_id IS NULL"
            )
        assert calls == len(cols) and all(s > 0 for s in cols.agent_model_s)
        assert sum(cols.agent_model_s) == pytest.approx(secs, abs=1e-3)
    assert "## Dead ends as cost" in (tmp_path / "out" / "report.md").read_text()


def test_a_shipped_dead_end_is_pursued_for_its_depth_only_when_it_ships(tmp_path: Path) -> None:
    body = """\
name: depth
synthetic: {{truth: {{sound: 0.8, dead_end: 0.2}}, dead_end_depth: {depth}}}
reviewers:
  - {{name: stopper, profile: stopper.yaml}}
  - {{name: autonomous, profile: autonomous}}
seeds: 1
runs_per_cell: 40
gates_per_run: 6
"""
    (tmp_path / "d0").mkdir()
    shallow, _ = sweep(tmp_path / "d0", body.format(depth=0), stopper=STOPPER)
    (tmp_path / "d3").mkdir()
    deep, _ = sweep(tmp_path / "d3", body.format(depth=3), stopper=STOPPER)
    s, d = _by_arm(shallow), _by_arm(deep)
    # autonomy ships every dead end, and with depth 3 pursues it: more steps go to dead ends
    assert d["autonomous"].steps_per_run.value > s["autonomous"].steps_per_run.value + 0.5
    # a reviewer who stops every dead end never pursues one: the same steps at any depth
    assert d["human_in_the_loop"].dead_end_proposals == s["human_in_the_loop"].dead_end_proposals


def test_the_self_critique_arm_reviews_with_the_agents_own_model(tmp_path: Path) -> None:
    report, results = sweep(
        tmp_path,
        """\
name: selfcrit
synthetic: {truth: {sound: 0.5, dead_end: 0.5}, visible_rate: 1.0}
reviewers:
  - {name: self, model: agent, think_s: 20}
  - {name: autonomous, profile: autonomous}
seeds: 1
runs_per_cell: 10
gates_per_run: 4
""",
    )
    costs = _by_arm(report)
    own = costs["self_critique"]
    # the critic reads the proposal: every dead end shows its symptom and is sent back
    assert own.shipped.value == 0.0 and costs["autonomous"].shipped.value == 1.0
    assert own.reviewer_s_per_run.value == pytest.approx(20 * own.steps_per_run.value)
    assert own.reviewer_model_s_per_run.value is not None
    assert own.reviewer_model_s_per_run.value > 0  # its model calls are on the record
    assert report.reviewer_modes["self"] == "self-critique (agent's model)"
    assert report.reviewer_modes["autonomous"] == "scripted autonomous, catch_mode label"
    cell = next(r for r in results if r.cell.panel.name == "self")
    assert cell.arm == "self_critique"


def test_self_critique_needs_the_agent_model() -> None:
    with pytest.raises(SweepError, match="self_critique"):
        spec_from_yaml("name: x\nreviewers: [{name: s, model: fake, arm: self_critique}]\n")
    with pytest.raises(SweepError, match="self_critique"):
        spec_from_yaml("name: x\nreviewers: [{name: s, profile: careful, arm: self_critique}]\n")


@pytest.mark.parametrize("fix_rate", [0.0, 0.5, 1.0])
def test_edits_that_repair_are_told_apart_from_edits_that_do_not(
    tmp_path: Path, fix_rate: float
) -> None:
    report, results = sweep(
        tmp_path,
        f"""\
name: edits
synthetic: {{truth: {{sound: 0.5, flawed: 0.5}}, edit_fix_rate: {fix_rate}}}
reviewers:
  - {{name: editor, profile: editor.yaml}}
seeds: 2
runs_per_cell: 25
gates_per_run: 4
""",
        editor=EDITOR.format(edit_rate=0.5),
    )
    (edits,) = report.edit_outcomes
    w = edits.overall
    assert w.edited > 50 and w.approved_unedited > 50
    assert w.edited_bad_as_proposed.value == pytest.approx(0.5, abs=0.15)
    repaired = w.repaired
    assert repaired.lo is not None and repaired.hi is not None
    assert repaired.lo <= fix_rate <= repaired.hi  # the planted repair rate is recovered
    if fix_rate == 0.0:
        assert repaired.value == 0.0
        assert w.edited_bad_shipped.value == w.edited_bad_as_proposed.value
        assert w.difference.lo is not None and w.difference.hi is not None
        assert w.difference.lo < 0 < w.difference.hi  # noise: no detectable effect
    if fix_rate == 1.0:
        assert w.edited_bad_shipped.value == 0.0
        assert w.difference.hi is not None and w.difference.hi < 0  # edits help, clearly
    # windows partition the approvals; the report says it
    assert sum(x.edited for x in edits.windows) == w.edited and len(edits.windows) == 4
    # flaws shipped (the headline measure) counts what shipped, after the repair
    shipped_flaws = sum(r.measures.truth.flaws_shipped for r in results if r.measures)
    from_columns = sum(
        t in ("flawed", "dead_end")
        for r in results
        if r.measures
        for t in r.measures.proposals.shipped_truth
    )
    assert shipped_flaws == from_columns
    assert "## Do edits improve outcomes?" in (tmp_path / "out" / "report.md").read_text()


def test_newcombe_interval_brackets_the_difference() -> None:
    d = newcombe(30, 100, 10, 100)
    assert d.value == pytest.approx(0.2)
    assert d.lo is not None and d.hi is not None and 0.08 < d.lo < 0.2 < d.hi < 0.32
    assert newcombe(0, 0, 1, 2).value is None


def test_cost_and_edits_of_no_cells_are_empty_not_errors() -> None:
    assert dead_end_cost("none", []).steps_per_run.value is None
    assert edit_outcomes("none", []).overall.edited == 0
    with pytest.raises(ValueError, match="windows"):
        edit_outcomes("none", [], windows=0)
