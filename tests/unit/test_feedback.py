"""Reviewer feedback: canary reveals, outcomes of approvals and quorum peers are built from the
ledger, delivered to the reviewers that have feedback on, and recorded as ``feedback.shown``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from coimprove import END, START, Approved, GatedState, Proposal, SqliteLedger, Workflow
from coimprove.errors import CoimproveError
from coimprove.feedback import FeedbackBuilder, feedback_for, record_feedback
from coimprove.headless import run_headless
from coimprove.model import FeedbackItem
from coimprove.reviewers import ScriptedReviewer, profile_from_yaml
from coimprove.testing import Verdicts


class TruthState(GatedState, total=False):
    truth: str


def truth_workflow() -> Workflow:
    """propose (hidden truth from the run's inputs) -> review -> apply -> END."""
    wf = Workflow("fb", state=TruthState)

    @wf.agent("propose", kind="experiment")
    def propose(state: TruthState) -> Proposal:
        return Proposal(
            kind="experiment",
            title="lr sweep",
            payload={"lr": 0.1},
            author="agent:propose",
            truth=state.get("truth", "sound"),  # type: ignore[arg-type]
        )

    wf.gate("review", proposal_from="propose", on_approve="apply")

    def apply(state: TruthState, approved: Approved) -> dict[str, Any]:
        return {}

    wf.effect("apply", apply, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    return wf


class Planted:
    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        return proposal.model_copy(update={"payload": {"lr": 100.0}}), "lr_x1000"


def _policy(tmp_path: Path, **defaults: Any) -> str:
    lines = [f"  {k}: {v}" for k, v in defaults.items()]
    path = tmp_path / "p.yaml"
    path.write_text("name: fbtest\ndefaults:\n" + "\n".join(lines) + "\n")
    return str(path)


def _shown(db: Path) -> list[tuple[str | None, str | None, dict[str, Any]]]:
    with SqliteLedger(db) as ledger:
        return [(e.actor, e.gate_id, e.data) for e in ledger.events(types=["feedback.shown"])]


async def test_a_missed_canary_and_an_outcome_are_shown_and_recorded(tmp_path: Path) -> None:
    alice = Verdicts(["approve"], id="alice")
    result = await run_headless(
        truth_workflow(),
        [alice],
        db=tmp_path / "l.db",
        policy=_policy(tmp_path, canary_rate=0.999),
        canaries=Planted(),
        feedback_to=["alice"],
    )
    shown = _shown(result.db or tmp_path / "l.db")
    assert [(who, data["kind"]) for who, _, data in shown] == [
        ("alice", "canary"),
        ("alice", "outcome"),
    ]
    (_, canary_gate, canary), (_, real_gate, outcome) = shown
    assert canary_gate != real_gate
    assert canary["lesson"] is True and canary["correct"] is False
    assert canary["verdict"] == "approve"
    assert "a miss" in canary["explanation"] and "lr_x1000" in canary["explanation"]
    assert outcome["correct"] is True and outcome["lesson"] is False
    assert outcome["detail"]["status"] == "finished" and outcome["detail"]["truth"] == "sound"


async def test_approving_a_flawed_proposal_is_a_lesson_once_it_has_run(tmp_path: Path) -> None:
    result = await run_headless(
        truth_workflow(),
        [Verdicts(["approve"], id="alice")],
        inputs={"truth": "flawed"},
        db=tmp_path / "l.db",
        feedback_to=True,
    )
    ((who, _, item),) = _shown(result.db or tmp_path / "l.db")
    assert who == "alice" and item["kind"] == "outcome"
    assert item["lesson"] is True and "turned out flawed" in item["explanation"]


async def test_quorum_peers_see_how_the_others_decided(tmp_path: Path) -> None:
    alice, bob = Verdicts(["approve"], id="alice"), Verdicts(["approve"], id="bob")
    result = await run_headless(
        truth_workflow(),
        [alice, bob],
        db=tmp_path / "l.db",
        policy=_policy(tmp_path, quorum=2),
        feedback_to=["alice"],  # bob has feedback off
    )
    shown = _shown(result.db or tmp_path / "l.db")
    assert {who for who, _, _ in shown} == {"alice"}
    peers = [d for _, _, d in shown if d["kind"] == "peers"]
    assert peers[0]["detail"]["others"] == {"bob": "approve"}
    assert peers[0]["detail"]["agreed"] is True


async def test_no_feedback_is_shown_when_it_is_off(tmp_path: Path) -> None:
    result = await run_headless(
        truth_workflow(),
        [Verdicts(["approve"], id="alice")],
        inputs={"truth": "flawed"},
        db=tmp_path / "l.db",
    )
    assert _shown(result.db or tmp_path / "l.db") == []
    with SqliteLedger(result.db or tmp_path / "l.db") as ledger:
        # what a front end would show, built on demand
        (item,) = feedback_for(ledger, "alice", include_truth=True)
        assert item.kind == "outcome" and item.lesson
        assert feedback_for(ledger, "alice")[0].correct is None  # no truth, no verdict on it
        assert feedback_for(ledger, "bob") == []


async def test_feedback_to_an_unknown_reviewer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CoimproveError, match="carol"):
        await run_headless(
            truth_workflow(),
            [Verdicts(["approve"], id="alice")],
            db=tmp_path / "l.db",
            feedback_to=["carol"],
        )


async def test_shown_feedback_is_not_built_again(tmp_path: Path) -> None:
    result = await run_headless(
        truth_workflow(),
        [Verdicts(["approve"], id="alice")],
        inputs={"truth": "flawed"},
        db=tmp_path / "l.db",
    )
    with SqliteLedger(result.db or tmp_path / "l.db") as ledger:
        items = feedback_for(ledger, "alice")
        (event,) = record_feedback(ledger, items, at=5.0)
        assert event.type == "feedback.shown" and event.actor == "alice"
        assert feedback_for(ledger, "alice") == []
        assert len(feedback_for(ledger, "alice", unseen=False)) == 1
        builder = FeedbackBuilder(ledger)
        assert builder.new() == []  # a new builder counts what earlier sessions showed


def _item(kind: str, lesson: bool) -> FeedbackItem:
    return FeedbackItem(
        kind=kind,  # type: ignore[arg-type]
        reviewer="r",
        gate_id="g",
        verdict="approve",
        lesson=lesson,
        source_seq=1,
    )


def test_a_learning_reviewer_counts_only_lessons_of_the_kinds_it_learns_from() -> None:
    profile = profile_from_yaml("name: l\nlearning: {catch_gain: 0.1, from: [canary]}\n")
    reviewer = ScriptedReviewer(profile, id="r", seed=0)
    reviewer.observe(_item("canary", True))
    reviewer.observe(_item("canary", False))
    reviewer.observe(_item("outcome", True))
    assert (reviewer.lessons, reviewer.feedback_seen) == (1, 3)
    plain = ScriptedReviewer(profile_from_yaml("name: p\n"), id="p", seed=0)
    plain.observe(_item("canary", True))
    assert plain.lessons == 0
