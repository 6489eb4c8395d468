"""Scripted reviewers: profiles load and fail clearly; reviews are deterministic and recover the
configured behaviour (measurement validity), computed from the Reviews themselves."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coimprove.errors import ReviewerConfigError
from coimprove.model import GateRequest, Proposal, Requirement, Review, Truth, Verdict
from coimprove.protocols import ReviewContext, Reviewer
from coimprove.reviewers.clock import FixedClock, SimClock
from coimprove.reviewers.profiles import (
    Exponential,
    Fixed,
    LogNormal,
    ReviewerProfile,
    builtin_profiles,
    load_profile,
    profile_from_yaml,
)
from coimprove.reviewers.scripted import ScriptedReviewer

ALL: tuple[Verdict, ...] = ("approve", "edit", "reject", "request_changes", "escalate")
NEGATIVE = {"reject", "request_changes"}
POSITIVE = {"approve", "edit"}
MIN_REVIEW = 20.0
NOW = 1000.0
BUILTINS = ["autonomous", "careful", "fatigued", "random", "rubber_stamper"]


def make_request(
    i: int,
    *,
    allowed: tuple[Verdict, ...] = ALL,
    level: int = 0,
    escalation: tuple[str, ...] = ("lead",),
    min_review: float = MIN_REVIEW,
    payload: dict[str, Any] | None = None,
    schema: dict[str, Any] | None = None,
) -> GateRequest:
    proposal = Proposal(
        kind="code",
        title=f"change {i}",
        author="agent:x",
        payload={"n": i} if payload is None else payload,
    )
    requirement = Requirement(
        policy="t",
        rule="r",
        roles=("reviewer",),
        quorum=1,
        reviewer_kinds=("scripted",),
        allowed=allowed,
        timeout_s=None,
        on_timeout="reject",
        min_review_seconds=min_review,
        escalation=escalation,
        level=level,
    )
    return GateRequest(
        gate_id=f"run1.review.{i}",
        run_id="run1",
        graph="g",
        gate="review",
        round=1,
        proposal=proposal,
        requirement=requirement,
        payload_schema=schema,
    )


def ctx(
    truth: Truth | None = None,
    *,
    canary: bool = False,
    queue: int = 0,
    elapsed: float = 0.0,
    now: float = NOW,
) -> ReviewContext:
    return ReviewContext(
        clock=FixedClock(now),
        queue_length=queue,
        session_elapsed_s=elapsed,
        truth=truth,
        canary=canary,
    )


def profile(**overrides: Any) -> ReviewerProfile:
    base: dict[str, Any] = {
        "name": "test",
        "pickup": {"dist": "lognormal", "median_s": 60, "sigma": 0.5},
        "skim_rate": 0.3,
        "skim_time": {"dist": "lognormal", "median_s": 5, "sigma": 0.8},
        "review_time": {"dist": "lognormal", "median_s": 90, "sigma": 0.7},
        "p_open_detail": 0.6,
        "catch_rate": 0.7,
        "skim_catch_rate": 0.1,
        "false_alarm_rate": 0.1,
        "changes_share": 0.4,
        "edit_rate": 0.2,
        "escalate_rate": 0.0,
        "approval_bias": 0.2,
    }
    base.update(overrides)
    return ReviewerProfile.model_validate(base)


def dwell(review: Review) -> float:
    assert review.decided_at is not None
    return review.decided_at - review.views[0].at


def is_skim(review: Review, min_review: float = MIN_REVIEW) -> bool:
    """The rubber-stamp measure's definition: short dwell and the detail never opened."""
    return dwell(review) < min_review and not any(v.what == "detail" for v in review.views)


def opened_detail(review: Review) -> bool:
    return any(v.what == "detail" for v in review.views)


def share(hits: int, total: int) -> float:
    assert total > 0
    return hits / total


@functools.cache
def default_request(i: int) -> GateRequest:
    return make_request(i)


@dataclass
class Measured:
    skim: float
    escalate: float
    catch: float
    """Negatives among decided flawed gates: what a canary catch rate measures."""
    catch_reviewing: float
    catch_skimming: float
    false_alarm: float
    changes_share: float
    edit_share: float
    detail_when_reviewing: float


def measure(reviewer: ScriptedReviewer, n: int = 10_000, **context: Any) -> Measured:
    """Review `n` flawed and `n` sound gates and measure from the Reviews alone."""
    contexts = {truth: ctx(truth, **context) for truth in ("flawed", "sound")}
    rows = [
        (truth, reviewer.simulate(default_request(i), c))
        for i in range(n)
        for truth, c in contexts.items()
    ]
    decided = [(t, r, is_skim(r)) for t, r in rows if r.decision.verdict != "escalate"]
    flawed = [r for t, r, _ in decided if t == "flawed"]
    flawed_rev = [r for t, r, s in decided if t == "flawed" and not s]
    flawed_skim = [r for t, r, s in decided if t == "flawed" and s]
    sound = [r for t, r, _ in decided if t == "sound"]
    negatives = [r for _, r, _ in decided if r.decision.verdict in NEGATIVE]
    approvals_rev = [r for _, r, s in decided if not s and r.decision.verdict in POSITIVE]
    reviewed = [r for _, r, s in decided if not s]

    def neg(rs: list[Review]) -> float:
        return share(sum(r.decision.verdict in NEGATIVE for r in rs), len(rs))

    return Measured(
        skim=share(sum(is_skim(r) for _, r in rows), len(rows)),
        escalate=share(sum(r.decision.verdict == "escalate" for _, r in rows), len(rows)),
        catch=neg(flawed),
        catch_reviewing=neg(flawed_rev),
        catch_skimming=neg(flawed_skim),
        false_alarm=neg(sound),
        changes_share=share(
            sum(r.decision.verdict == "request_changes" for r in negatives), len(negatives)
        ),
        edit_share=share(
            sum(r.decision.verdict == "edit" for r in approvals_rev), len(approvals_rev)
        ),
        detail_when_reviewing=share(sum(opened_detail(r) for r in reviewed), len(reviewed)),
    )


def expected_catch(p: ReviewerProfile, *, queue: int = 0, elapsed: float = 0.0) -> float:
    """P(negative | flawed) implied by a profile, over skims and reviews."""
    skim = p.effective_skim_rate(queue, elapsed)
    per_mode = (1 - skim) * p.effective_catch_rate(elapsed) + skim * p.skim_catch_rate
    return per_mode * (1 - p.approval_bias)


TOL = 0.02


# -- profiles ---------------------------------------------------------------------------------


def test_every_builtin_profile_is_listed() -> None:
    assert set(BUILTINS) <= set(builtin_profiles())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_profile_loads(name: str) -> None:
    p = load_profile(name)
    assert p.name == name
    assert p.description


def test_load_profile_from_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nskim_rate: 0.25\npickup: 30\n")
    p = load_profile(path)
    assert p.skim_rate == 0.25
    assert p.pickup == Fixed(dist="fixed", seconds=30)
    assert load_profile(str(path)) == p


def test_unknown_profile_name_lists_builtins() -> None:
    with pytest.raises(ReviewerConfigError, match="no built-in profile") as err:
        load_profile("carefull")
    for name in BUILTINS:
        assert name in str(err.value)


def test_missing_profile_path_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ReviewerConfigError, match="no such reviewer profile file"):
        load_profile(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ("name: bad\nskim_rate: 1.5\n", 2, "skim_rate", "less than or equal to 1"),
        ("name: bad\ncatch_rate: 0.5\nskim_rat: 0.2\n", 3, "skim_rat", "unknown field"),
        ("name: bad\nfatigue:\n  skim_per_queued: -1\n", 3, "fatigue.skim_per_queued", ">="),
        ("name: bad\npickup:\n  dist: lognormal\n  median_s: 0\n", 4, "pickup.median_s", "> 0"),
        ("name: bad\npickup:\n  dist: lognormal\n  median_s: .inf\n", 4, "pickup.median_s",
         "finite number"),
        ("name: bad\nreview_time:\n  dist: fixed\n  seconds: 3\n  sigma: 1\n", 5,
         "review_time.sigma", "unknown field"),
        ("name: bad\nskim_time: {dist: gamma}\n", 2, "skim_time", "gamma"),
        ("name: bad\npickup: soon\n", 2, "pickup", "expected seconds"),
        ("skim_rate: 0.1\n", 1, "name", "required"),
    ],
)  # fmt: skip
def test_malformed_profile_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ReviewerConfigError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: {field}: "), message
    problem = problem.replace(">=", "greater than or equal").replace("> 0", "greater than 0")
    assert problem in message, message


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: bad\nskim_rate: [0.5\ncatch_rate: 0.1\n")
    with pytest.raises(ReviewerConfigError, match=rf"^{path}:\d+:\d+: invalid YAML"):
        load_profile(path)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ReviewerConfigError, match=r"^p\.yaml:1: expected a mapping"):
        profile_from_yaml("- careful\n", source="p.yaml")


def test_distributions_invert_their_cdf() -> None:
    ln = LogNormal(dist="lognormal", median_s=40, sigma=1.0, max_s=100)
    assert ln.sample(0.5) == pytest.approx(40)
    assert ln.sample(0.999999) == 100  # capped
    ex = Exponential(dist="exponential", mean_s=10)
    rng = random.Random(1)
    draws = [ex.sample(rng.random()) for _ in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(10, rel=0.03)
    assert Fixed(dist="fixed", seconds=7).sample(0.9) == 7


# -- the protocol and determinism -------------------------------------------------------------


def test_scripted_reviewer_is_a_reviewer() -> None:
    r = ScriptedReviewer.from_profile_name("careful", id="sim-1", seed=1)
    assert isinstance(r, Reviewer)
    assert (r.id, r.kind, r.profile.name) == ("sim-1", "scripted", "careful")
    assert ScriptedReviewer("careful", id="x", seed=1).profile == r.profile


def test_empty_id_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty id"):
        ScriptedReviewer(profile(), id="", seed=1)


async def test_review_is_the_async_form_of_simulate() -> None:
    r = ScriptedReviewer(profile(), id="a", seed=3)
    req, c = make_request(1), ctx("flawed")
    assert await r.review(req, c) == r.simulate(req, c)


def test_same_seed_same_reviews_in_any_order() -> None:
    gates = [(make_request(i), ctx("flawed" if i % 3 else "sound")) for i in range(300)]
    first = {
        req.gate_id: ScriptedReviewer(profile(), id="a", seed=42).simulate(req, c)
        for req, c in gates
    }
    shuffled = gates[:]
    random.Random(0).shuffle(shuffled)
    again = ScriptedReviewer(profile(), id="a", seed=42)
    second = {req.gate_id: again.simulate(req, c) for req, c in shuffled}
    assert first == second


def test_different_seed_or_id_gives_different_reviews() -> None:
    gates = [(make_request(i), ctx("flawed")) for i in range(100)]

    def reviews(seed: int, id_: str) -> list[Review]:
        r = ScriptedReviewer(profile(), id=id_, seed=seed)
        return [r.simulate(req, c) for req, c in gates]

    base = reviews(1, "a")
    for other in (reviews(2, "a"), reviews(1, "b")):
        assert sum(x != y for x, y in zip(base, other, strict=True)) > 50
        assert [r.decision.verdict for r in other] != [r.decision.verdict for r in base]


def test_simulate_does_not_move_the_clock() -> None:
    clock = SimClock(500.0)
    r = ScriptedReviewer(profile(), id="a", seed=1)
    review = r.simulate(make_request(1), ReviewContext(clock=clock))
    assert clock.now() == 500.0
    assert review.views[0].at >= 500.0


# -- measurement validity: the measures recover the configuration --------------------------


def test_measured_rates_match_configured_parameters() -> None:
    p = profile()
    m = measure(ScriptedReviewer(p, id="sim", seed=7))
    keep = 1 - p.approval_bias
    assert m.skim == pytest.approx(p.skim_rate, abs=TOL)
    assert m.catch == pytest.approx(expected_catch(p), abs=TOL)
    assert m.catch_reviewing == pytest.approx(p.catch_rate * keep, abs=TOL)
    assert m.catch_skimming == pytest.approx(p.skim_catch_rate * keep, abs=TOL)
    assert m.false_alarm == pytest.approx(p.false_alarm_rate * keep, abs=TOL)
    assert m.changes_share == pytest.approx(p.changes_share, abs=TOL)
    assert m.edit_share == pytest.approx(p.edit_rate, abs=TOL)
    assert m.detail_when_reviewing == pytest.approx(p.p_open_detail, abs=TOL)
    assert m.escalate == 0


@pytest.mark.parametrize("name", ["careful", "rubber_stamper", "fatigued", "random"])
def test_builtin_profiles_measure_as_configured(name: str) -> None:
    p = load_profile(name)
    m = measure(ScriptedReviewer(p, id="sim", seed=11))
    assert m.skim == pytest.approx(p.skim_rate, abs=TOL)
    assert m.escalate == pytest.approx(p.escalate_rate, abs=TOL)
    assert m.catch == pytest.approx(expected_catch(p), abs=TOL)
    assert m.false_alarm == pytest.approx(p.false_alarm_rate * (1 - p.approval_bias), abs=TOL)


def test_random_profile_is_chance_whatever_the_truth() -> None:
    m = measure(ScriptedReviewer(load_profile("random"), id="coin", seed=5))
    assert m.catch == pytest.approx(0.5, abs=TOL)
    assert m.false_alarm == pytest.approx(0.5, abs=TOL)
    # looking or not makes no difference to a coin
    assert m.catch_reviewing == pytest.approx(m.catch_skimming, abs=0.04)


def test_profiles_are_ordered_by_vigilance() -> None:
    careful = measure(ScriptedReviewer(load_profile("careful"), id="s", seed=3), n=2000)
    stamper = measure(ScriptedReviewer(load_profile("rubber_stamper"), id="s", seed=3), n=2000)
    assert careful.skim < 0.1 < 0.8 < stamper.skim
    assert careful.catch_reviewing > stamper.catch_reviewing


# -- fatigue ----------------------------------------------------------------------------------


def test_fatigue_raises_skim_rate_with_queue_length() -> None:
    p = load_profile("fatigued")
    reviewer = ScriptedReviewer(p, id="tired", seed=9)
    rates = []
    for queue in (0, 5, 10, 20):
        skims = [
            is_skim(reviewer.simulate(default_request(i), ctx("sound", queue=queue)))
            for i in range(10_000)
        ]
        rates.append(sum(skims) / len(skims))
        expected = min(p.skim_rate + p.fatigue.skim_per_queued * queue, 1.0)
        assert rates[-1] == pytest.approx(expected, abs=TOL), queue
    assert rates == sorted(rates)
    assert rates[-1] - rates[0] > 0.5


def test_fatigue_over_a_session_skims_more_and_catches_less() -> None:
    p = load_profile("fatigued")
    reviewer = ScriptedReviewer(p, id="tired", seed=9)
    fresh = measure(reviewer)
    late = measure(reviewer, elapsed=4 * 3600.0)
    assert late.skim == pytest.approx(p.skim_rate + 4 * p.fatigue.skim_per_hour, abs=TOL)
    assert late.catch == pytest.approx(expected_catch(p, elapsed=4 * 3600.0), abs=TOL)
    assert late.skim > fresh.skim + 0.25
    assert late.catch_reviewing < fresh.catch_reviewing - 0.2


def test_fatigue_only_turns_reviews_into_skims() -> None:
    """Common random numbers: a gate skimmed with a short queue is skimmed with a long one."""
    reviewer = ScriptedReviewer(load_profile("fatigued"), id="tired", seed=2)
    for i in range(500):
        short = is_skim(reviewer.simulate(make_request(i), ctx(queue=1)))
        long = is_skim(reviewer.simulate(make_request(i), ctx(queue=12)))
        assert long or not short


def test_fatigue_is_clamped() -> None:
    p = profile(skim_rate=0.9, fatigue={"skim_per_queued": 1.0, "catch_drop_per_hour": 1.0})
    assert p.effective_skim_rate(1000, 0) == 1.0
    assert p.effective_catch_rate(100 * 3600) == 0.0
    reviewer = ScriptedReviewer(p, id="x", seed=1)
    assert all(is_skim(reviewer.simulate(make_request(i), ctx(queue=50))) for i in range(200))


# -- specific behaviours ----------------------------------------------------------------------


@pytest.mark.parametrize("truth", ["sound", "flawed", "dead_end", None])
def test_autonomous_approves_everything_instantly(truth: Truth | None) -> None:
    reviewer = ScriptedReviewer.from_profile_name("autonomous", id="auto", seed=1)
    for i in range(300):
        review = reviewer.simulate(make_request(i), ctx(truth, canary=i % 7 == 0))
        assert review.decision.verdict == "approve"
        assert review.views == (review.views[0],)
        assert review.views[0].what == "gate"
        assert review.views[0].at == NOW
        assert review.decided_at == NOW


def test_canary_counts_as_flawed_and_unknown_truth_as_sound() -> None:
    sharp = ScriptedReviewer(
        profile(skim_rate=0, catch_rate=1, false_alarm_rate=0, approval_bias=0, edit_rate=0),
        id="sharp",
        seed=1,
    )
    for i in range(200):
        assert sharp.simulate(make_request(i), ctx(None, canary=True)).decision.verdict in NEGATIVE
        assert sharp.simulate(make_request(i), ctx("sound", canary=True)).decision.verdict in (
            NEGATIVE
        )
        assert sharp.simulate(make_request(i), ctx(None)).decision.verdict == "approve"
        assert sharp.simulate(make_request(i), ctx("dead_end")).decision.verdict in NEGATIVE


def test_approval_bias_of_one_approves_everything() -> None:
    biased = ScriptedReviewer(profile(approval_bias=1.0, catch_rate=1.0), id="b", seed=1)
    verdicts = {
        biased.simulate(make_request(i), ctx("flawed")).decision.verdict for i in range(300)
    }
    assert verdicts <= POSITIVE


@pytest.mark.parametrize("name", BUILTINS)
def test_verdicts_respect_allowed(name: str) -> None:
    allowed: tuple[Verdict, ...] = ("approve", "reject")
    reviewer = ScriptedReviewer.from_profile_name(name, id="r", seed=4)
    seen = set()
    for i in range(1000):
        review = reviewer.simulate(make_request(i, allowed=allowed), ctx("flawed"))
        seen.add(review.decision.verdict)
    assert seen <= set(allowed)


def test_negatives_fall_back_to_reject_and_edits_to_approve() -> None:
    eager = ScriptedReviewer(
        profile(changes_share=1.0, edit_rate=1.0, escalate_rate=1.0, skim_rate=0),
        id="e",
        seed=1,
    )
    allowed: tuple[Verdict, ...] = ("approve", "reject")
    verdicts = [
        eager.simulate(
            make_request(i, allowed=allowed), ctx("flawed" if i % 2 else "sound")
        ).decision.verdict
        for i in range(400)
    ]
    assert set(verdicts) == {"approve", "reject"}


def test_request_changes_has_a_note_and_edit_a_changed_payload() -> None:
    reviewer = ScriptedReviewer(
        profile(changes_share=1.0, edit_rate=1.0, skim_rate=0), id="rc", seed=1
    )
    verdicts = set()
    for i in range(400):
        req = make_request(i)
        d = reviewer.simulate(req, ctx("flawed" if i % 2 else "sound")).decision
        verdicts.add(d.verdict)
        assert d.digest == req.digest
        assert (d.reviewer, d.reviewer_kind) == ("rc", "scripted")
        if d.verdict == "request_changes":
            assert d.note.strip()
        if d.verdict == "edit":
            assert d.edited_payload is not None
            assert d.edited_payload != req.proposal.payload
            assert d.edited_payload["n"] == i
            assert d.edited_payload["reviewed_by"] == ["rc"]
            assert req.proposal.edited(d.edited_payload, editor="rc").digest != req.digest
    assert verdicts == {"request_changes", "edit"}


def test_edit_respects_a_closed_payload_schema() -> None:
    reviewer = ScriptedReviewer(
        profile(edit_rate=1.0, skim_rate=0, false_alarm_rate=0), id="e", seed=1
    )
    closed = {"type": "object", "properties": {"n": {}}, "additionalProperties": False}
    for i in range(100):
        verdict = reviewer.simulate(make_request(i, schema=closed), ctx("sound")).decision.verdict
        assert verdict == "approve"


def test_escalates_only_when_escalation_is_possible() -> None:
    reviewer = ScriptedReviewer(profile(escalate_rate=1.0), id="esc", seed=1)
    open_ = reviewer.simulate(make_request(1), ctx("sound")).decision
    assert open_.verdict == "escalate"
    assert "lead" in open_.note
    top = reviewer.simulate(make_request(1, level=1), ctx("sound")).decision
    assert top.verdict != "escalate"
    no_chain = reviewer.simulate(make_request(1, escalation=()), ctx("sound")).decision
    assert no_chain.verdict != "escalate"
    not_allowed = reviewer.simulate(
        make_request(1, allowed=("approve", "reject")), ctx("sound")
    ).decision
    assert not_allowed.verdict != "escalate"


def test_views_are_timed_on_the_simulated_clock() -> None:
    p = profile(pickup=30, review_time=5, skim_rate=0, p_open_detail=1.0)
    reviewer = ScriptedReviewer(p, id="t", seed=1)
    for i in range(200):
        review = reviewer.simulate(make_request(i), ctx(now=5000.0))
        gate_view, detail_view = review.views
        assert gate_view.what == "gate"
        assert gate_view.at == 5030.0
        assert detail_view.what == "detail"
        assert review.decided_at is not None
        assert gate_view.at < detail_view.at < review.decided_at
        # a real review never ends before the policy's minimum, even if its draw is shorter
        assert dwell(review) >= MIN_REVIEW
        assert not is_skim(review)


def test_skims_stay_below_the_minimum_and_never_open_detail() -> None:
    p = profile(skim_rate=1.0, skim_time=600, p_open_detail=1.0)
    reviewer = ScriptedReviewer(p, id="s", seed=1)
    for i in range(200):
        review = reviewer.simulate(make_request(i), ctx())
        assert len(review.views) == 1
        assert 0 <= dwell(review) < MIN_REVIEW


def test_no_detail_to_open_means_no_detail_view() -> None:
    reviewer = ScriptedReviewer(profile(skim_rate=0, p_open_detail=1.0), id="d", seed=1)
    review = reviewer.simulate(make_request(1, payload={}), ctx())
    assert [v.what for v in review.views] == ["gate"]
