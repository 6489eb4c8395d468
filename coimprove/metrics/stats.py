"""Small pure statistics used by the measures: rates, d′ and kappa.

They take counts that SQL has already aggregated, so they never see individual events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

_NORMAL = NormalDist()


def rate(numerator: int | float, denominator: int | float) -> float | None:
    """``numerator / denominator``, or None when the denominator is 0 (never NaN)."""
    if not denominator:
        return None
    return float(numerator) / float(denominator)


def d_prime(hits: int, n_signal: int, false_alarms: int, n_noise: int) -> float | None:
    """Sensitivity d′ = z(hit rate) − z(false-alarm rate), with the log-linear correction.

    The log-linear correction (Hautus 1995) adds 0.5 to each count and 1 to each total, so
    rates of exactly 0 or 1 stay finite: ``hit = (hits + 0.5) / (n_signal + 1)`` and likewise
    for false alarms. Returns None when there is no signal trial or no noise trial.

    Here a *signal* trial is a decision on a canary (a planted flaw) and a hit is catching it
    (reject or request changes); a *noise* trial is a decision on a proposal known to be sound
    and a false alarm is rejecting it or sending it back. Where soundness is unknown every
    ordinary proposal stands in as noise, and the d′ is a lower bound (see `CanaryMeasures`).
    """
    if n_signal <= 0 or n_noise <= 0:
        return None
    if not (0 <= hits <= n_signal and 0 <= false_alarms <= n_noise):
        raise ValueError(
            f"counts out of range: hits={hits}/{n_signal}, false_alarms={false_alarms}/{n_noise}"
        )
    hit = (hits + 0.5) / (n_signal + 1)
    fa = (false_alarms + 0.5) / (n_noise + 1)
    return _NORMAL.inv_cdf(hit) - _NORMAL.inv_cdf(fa)


def d_prime_interval(
    hits: int, n_signal: int, false_alarms: int, n_noise: int, z: float = 1.959964
) -> tuple[float, float] | None:
    """A normal interval (95% by default) around `d_prime`, None when d′ is undefined.

    The delta-method variance of Macmillan & Creelman (2005) on the same log-linear-corrected
    rates ``H`` and ``F``: ``var(d′) = H(1−H)/(N_s φ(z_H)²) + F(1−F)/(N_n φ(z_F)²)`` with the
    corrected totals ``N_s = n_signal + 1`` and ``N_n = n_noise + 1``.
    """
    value = d_prime(hits, n_signal, false_alarms, n_noise)
    if value is None:
        return None
    h = (hits + 0.5) / (n_signal + 1)
    f = (false_alarms + 0.5) / (n_noise + 1)
    var = h * (1 - h) / ((n_signal + 1) * _NORMAL.pdf(_NORMAL.inv_cdf(h)) ** 2) + f * (1 - f) / (
        (n_noise + 1) * _NORMAL.pdf(_NORMAL.inv_cdf(f)) ** 2
    )
    half = z * math.sqrt(var)
    return value - half, value + half


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa for items rated by a varying number of raters.

    ``table[i][j]`` is how many raters put item *i* in category *j*. Items with fewer than two
    ratings carry no agreement information and are skipped. Per item,
    ``P_i = Σ_j n_ij (n_ij − 1) / (n_i (n_i − 1))``; ``P̄`` is their mean, the category shares
    are ``p_j = Σ_i n_ij / Σ_i n_i`` and chance agreement is ``P̄_e = Σ_j p_j²``;
    ``κ = (P̄ − P̄_e) / (1 − P̄_e)``. With the same number of raters for every item this is
    Fleiss (1971). Returns None with no usable item or when ``P̄_e = 1`` (everyone used one
    category, so chance explains all agreement and kappa is undefined).
    """
    rows = [list(r) for r in table if sum(r) >= 2]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    totals = [0] * width
    p_items = 0.0
    for row in rows:
        n_i = sum(row)
        p_items += sum(c * (c - 1) for c in row) / (n_i * (n_i - 1))
        for j, c in enumerate(row):
            totals[j] += c
    grand = sum(totals)
    p_bar = p_items / len(rows)
    p_e = sum((t / grand) ** 2 for t in totals)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def cohen_kappa(table: Mapping[tuple[str, str], int]) -> float | None:
    """Cohen's kappa for two raters from their contingency counts.

    ``table[(a, b)]`` is how many items rater 1 put in category *a* while rater 2 put them in
    *b*. ``κ = (p_o − p_e) / (1 − p_e)`` with observed agreement ``p_o`` (the diagonal share)
    and chance agreement ``p_e = Σ_c p1(c) · p2(c)`` from the two raters' marginals. Returns
    None with no items or when ``p_e = 1`` (both raters used a single, identical category).
    """
    n = sum(table.values())
    if n <= 0:
        return None
    first: dict[str, int] = {}
    second: dict[str, int] = {}
    agree = 0
    for (a, b), count in table.items():
        first[a] = first.get(a, 0) + count
        second[b] = second.get(b, 0) + count
        if a == b:
            agree += count
    p_o = agree / n
    p_e = sum(first[c] * second.get(c, 0) for c in first) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval for a proportion ``hits / n`` (95% by default); None if n = 0.

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z·√(p(1−p)/n + z²/4n²) / (1 + z²/n)``.
    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and n.
    """
    if n <= 0:
        return None
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t 0.975 quantiles for 1 to 30 degrees of freedom (beyond: 1.96)."""


def mean_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean and 95% Student-t interval ``(mean, low, high)`` of `values`; None if empty.
    With one value the interval is the value itself (no spread can be estimated)."""
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.959964
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def least_squares(
    xs: Sequence[float], ys: Sequence[float], z: float = 1.959964
) -> tuple[float, float, float, float, float] | None:
    """Ordinary least squares of `ys` on `xs`: (slope, intercept, se, low, high).

    ``se = √(Σ residual² / (n − 2) / Σ (x − x̄)²)``; the interval is ``slope ± z·se``.
    None with fewer than three points or no spread in x.
    """
    n = len(xs)
    if n != len(ys):
        raise ValueError("xs and ys differ in length")
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    rss = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(rss / (n - 2) / sxx)
    return slope, intercept, se, slope - z * se, slope + z * se
