"""The discrimination measures recover a planted truth: a panel whose true ranking is known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from coimprove.evals import (
    FailsSubtask,
    MajorityLabel,
    Oracle,
    Panel,
    PanelItem,
    RandomGuess,
    Skilled,
    measure,
)
from coimprove.evals.discrimination import (
    difference,
    item_discrimination,
    nanmean,
    pooled,
    spearman,
)
from tests.evals.conftest import ExactMatchGrader, planted_release, planted_task


class Miscalibrated(Skilled):
    """Declares one skill, answers with another (what a measure must notice)."""

    def __init__(self, declared: float, actual: float, *, seed: int) -> None:
        super().__init__(actual, seed=seed, name="miscalibrated")
        self.declared = declared

    def expected_scores(self, items: Sequence[PanelItem]) -> list[float] | None:
        return [self.declared] * len(items)


async def scores_of(panel: Panel, n: int = 400):  # type: ignore[no-untyped-def]
    return await panel.score(planted_task(), planted_release(n), ExactMatchGrader())


async def test_a_planted_panel_is_ranked_as_its_known_skills_say() -> None:
    skills = [0.95, 0.8, 0.65, 0.5]
    panel = Panel([Oracle(), *(Skilled(p, seed=n) for n, p in enumerate(skills)), RandomGuess()])
    found = measure(await scores_of(panel), resamples=300, per_item=False)
    by_name = {m.name: m for m in found.members}
    for p in skills:
        acc = by_name[f"skilled-{p:.2f}"].accuracy
        assert acc.lo is not None and acc.hi is not None
        assert acc.lo <= p <= acc.hi, (p, acc)
    assert found.ranking_spearman.value == pytest.approx(1.0)
    assert found.ranking_spearman.lo is not None and found.ranking_spearman.lo > 0.8
    assert found.mean_discrimination.value is not None and found.mean_discrimination.value > 0.2


async def test_the_numbers_change_when_a_members_skill_changes() -> None:
    base = [Oracle(), Skilled(0.9, seed=1), Skilled(0.7, seed=2), RandomGuess(seed=3)]
    before = measure(await scores_of(Panel([*base, Skilled(0.8, seed=4, name="x")])), resamples=200)
    after = measure(await scores_of(Panel([*base, Skilled(0.55, seed=4, name="x")])), resamples=200)
    x_before = next(m for m in before.members if m.name == "x").accuracy
    x_after = next(m for m in after.members if m.name == "x").accuracy
    assert x_before.lo is not None and x_after.hi is not None
    assert x_after.hi < x_before.lo  # the intervals separate
    assert after.spread.value != before.spread.value
    # a member that answers far below its declared skill breaks the known ranking
    lied = measure(
        await scores_of(Panel([*base, Miscalibrated(0.95, 0.55, seed=4)])), resamples=200
    )
    assert lied.ranking_spearman.value is not None and lied.ranking_spearman.value < 0.9
    assert lied.ranking_spearman.hi is not None and lied.ranking_spearman.hi < 1.0


async def test_scripted_members_score_what_they_are_built_to() -> None:
    release = planted_release(60)
    panel = Panel([FailsSubtask("a"), MajorityLabel(), Oracle()])
    scores = await panel.score(planted_task(), release, ExactMatchGrader())
    fails = scores.member("fails-a")
    assert fails.known_skill == pytest.approx(0.5)
    assert fails.accuracy == pytest.approx(0.5)
    assert all(s == (sub != "a") for s, sub in zip(fails.scores, scores.subtasks, strict=True))
    # the planted labels cycle through the options: the majority is the label set's first
    # of the most frequent
    assert scores.member("majority-label").accuracy == pytest.approx(
        (15 + 10) / 60  # subtask a: 15 of 30 "yes"; subtask b: 10 of 30 "increase"
    )


def test_item_discrimination_is_high_for_skill_driven_items_and_undefined_for_constant_ones() -> (
    None
):
    skill = np.linspace(0.1, 0.9, 9)
    rng = np.random.default_rng(0)
    driven = (rng.random((9, 200)) < skill[:, None]).astype(float)
    noise = (rng.random((9, 200)) < 0.6).astype(float)
    assert nanmean(item_discrimination(driven)) > 0.25
    assert abs(nanmean(item_discrimination(noise))) < 0.1
    everyone = np.ones((9, 3))
    assert np.isnan(item_discrimination(np.hstack([driven[:, :5], everyone]))[5:]).all()


def test_pooled_arms_tell_a_discriminative_release_from_a_noisy_one() -> None:
    skill = np.linspace(0.1, 0.9, 9)
    rng = np.random.default_rng(1)
    arm_a = [(rng.random((9, 40)) < skill[:, None]).astype(float) for _ in range(3)]
    arm_b = [(rng.random((9, 40)) < 0.6).astype(float) for _ in range(3)]

    def stat(k: int, s: np.ndarray) -> float:  # type: ignore[type-arg]
        return nanmean(item_discrimination(s))

    a = pooled(arm_a, stat, resamples=300, seed=1)
    b = pooled(arm_b, stat, resamples=300, seed=2)
    d = difference(a, b)
    assert d.lo is not None and d.lo > 0


def test_spearman_handles_ties_and_constants() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 4], [4, 3, 3, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))
