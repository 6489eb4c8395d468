"""Skill-convergence collapse as signal or noise: do reviewers' edits improve outcomes?

For the proposals of a group of cells (`coimprove.ablate.proposals`) that shipped, cut by
their place in the cell's sequence of proposals into `windows` equal slices (early → late, the
cells' slices pooled), with 95 % intervals:

* paired, against the unedited proposal itself: of the edited proposals, the share that were
  flawed or dead ends as proposed (``truth``) and the share that shipped so (``shipped_truth``,
  what the effect recorded), and the share of the bad ones the edit repaired (Wilson);
* unpaired, against proposals approved without an edit: flaws shipped per approval, edited vs
  unedited, and their difference (Newcombe's hybrid score interval);
* the effect-failure rate after an edit vs after a plain approval (an effect metric every
  workflow has).

An edit that only touches presentation repairs nothing: its "repaired" share stays at 0 and the
flaw rates match the unedited ones — human changes that are noise. An edit that fixes things
shows a repaired share above 0 and fewer flaws shipped than the unedited proposals had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from coimprove.ablate.cells import CellResult
from coimprove.ablate.stats import Estimate, wilson

__all__ = ["EditOutcomes", "EditWindow", "edit_outcomes", "newcombe"]

_BAD = ("flawed", "dead_end")
DEFAULT_WINDOWS = 4


def newcombe(k1: int, n1: int, k2: int, n2: int) -> Estimate:
    """p1 − p2 with Newcombe's hybrid score interval (method 10) from two Wilson intervals."""
    a, b = wilson(k1, n1), wilson(k2, n2)
    if a.value is None or b.value is None:
        return Estimate(value=None, n=n1 + n2)
    if a.lo is None or a.hi is None or b.lo is None or b.hi is None:
        return Estimate(value=None, n=n1 + n2)
    d = a.value - b.value
    lo = d - math.sqrt((a.value - a.lo) ** 2 + (b.hi - b.value) ** 2)
    hi = d + math.sqrt((a.hi - a.value) ** 2 + (b.value - b.lo) ** 2)
    return Estimate(value=d, lo=max(lo, -1.0), hi=min(hi, 1.0), n=n1 + n2)


class EditWindow(BaseModel):
    """Edited vs unedited outcomes in one slice of time."""

    model_config = ConfigDict(frozen=True)

    window: int
    edited: int
    approved_unedited: int
    edited_bad_as_proposed: Estimate
    edited_bad_shipped: Estimate
    repaired: Estimate
    """Of the edited proposals that were bad as proposed, the share that shipped sound."""
    unedited_bad_shipped: Estimate
    difference: Estimate
    """Flaws shipped per edited approval minus per unedited approval (negative: edits help)."""
    edited_effect_failed: Estimate
    unedited_effect_failed: Estimate


class EditOutcomes(BaseModel):
    """Edited vs unedited outcomes of one group of cells, overall and per window."""

    model_config = ConfigDict(frozen=True)

    label: str
    arm: str | None = None
    windows: list[EditWindow]
    overall: EditWindow


def _window(index: int, rows: Sequence[tuple[str, str | None, str | None, int]]) -> EditWindow:
    """`rows`: (outcome, truth, shipped truth, effect failed) of approved proposals."""
    edited = [r for r in rows if r[0] == "edit"]
    plain = [r for r in rows if r[0] == "approve"]
    bad_before = sum(r[1] in _BAD for r in edited)
    bad_after = sum(r[2] in _BAD for r in edited)
    repaired = sum(r[1] in _BAD and r[2] not in _BAD for r in edited)
    plain_bad = sum(r[2] in _BAD for r in plain)
    return EditWindow(
        window=index,
        edited=len(edited),
        approved_unedited=len(plain),
        edited_bad_as_proposed=wilson(bad_before, len(edited)),
        edited_bad_shipped=wilson(bad_after, len(edited)),
        repaired=wilson(repaired, bad_before),
        unedited_bad_shipped=wilson(plain_bad, len(plain)),
        difference=newcombe(bad_after, len(edited), plain_bad, len(plain)),
        edited_effect_failed=wilson(sum(r[3] for r in edited), len(edited)),
        unedited_effect_failed=wilson(sum(r[3] for r in plain), len(plain)),
    )


def edit_outcomes(
    label: str,
    results: Sequence[CellResult],
    *,
    arm: str | None = None,
    windows: int = DEFAULT_WINDOWS,
) -> EditOutcomes:
    """Pool the approved proposals of `results` into edited-vs-unedited outcomes over time."""
    if windows < 1:
        raise ValueError(f"windows must be at least 1, not {windows}")
    sliced: list[list[tuple[str, str | None, str | None, int]]] = [[] for _ in range(windows)]
    for result in results:
        if not result.ok or result.measures is None:
            continue
        cols = result.measures.proposals
        n = len(cols)
        for i in range(n):
            outcome = cols.outcome[i]
            if outcome not in ("approve", "edit"):
                continue
            w = min(i * windows // n, windows - 1)
            sliced[w].append((outcome, cols.truth[i], cols.shipped_truth[i], cols.effect_failed[i]))
    return EditOutcomes(
        label=label,
        arm=arm,
        windows=[_window(i + 1, rows) for i, rows in enumerate(sliced)],
        overall=_window(0, [r for rows in sliced for r in rows]),
    )
