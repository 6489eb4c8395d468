"""Measurement validity for learning: a headless run of a reviewer whose profile learns at a
configured rate, with feedback on, and the report recovers that rate from the ledger alone."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coimprove import END, START, Approved, GatedState, Proposal, SqliteLedger, Workflow
from coimprove.errors import ReviewerConfigError
from coimprove.headless import run_headless
from coimprove.metrics import report
from coimprove.reviewers import ScriptedReviewer, load_profile, profile_from_yaml

GAIN = 0.01
TOLERANCE = 0.004  # about two standard errors of the fitted slope at this size

PROFILE = f"""
name: validity-learner
pickup: 0
review_time: 60
catch_rate: 0.2
false_alarm_rate: 0.0
changes_share: 0.0
learning: {{catch_gain: {GAIN}, max_catch_rate: 0.95, from: [outcome]}}
"""


class ItemState(GatedState, total=False):
    item: int


def coin_workflow() -> Workflow:
    """Each run proposes one setup, flawed for half the items (hidden truth)."""
    wf = Workflow("validity", state=ItemState)

    @wf.agent("propose", kind="experiment")
    def propose(state: ItemState) -> Proposal:
        flawed = random.Random(state["item"]).random() < 0.5
        return Proposal(
            kind="experiment",
            title=f"item {state['item']}",
            payload={"lr": 10.0 if flawed else 1e-3},
            author="agent:propose",
            truth="flawed" if flawed else "sound",
        )

    wf.gate("review", proposal_from="propose", on_approve="apply")

    def apply(state: ItemState, approved: Approved) -> dict[str, object]:
        return {}

    wf.effect("apply", apply, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    return wf


async def _run(db: Path, feedback: bool) -> ScriptedReviewer:
    reviewer = ScriptedReviewer(profile_from_yaml(PROFILE), id="learner", seed=1)
    await run_headless(
        coin_workflow(),
        [reviewer],
        runs=300,
        inputs=lambda i: {"item": i},
        db=db,
        feedback_to=["learner"] if feedback else False,
        run_ids=lambda i: f"v-{i:04d}",  # reproducible: reviewers draw per gate id
    )
    return reviewer


async def test_the_report_recovers_the_configured_learning_rate(tmp_path: Path) -> None:
    reviewer = await _run(tmp_path / "on.db", feedback=True)
    with SqliteLedger(tmp_path / "on.db") as ledger:
        m = report(ledger).co_improvement.reviewers["learner"]
    assert m.lessons == reviewer.lessons > 30  # every lesson delivered is in the ledger
    fit = m.catch_per_lesson
    assert fit.slope is not None and fit.low is not None and fit.high is not None
    assert abs(fit.slope - GAIN) < TOLERANCE
    assert fit.low <= GAIN <= fit.high
    assert fit.intercept == pytest.approx(0.2, abs=0.1)
    first, last = m.catch_by_gate[0], m.catch_by_gate[-1]
    assert last.rate is not None and first.rate is not None and last.rate > first.rate + 0.2


async def test_without_feedback_the_same_reviewer_does_not_learn(tmp_path: Path) -> None:
    reviewer = await _run(tmp_path / "off.db", feedback=False)
    with SqliteLedger(tmp_path / "off.db") as ledger:
        m = report(ledger).co_improvement.reviewers["learner"]
    assert reviewer.lessons == m.lessons == m.feedback_shown == 0
    assert m.catch_per_lesson.slope is None  # nobody learnt anything: no spread to fit
    fit = m.catch_per_gate
    assert fit.low is not None and fit.high is not None and fit.low < 0 < fit.high


def test_learning_block_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nlearning:\n  catch_gain: 2\n")
    with pytest.raises(ReviewerConfigError, match=r"bad.yaml:3: .*learning.catch_gain"):
        load_profile(path)
    with pytest.raises(ReviewerConfigError, match=r"learning.from"):
        profile_from_yaml("name: x\nlearning: {from: [gossip]}\n")
    with pytest.raises(ReviewerConfigError, match=r"learning.rate: unknown field"):
        profile_from_yaml("name: x\nlearning: {rate: 0.1}\n")


def test_lessons_raise_catch_rate_up_to_the_cap_and_lower_skimming() -> None:
    p = load_profile("learner")
    assert p.learning is not None
    assert p.effective_catch_rate(0.0, lessons=0) == p.catch_rate
    assert p.effective_catch_rate(0.0, lessons=2) == pytest.approx(
        p.catch_rate + 2 * p.learning.catch_gain
    )
    assert p.effective_catch_rate(0.0, lessons=10_000) == p.learning.max_catch_rate
    assert p.effective_skim_rate(0, 0.0, lessons=3) == pytest.approx(
        p.skim_rate - 3 * p.learning.skim_drop
    )
    plain = profile_from_yaml("name: plain\ncatch_rate: 0.5\n")
    assert plain.effective_catch_rate(0.0, lessons=50) == 0.5
