"""Slicing ordered trials into trend points, and fitting lines through them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coimprove.metrics.models import MeanPoint, RatePoint, Slope
from coimprove.metrics.stats import least_squares, rate, wilson


@dataclass(frozen=True)
class Trial:
    """One trial in time order: its position (1-based), time, and outcome (0/1 or a value)."""

    position: int
    at: float
    value: float


def slices(n: int, buckets: int) -> list[range]:
    """`n` ordered items cut into at most `buckets` contiguous slices whose sizes differ by at
    most one, larger ones first (as SQL's ``NTILE``)."""
    if buckets < 1:
        raise ValueError(f"buckets must be a positive integer, not {buckets!r}")
    k = min(buckets, n)
    out, start = [], 0
    for i in range(k):
        size = n // k + (1 if i < n % k else 0)
        out.append(range(start, start + size))
        start += size
    return out


def rate_point(index: int, trials: Sequence[Trial]) -> RatePoint:
    """The rate of hits (value 1) among `trials`, with its Wilson interval."""
    hits = sum(1 for t in trials if t.value)
    ci = wilson(hits, len(trials))
    return RatePoint(
        index=index,
        n=len(trials),
        hits=hits,
        rate=rate(hits, len(trials)),
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
        first=trials[0].position,
        last=trials[-1].position,
        from_at=trials[0].at,
        to_at=trials[-1].at,
    )


def rate_trend(trials: Sequence[Trial], buckets: int) -> list[RatePoint]:
    """Equal slices of `trials` (already in time order), one rate point each."""
    return [
        rate_point(i + 1, trials[s.start : s.stop])
        for i, s in enumerate(slices(len(trials), buckets))
    ]


def mean_point(index: int, trials: Sequence[Trial]) -> MeanPoint:
    """The mean of `trials`' values with a normal 95% interval (None below two values)."""
    values = [t.value for t in trials]
    n = len(values)
    mean = sum(values) / n if n else None
    low = high = None
    if n >= 2 and mean is not None:
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        half = 1.959964 * (var / n) ** 0.5
        low, high = mean - half, mean + half
    return MeanPoint(
        index=index,
        n=n,
        mean=mean,
        low=low,
        high=high,
        first=trials[0].position,
        last=trials[-1].position,
    )


def mean_trend(trials: Sequence[Trial], buckets: int) -> list[MeanPoint]:
    """Equal slices of `trials` (in time order), one mean point each."""
    return [
        mean_point(i + 1, trials[s.start : s.stop])
        for i, s in enumerate(slices(len(trials), buckets))
    ]


def slope(xs: Sequence[float], ys: Sequence[float]) -> Slope:
    """`least_squares` as a `Slope` (empty when it cannot be fitted)."""
    fit = least_squares(xs, ys)
    if fit is None:
        return Slope(n=len(xs))
    b, a, se, low, high = fit
    return Slope(n=len(xs), slope=b, intercept=a, se=se, low=low, high=high)
