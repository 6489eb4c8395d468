"""The synthetic ablation graph: seeded hidden truth, revisions, canaries and the fake model."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from langchain_core.messages import HumanMessage

from coimprove.ablate.spec import SyntheticSpec
from coimprove.ablate.synthetic import (
    CUES,
    SYNTHETIC_TAG,
    SyntheticCanaries,
    _truth,
    sweep_model,
    synthetic_workflow,
)
from coimprove.agents.reviewer import ModelReviewer
from coimprove.model import Proposal
from coimprove.state import CanarySource
from coimprove.testing import proposal


def test_new_proposals_follow_the_truth_shares() -> None:
    options = SyntheticSpec(truth={"sound": 0.5, "flawed": 0.3, "dead_end": 0.2})
    rng = random.Random(0)
    counts = Counter(_truth(options, rng, None) for _ in range(20_000))
    assert counts["sound"] / 20_000 == pytest.approx(0.5, abs=0.015)
    assert counts["flawed"] / 20_000 == pytest.approx(0.3, abs=0.015)
    assert counts["dead_end"] / 20_000 == pytest.approx(0.2, abs=0.015)


def test_revisions_fix_flaws_at_the_fix_rate_and_abandon_dead_ends() -> None:
    options = SyntheticSpec(fix_rate=0.25, truth={"sound": 1.0})
    rng = random.Random(1)
    fixed = Counter(_truth(options, rng, "flawed") for _ in range(20_000))
    assert fixed["sound"] / 20_000 == pytest.approx(0.25, abs=0.015)
    assert {_truth(options, rng, "dead_end") for _ in range(100)} == {"sound"}  # fresh draw
    assert {_truth(options, rng, "sound") for _ in range(100)} == {"sound"}


async def test_the_graph_labels_every_proposal_and_hides_the_label() -> None:
    from coimprove.ablate.synthetic import synthetic_inputs
    from coimprove.testing import Verdicts, run_scripted

    seen: list[Proposal] = []

    def approve(request: object) -> object:
        from coimprove.model import Decision

        assert request.proposal.truth is None  # type: ignore[attr-defined]
        seen.append(request.proposal)  # type: ignore[attr-defined]
        return Decision(
            verdict="approve",
            reviewer="tester",
            digest=request.proposal.digest,  # type: ignore[attr-defined]
        )

    result = await run_scripted(
        synthetic_workflow(SyntheticSpec()),
        Verdicts([approve]),
        inputs=synthetic_inputs(0, seed=5, steps=4),
    )
    assert result.info.state == "finished" and len(seen) == 4
    assert result.state["shipped"] == 4
    assert set(result.report.by_proposal_kind) == {"idea", "experiment", "code"}
    from coimprove.ledger import SqliteLedger

    with SqliteLedger(result.db) as ledger:
        labels = [r[0] for r in ledger.query("SELECT truth FROM events WHERE type='gate.opened'")]
    assert len(labels) == 4 and set(labels) <= {"sound", "flawed", "dead_end"}
    assert all(SYNTHETIC_TAG in p.tags for p in seen)


def test_canaries_plant_a_flaw_only_in_synthetic_proposals() -> None:
    source: CanarySource = SyntheticCanaries(visible_rate=1.0)
    original = proposal(tags=(SYNTHETIC_TAG,), payload={"eval_split": "test", "seeds": 5})
    made = source.mutate(original, random.Random(3))
    assert made is not None
    flawed, kind = made
    assert kind.startswith("synthetic:") and flawed.truth == "flawed"
    assert flawed.digest != original.digest and flawed.payload != original.payload
    assert any(cue in flawed.body.lower() for cue in CUES)  # visible_rate=1: a symptom shows
    assert source.mutate(proposal(), random.Random(3)) is None


async def test_the_fake_reviewer_sends_back_what_shows_a_symptom() -> None:
    from coimprove.model import GateRequest, Requirement
    from coimprove.protocols import ReviewContext
    from coimprove.reviewers import FixedClock

    reviewer = ModelReviewer(sweep_model("fake"), id="ai-1", think_s=5)
    requirement = Requirement(
        policy="p",
        rule="defaults",
        roles=("reviewer",),
        quorum=1,
        reviewer_kinds=("model",),
        allowed=("approve", "reject", "request_changes"),
        timeout_s=None,
        on_timeout="reject",
        min_review_seconds=0,
        escalation=(),
    )
    verdicts = {}
    for body in ("A clean plan.", "A single seed was run; no variance is reported."):
        request = GateRequest(
            gate_id=f"g-{len(verdicts)}",
            run_id="r",
            graph="ablation",
            gate="review",
            round=1,
            proposal=proposal(body=body),
            requirement=requirement,
        )
        review = await reviewer.review(request, ReviewContext(clock=FixedClock(0.0)))
        verdicts[body] = review.decision.verdict
        assert review.decided_at == 5.0
    assert verdicts == {
        "A clean plan.": "approve",
        "A single seed was run; no variance is reported.": "request_changes",
    }
    title = sweep_model("fake").invoke([HumanMessage("Write a one-line title: try dropout.")])
    assert "dropout" in str(title.content) and not str(title.content).startswith("{")
