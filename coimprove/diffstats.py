"""Paired tests for comparing two models' responses to the same prompts, and Holm's correction.

Responses come in pairs: model A's and model B's n-th answer to the same prompt. If A and B
behave alike, swapping the two answers of a pair changes nothing, so each test here is exact
under that null (sign flips within pairs), whatever the prompts:

- `mcnemar_exact`: a yes/no marker (refused, hedged, flattered) — the discordant pairs.
- `sign_test`: a number (length in words) — pairs where B is larger vs smaller.
- `ngram_permutation_test`: the word n-gram whose presence differs most between A and B, with
  the selection of that n-gram redone inside every permutation (so choosing it costs nothing).

`holm` adjusts a family of p-values for multiplicity (family-wise error rate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REFUSAL = re.compile(
    r"\b(i can(?:'|no)t (?:help|assist|do|provide|answer)|i(?: am|'m) (?:sorry|unable|not able)|"
    r"i (?:won't|will not|cannot)|as an ai\b.*\bcan(?:'|no)t|i must decline|i refuse)",
    re.IGNORECASE,
)
HEDGING = re.compile(
    r"\b(perhaps|possibly|might|may be|maybe|i think|i believe|it seems|it depends|not sure|"
    r"i could be wrong|i might be wrong|arguably|probably|likely|uncertain)\b",
    re.IGNORECASE,
)
FLATTERY = re.compile(
    r"\b(great question|excellent question|what a (?:great|wonderful|brilliant)|you(?:'re| are) "
    r"(?:so |very |clearly |absolutely )?(?:right|smart|brilliant|clever|insightful|wise)|"
    r"brilliant|amazing idea|fantastic|i (?:completely |totally )?agree)\b",
    re.IGNORECASE,
)
WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']", re.IGNORECASE)

MARKERS: dict[str, re.Pattern[str]] = {
    "refusal": REFUSAL,
    "hedging": HEDGING,
    "flattery": FLATTERY,
}
"""The yes/no markers a response is checked for (case-insensitive regular expressions)."""


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of `text`."""
    return [w.lower() for w in WORD.findall(text)]


def ngrams(text: str, n: int = 2) -> set[str]:
    """The distinct word n-grams of `text` (plus its opening word and n-gram, marked ``^``)."""
    toks = words(text)
    grams = {" ".join(toks[i : i + n]) for i in range(max(0, len(toks) - n + 1))}
    if toks:
        grams.add("^ " + toks[0])
        grams.add("^ " + " ".join(toks[:n]))
    return grams


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p of `k` successes in `n` fair coin flips (1.0 when n == 0)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


@dataclass(frozen=True)
class PairedResult:
    """One paired test: its statistic summary and exact p-value."""

    p: float
    a: float
    """A's value: share with the marker, mean length, or count with the n-gram."""
    b: float
    pairs: int
    detail: str = ""


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> PairedResult:
    """Exact McNemar test of paired yes/no outcomes."""
    if len(a) != len(b):
        raise ValueError("mcnemar_exact: a and b must pair up")
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n = len(a) or 1
    return PairedResult(
        binom_two_sided(only_b, only_a + only_b), sum(a) / n, sum(b) / n, len(a), ""
    )


def sign_test(a: Sequence[float], b: Sequence[float]) -> PairedResult:
    """Exact sign test of paired numbers (ties dropped)."""
    if len(a) != len(b):
        raise ValueError("sign_test: a and b must pair up")
    up = sum(1 for x, y in zip(a, b, strict=True) if y > x)
    down = sum(1 for x, y in zip(a, b, strict=True) if y < x)
    n = len(a) or 1
    return PairedResult(binom_two_sided(up, up + down), sum(a) / n, sum(b) / n, len(a), "")


def ngram_permutation_test(
    a: Sequence[str], b: Sequence[str], *, n: int = 2, permutations: int = 1999, seed: int = 0
) -> PairedResult:
    """The n-gram whose presence differs most across pairs, tested by within-pair swaps.

    Statistic: max over n-grams of |#pairs where only B has it - #pairs where only A has it|;
    p = (1 + #permutations at least as extreme) / (1 + permutations).
    """
    if len(a) != len(b):
        raise ValueError("ngram_permutation_test: a and b must pair up")
    grams_a, grams_b = [ngrams(t, n) for t in a], [ngrams(t, n) for t in b]
    vocab = sorted({g for gs in grams_a + grams_b for g in gs})
    if not vocab:
        return PairedResult(1.0, 0, 0, len(a), "")
    index = {g: i for i, g in enumerate(vocab)}
    diff = np.zeros((len(a), len(vocab)), dtype=np.int32)
    for row, (ga, gb) in enumerate(zip(grams_a, grams_b, strict=True)):
        for g in gb - ga:
            diff[row, index[g]] += 1
        for g in ga - gb:
            diff[row, index[g]] -= 1
    observed = diff.sum(axis=0)
    best = int(np.argmax(np.abs(observed)))
    stat = abs(int(observed[best]))
    if stat == 0:
        return PairedResult(1.0, 0, 0, len(a), "")
    # an n-gram discordant in fewer pairs than `stat` can never reach it: dropping it is exact
    diff = diff[:, np.abs(diff).sum(axis=0) >= stat]
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1, 1], dtype=np.int32), size=(permutations, len(a)))
    extreme = int((np.abs(signs @ diff).max(axis=1) >= stat).sum())
    gram = vocab[best]
    count_a = sum(1 for g in grams_a if gram in g)
    count_b = sum(1 for g in grams_b if gram in g)
    return PairedResult((1 + extreme) / (1 + permutations), count_a, count_b, len(a), gram)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
