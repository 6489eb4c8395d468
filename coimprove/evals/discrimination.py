"""How well a release tells stronger panel members from weaker ones, with bootstrap intervals.

From a `PanelScores` matrix (members x items, 1 right / 0 wrong):

- **accuracy** per member, 95% interval by resampling items;
- **spread**: the standard deviation of the members' accuracies (a release every member gets
  equally right cannot separate them);
- **item difficulty** (share of members right) and **discrimination**: the corrected
  point-biserial correlation of an item's score with the member's score on the other items
  (undefined, and left out of means, when every member gets the item equally right or wrong);
  per item with an interval from resampling members, and its mean over items with an interval
  from resampling the items' values (each computed on the whole release: a resample that
  repeats an item would otherwise correlate the item with its own copy in the rest score);
- **ranking recovery**: Spearman's rho between measured accuracy and the *known* skill of the
  members that have one (scripted answerers: their expected accuracy on the same items),
  interval by resampling items.

`pooled` gives a statistic over several releases (seeds) with a two-level bootstrap: seeds
resampled, then items within each seed's release. Intervals are percentile intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from coimprove.evals.panel import PanelScores
from coimprove.evals.release import EvalError

Matrix = NDArray[np.float64]
Statistic = Callable[[Matrix], float]
DEFAULT_RESAMPLES = 1000
ITEM_RESAMPLES = 200
"""Member resamples behind each item's own interval."""


class Estimate(BaseModel):
    """A point estimate with a 95% bootstrap interval (None where undefined)."""

    model_config = ConfigDict(frozen=True)

    value: float | None
    lo: float | None = None
    hi: float | None = None

    def __str__(self) -> str:
        if self.value is None:
            return "—"
        if self.lo is None or self.hi is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


class MemberAccuracy(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    known_skill: float | None
    accuracy: Estimate


class ItemStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: str
    subtask: str
    difficulty: Estimate
    discrimination: Estimate


class ReleaseDiscrimination(BaseModel):
    """Every measure of one release's panel scores."""

    model_config = ConfigDict(frozen=True)

    version: str
    items: int
    members: tuple[MemberAccuracy, ...]
    spread: Estimate
    mean_discrimination: Estimate
    discriminating_share: float
    ranking_spearman: Estimate
    item_stats: tuple[ItemStats, ...]


def matrix(scores: PanelScores) -> Matrix:
    """The members x items score matrix."""
    if not scores.refs:
        raise EvalError(f"release {scores.release}: no items to measure")
    return np.array([m.scores for m in scores.members], dtype=float)


def spread(x: Matrix) -> float:
    """Standard deviation of the members' accuracies."""
    return float(np.std(x.mean(axis=1)))


def item_discrimination(x: Matrix) -> Matrix:
    """Corrected point-biserial per item (NaN where the item or the rest score is constant)."""
    rest = x.sum(axis=1, keepdims=True) - x
    xc = x - x.mean(axis=0)
    rc = rest - rest.mean(axis=0)
    num = (xc * rc).sum(axis=0)
    den = np.sqrt((xc**2).sum(axis=0) * (rc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Matrix = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def nanmean(v: Matrix) -> float:
    """The mean of the finite values (NaN when there are none)."""
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else math.nan


def mean_discrimination(x: Matrix) -> float:
    """Mean corrected point-biserial over the items where it is defined."""
    return nanmean(item_discrimination(x))


def _ranks(v: Matrix) -> Matrix:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=float)
    sorted_v = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: Sequence[float] | Matrix, b: Sequence[float] | Matrix) -> float:
    """Spearman's rho (NaN when either side is constant or shorter than 3)."""
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    if len(ra) < 3 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def expected_matrix(scores: PanelScores) -> Matrix:
    """Members x items: the chance of being right by construction (NaN rows: not known)."""
    return np.array(
        [
            m.expected if m.expected is not None else [math.nan] * len(m.scores)
            for m in scores.members
        ],
        dtype=float,
    )


def ranking(x: Matrix, expected: Matrix) -> float:
    """Spearman of measured vs known accuracy on these items, over the members with a known
    skill (rows of `expected` without NaN)."""
    rows = ~np.isnan(expected).any(axis=1)
    return spearman(x[rows].mean(axis=1), expected[rows].mean(axis=1))


def _stacked(x: Matrix, expected: Matrix) -> Matrix:
    """Scores over expected scores in one matrix, so resampling items keeps them paired."""
    return np.vstack([x, expected])


def _ranking_of_stacked(members: int) -> Statistic:
    def stat(s: Matrix) -> float:
        return ranking(s[:members], s[members:])

    return stat


def _interval(values: Matrix) -> tuple[float | None, float | None]:
    ok = values[np.isfinite(values)]
    if len(ok) < max(10, len(values) // 2):
        return None, None
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return float(lo), float(hi)


def _estimate(value: float, replicates: Matrix) -> Estimate:
    if not math.isfinite(value):
        return Estimate(value=None)
    lo, hi = _interval(replicates)
    return Estimate(value=value, lo=lo, hi=hi)


def bootstrap(
    x: Matrix, stat: Statistic, *, resamples: int, rng: np.random.Generator, axis: int = 1
) -> Matrix:
    """`stat` on `resamples` copies of `x` with items (axis 1) or members (axis 0) resampled."""
    n = x.shape[axis]
    out = np.empty(resamples)
    for b in range(resamples):
        pick = rng.integers(0, n, n)
        out[b] = stat(x[:, pick] if axis == 1 else x[pick])
    return out


def measure(
    scores: PanelScores,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    per_item: bool = True,
) -> ReleaseDiscrimination:
    """Every measure of `scores` with 95% bootstrap intervals (seeded, reproducible)."""
    x = matrix(scores)
    rng = np.random.default_rng(seed)
    members = []
    for n, m in enumerate(scores.members):
        row = x[n : n + 1]
        reps = bootstrap(row, lambda r: float(r.mean()), resamples=resamples, rng=rng)
        members.append(
            MemberAccuracy(
                name=m.name,
                kind=m.kind,
                known_skill=m.known_skill,
                accuracy=_estimate(float(row.mean()), reps),
            )
        )
    stacked = _stacked(x, expected_matrix(scores))
    rank = _ranking_of_stacked(x.shape[0])
    r = item_discrimination(x)
    items: list[ItemStats] = []
    if per_item:
        # members resampled together for every item at once (rows: replicates)
        disc_reps = np.empty((ITEM_RESAMPLES, x.shape[1]))
        diff_reps = np.empty((ITEM_RESAMPLES, x.shape[1]))
        for b in range(ITEM_RESAMPLES):
            pick = rng.integers(0, x.shape[0], x.shape[0])
            disc_reps[b] = item_discrimination(x[pick])
            diff_reps[b] = x[pick].mean(axis=0)
        items = [
            ItemStats(
                ref=ref,
                subtask=sub,
                difficulty=_estimate(float(x[:, j].mean()), diff_reps[:, j]),
                discrimination=_estimate(float(r[j]), disc_reps[:, j]),
            )
            for j, (ref, sub) in enumerate(zip(scores.refs, scores.subtasks, strict=True))
        ]
    return ReleaseDiscrimination(
        version=scores.version,
        items=x.shape[1],
        members=tuple(members),
        spread=_estimate(spread(x), bootstrap(x, spread, resamples=resamples, rng=rng)),
        mean_discrimination=_estimate(
            nanmean(r), bootstrap(r[None, :], nanmean, resamples=resamples, rng=rng)
        ),
        discriminating_share=float(np.isfinite(r).mean()),
        ranking_spearman=_estimate(
            rank(stacked), bootstrap(stacked, rank, resamples=resamples, rng=rng)
        ),
        item_stats=tuple(items),
    )


def pooled_replicates(
    releases: Sequence[Matrix],
    stat: Callable[[int, Matrix], float],
    *,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[float, Matrix]:
    """The mean of ``stat(k, x_k)`` over releases, and its two-level bootstrap replicates
    (releases resampled, then items within each). `stat` gets the release's index."""
    if not releases:
        raise EvalError("no releases to pool")
    point = float(np.nanmean([stat(k, x) for k, x in enumerate(releases)]))
    out = np.empty(resamples)
    for b in range(resamples):
        vals = []
        for k in rng.integers(0, len(releases), len(releases)):
            x = releases[int(k)]
            vals.append(stat(int(k), x[:, rng.integers(0, x.shape[1], x.shape[1])]))
        finite = [v for v in vals if math.isfinite(v)]
        out[b] = float(np.mean(finite)) if finite else math.nan
    return point, out


def pooled(
    releases: Sequence[Matrix],
    stat: Callable[[int, Matrix], float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[Estimate, Matrix]:
    """`pooled_replicates` as an `Estimate` (and the replicates, for differences)."""
    point, reps = pooled_replicates(
        releases, stat, resamples=resamples, rng=np.random.default_rng(seed)
    )
    return _estimate(point, reps), reps


def difference(a: tuple[Estimate, Matrix], b: tuple[Estimate, Matrix]) -> Estimate:
    """The difference a - b, with the interval of the difference of independent replicates."""
    if a[0].value is None or b[0].value is None:
        return Estimate(value=None)
    return _estimate(a[0].value - b[0].value, a[1] - b[1])
