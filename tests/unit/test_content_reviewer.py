"""Scripted reviewers that read content (``catch_mode: content``): the chance of saying no
depends on what the gate shows — the framework's resubmission flag, the risk, a safety
critique, symptom phrases, the proposal's size — and the configured rates are recovered."""

from __future__ import annotations

import math
from typing import Any

import pytest

from coimprove.errors import ReviewerConfigError
from coimprove.model import (
    GateRequest,
    Proposal,
    Requirement,
    Resubmission,
    Risk,
    Truth,
)
from coimprove.protocols import ReviewContext
from coimprove.reviewers.clock import FixedClock
from coimprove.reviewers.profiles import (
    ContentReading,
    ReviewerProfile,
    load_profile,
    profile_from_yaml,
)
from coimprove.reviewers.scripted import ScriptedReviewer

N = 4000

PROFILE = ReviewerProfile(
    name="reads",
    skim_rate=0.0,
    catch_rate=0.8,
    false_alarm_rate=0.05,
    changes_share=0.5,
    catch_mode="content",
    content=ContentReading(
        hidden_catch_rate=0.2,
        cue_false_alarm_rate=0.4,
        phrases=("no baseline",),
        size_halving_bytes=1000,
    ),
)


def request(
    i: int,
    *,
    body: str = "We try a change.",
    risk: Risk = "low",
    tags: tuple[str, ...] = (),
    resubmission: Resubmission | None = None,
    payload: dict[str, Any] | None = None,
) -> GateRequest:
    proposal = Proposal(
        kind="code",
        title=f"change {i}",
        body=body,
        author="agent:x",
        risk=risk,
        tags=tags,
        payload={"n": i} if payload is None else payload,
    )
    requirement = Requirement(
        policy="t",
        rule="r",
        roles=("reviewer",),
        quorum=1,
        reviewer_kinds=("scripted",),
        allowed=("approve", "reject", "request_changes"),
        timeout_s=None,
        on_timeout="reject",
        min_review_seconds=10.0,
        escalation=(),
    )
    return GateRequest(
        gate_id=f"run1.review.{i}",
        run_id="run1",
        graph="g",
        gate="review",
        round=1,
        proposal=proposal,
        requirement=requirement,
        resubmission=resubmission,
    )


def no_rate(profile: ReviewerProfile, truth: Truth, **shown: Any) -> float:
    """Share of N gates (same look, different ids) the reviewer rejects or sends back."""
    reviewer = ScriptedReviewer(profile, id="r-1", seed=3)
    said_no = 0
    for i in range(N):
        context = ReviewContext(clock=FixedClock(0.0), truth=truth)
        verdict = reviewer.simulate(request(i, **shown), context).decision.verdict
        said_no += verdict in ("reject", "request_changes")
    return said_no / N


def close(measured: float, expected: float) -> bool:
    """Within 4 binomial standard errors (the draws are seeded: no flakiness, only a bound)."""
    return abs(measured - expected) <= 4 * math.sqrt(expected * (1 - expected) / N) + 1e-9


UNCHANGED = Resubmission(change="unchanged", compared="payload+artifacts", similarity=1.0)


@pytest.mark.parametrize(
    ("shown", "cue"),
    [
        ({}, None),
        ({"body": "There is no baseline run."}, "phrase:no baseline"),
        ({"risk": "high"}, "risk:high"),
        ({"tags": ("safety-critique", "critic-risk:medium")}, "critic-risk:medium"),
        ({"resubmission": UNCHANGED}, "resubmission:unchanged"),
    ],
)
def test_what_the_gate_shows_sets_the_catch_and_false_alarm_rates(
    shown: dict[str, Any], cue: str | None
) -> None:
    reading = PROFILE.reading
    assert reading is not None
    cues = reading.cues(request(0, **shown))
    assert cues == (() if cue is None else (cue,))
    # a small payload: size factor 1 / (1 + size/1000) is about 0.99
    factor = reading.size_factor(request(0, **shown))
    visible = cue is not None
    expected_catch = (0.8 if visible else 0.2) * factor
    expected_alarm = 0.4 if visible else 0.05
    assert close(no_rate(PROFILE, "flawed", **shown), expected_catch)
    assert close(no_rate(PROFILE, "sound", **shown), expected_alarm)


def test_a_long_proposal_halves_the_catch_rate_at_the_halving_size() -> None:
    long = {"blob": "x" * 1000}
    shown = {"body": "There is no baseline run.", "payload": long}
    reading = PROFILE.reading
    assert reading is not None
    size = request(0, **shown).proposal.size
    assert 1000 < size < 1100
    expected = 0.8 / (1 + size / 1000)
    assert close(no_rate(PROFILE, "flawed", **shown), expected)
    assert no_rate(PROFILE, "flawed", **shown) < 0.45


def test_label_mode_ignores_what_the_gate_shows() -> None:
    label = PROFILE.model_copy(update={"catch_mode": "label", "content": None})
    assert label.reading is None
    plain = no_rate(label, "flawed")
    cued = no_rate(label, "flawed", body="There is no baseline run.", risk="high")
    assert plain == cued  # same draws, same verdicts: nothing visible matters
    assert close(plain, 0.8)


def test_a_skim_reads_the_title_and_flags_but_not_the_body() -> None:
    reading = ContentReading(phrases=("no baseline",))
    body_only = request(0, body="There is no baseline run.")
    assert reading.cues(body_only) == ("phrase:no baseline",)
    assert reading.cues(body_only, skim=True) == ()
    flagged = request(0, resubmission=UNCHANGED)
    assert reading.cues(flagged, skim=True) == ("resubmission:unchanged",)


def test_the_builtin_reader_profile_is_content_mode() -> None:
    reader = load_profile("reader")
    assert reader.catch_mode == "content"
    assert reader.reading is not None and "no baseline" in reader.reading.phrases
    assert load_profile("careful").catch_mode == "label"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ncatch_mode: psychic\n", "catch_mode"),
        ("name: x\ncontent: {hidden_catch_rate: 0.1}\n", "only used with `catch_mode: content`"),
        ("name: x\ncatch_mode: content\ncontent: {hidden_catch_rate: 1.5}\n", "hidden_catch_rate"),
        ("name: x\ncatch_mode: content\ncontent: {phrases: ['  ']}\n", "blank"),
        ("name: x\ncatch_mode: content\ncontent: {min_risk: huge}\n", "min_risk"),
    ],
)
def test_bad_content_settings_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ReviewerConfigError, match=message):
        profile_from_yaml(text, source="p.yaml")
