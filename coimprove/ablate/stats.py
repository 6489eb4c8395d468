"""Confidence intervals for sweep reports (95 % unless told otherwise).

* rates — Wilson score interval (good near 0 and 1, unlike the normal approximation);
* d′ — normal interval with the delta-method variance of Macmillan & Creelman (2005):
  ``var(d′) = H(1−H)/(N_s φ(z_H)²) + F(1−F)/(N_n φ(z_F)²)``, on the log-linear-corrected rates
  `coimprove.metrics.d_prime` uses (`coimprove.metrics.d_prime_interval`);
* percentiles (latency, dwell) — the distribution-free interval between two order statistics,
  whose ranks come from the binomial(n, q) distribution (normal approximation);
* means — normal interval (mean ± z·s/√n).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist, fmean, stdev

from pydantic import BaseModel, ConfigDict

from coimprove.metrics import d_prime, d_prime_interval

__all__ = ["Estimate", "d_prime_ci", "mean_ci", "quantile", "quantile_ci", "wilson"]

_NORMAL = NormalDist()
Z95 = _NORMAL.inv_cdf(0.975)


class Estimate(BaseModel):
    """A point estimate with its interval and the counts behind it (None when undefined)."""

    model_config = ConfigDict(frozen=True)

    value: float | None
    lo: float | None = None
    hi: float | None = None
    k: float | None = None
    n: int = 0

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (e.g. per 100 proposals)."""

        def s(v: float | None) -> float | None:
            return None if v is None else v * factor

        return Estimate(value=s(self.value), lo=s(self.lo), hi=s(self.hi), k=self.k, n=self.n)

    def fmt(self, digits: int = 3, pct: bool = False) -> str:
        """``0.412 [0.391, 0.433]`` (or percentages), ``–`` when undefined."""
        if self.value is None:
            return "–"
        f = 100.0 if pct else 1.0
        unit = "%" if pct else ""
        d = max(digits - 2, 0) if pct else digits
        text = f"{self.value * f:.{d}f}{unit}"
        if self.lo is not None and self.hi is not None:
            text += f" [{self.lo * f:.{d}f}, {self.hi * f:.{d}f}]"
        return text


def wilson(k: int, n: int, z: float = Z95) -> Estimate:
    """The rate k/n with its Wilson score interval."""
    if n <= 0:
        return Estimate(value=None, k=k, n=n)
    if not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp: rounding can put a bound a hair past p when p is 0 or 1
    lo, hi = max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))
    return Estimate(value=p, lo=lo, hi=hi, k=k, n=n)


def d_prime_ci(
    hits: int, n_signal: int, false_alarms: int, n_noise: int, z: float = Z95
) -> Estimate:
    """d′ (log-linear corrected, as the ledger report computes it) with a normal interval."""
    value = d_prime(hits, n_signal, false_alarms, n_noise)
    interval = d_prime_interval(hits, n_signal, false_alarms, n_noise, z)
    if value is None or interval is None:
        return Estimate(value=None, n=n_signal + n_noise)
    return Estimate(value=value, lo=interval[0], hi=interval[1], n=n_signal + n_noise)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (as ``percentile_cont``)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("quantile of no values")
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (h - lo)


def quantile_ci(values: Sequence[float], q: float, z: float = Z95) -> Estimate:
    """The q-quantile with a distribution-free interval between two order statistics."""
    n = len(values)
    if n == 0:
        return Estimate(value=None, n=0)
    xs = sorted(values)
    half = z * math.sqrt(n * q * (1 - q))
    lo_rank = max(math.floor(n * q - half), 1)  # 1-based ranks
    hi_rank = min(math.ceil(n * q + half) + 1, n)
    return Estimate(value=quantile(xs, q), lo=xs[lo_rank - 1], hi=xs[hi_rank - 1], n=n)


def mean_ci(values: Sequence[float], z: float = Z95) -> Estimate:
    """The mean with a normal interval."""
    n = len(values)
    if n == 0:
        return Estimate(value=None, n=0)
    m = fmean(values)
    if n == 1:
        return Estimate(value=m, n=1)
    half = z * stdev(values) / math.sqrt(n)
    return Estimate(value=m, lo=m - half, hi=m + half, n=n)
