"""Confidence intervals: Wilson for rates, delta-method for d′, order statistics for percentiles."""

from __future__ import annotations

import random

import pytest

from coimprove.ablate.stats import d_prime_ci, mean_ci, quantile, quantile_ci, wilson
from coimprove.metrics import d_prime


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), method 3: 81/263 -> 0.2553 to 0.3662
    e = wilson(81, 263)
    assert e.value == pytest.approx(81 / 263)
    assert (e.lo, e.hi) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    zero = wilson(0, 10)
    assert zero.lo == 0.0 and zero.hi == pytest.approx(0.2775, abs=1e-4)
    full = wilson(10, 10)
    assert full.hi == 1.0 and full.lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0).value is None


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(5, 3)


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = random.Random(1)
    p, n, hits = 0.3, 200, 0
    for _ in range(2000):
        k = sum(rng.random() < p for _ in range(n))
        e = wilson(k, n)
        hits += e.lo is not None and e.hi is not None and e.lo <= p <= e.hi
    assert 0.93 <= hits / 2000 <= 0.97


def test_d_prime_interval_is_centred_on_the_reports_value_and_shrinks_with_n() -> None:
    small = d_prime_ci(80, 100, 10, 100)
    large = d_prime_ci(800, 1000, 100, 1000)
    assert small.value == d_prime(80, 100, 10, 100)
    assert small.lo is not None and small.hi is not None
    assert small.value - small.lo == pytest.approx(small.hi - small.value)
    assert large.lo is not None and large.hi is not None
    assert (large.hi - large.lo) < (small.hi - small.lo) / 3
    assert d_prime_ci(0, 0, 1, 10).value is None


def test_quantile_interval_brackets_the_median_and_covers_the_truth() -> None:
    rng = random.Random(2)
    covered = 0
    for _ in range(500):
        xs = [rng.expovariate(1.0) for _ in range(101)]
        e = quantile_ci(xs, 0.5)
        assert e.lo is not None and e.hi is not None and e.value is not None
        assert e.lo <= e.value <= e.hi
        covered += e.lo <= 0.6931 <= e.hi  # the exponential's median, ln 2
    assert covered / 500 >= 0.93
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile_ci([], 0.5).value is None


def test_mean_interval() -> None:
    e = mean_ci([1.0, 2.0, 3.0])
    assert e.value == 2.0 and e.lo is not None and e.lo < 2.0
    assert mean_ci([5.0]).lo is None and mean_ci([]).value is None
