"""Reward capture of the collaboration: a revision that comes back after ``request_changes``
without integrating the feedback.

A gate reopened after ``request_changes`` compares the new proposal with the version it sent
back (`compare`) and shows the result on the gate (`GateRequest.resubmission`, recorded in the
``gate.opened`` event). What is compared is the proposal's *substance*: its payload and its
artifacts (inline content, else digest), or its body when it has neither. Title, author, tags,
risk and (when there is a payload or an artifact) the body are presentation: a new title or a
"revised as asked" sentence does not make a revision.

- ``unchanged``: the substance is equal as JSON data.
- ``trivial``: equal after normalisation: every string case-folded with whitespace runs collapsed
  and ends stripped, integral floats as integers (``1.0`` = ``1``), mapping keys sorted. Any other
  difference, however small (one number, one word), is a change: no similarity threshold decides,
  so a one-value fix in a large payload is never flagged.
- ``changed``: anything else.

``similarity`` (difflib's ratio of the normalised texts) is shown beside the verdict for the
reviewer, not used to decide it (above 40,000 characters, difflib's quick upper bound).
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from coimprove.model import Proposal, Resubmission, canonical_json

_SPACE = re.compile(r"\s+")
_EXACT_RATIO_CHARS = 40_000
"""Above this many characters, `similarity` is difflib's quick (upper-bound) ratio."""


def normalise(value: Any) -> Any:
    """The JSON value with trivial differences removed (see the module docstring)."""
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip().casefold()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {normalise(str(k)): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def _substance(proposal: Proposal, compared: str) -> dict[str, Any]:
    if compared == "body":
        return {"body": proposal.body}
    return {
        "payload": proposal.payload,
        "artifacts": [
            {"name": a.name, "content": a.content if a.content is not None else a.digest}
            for a in proposal.artifacts
        ],
    }


def compare(
    previous: Proposal, current: Proposal, *, previous_gate_id: str | None = None
) -> Resubmission:
    """How `current` (a revision after ``request_changes``) differs from `previous`."""
    has_substance = any(p.payload or p.artifacts for p in (previous, current))
    compared = "payload+artifacts" if has_substance else "body"
    before, after = _substance(previous, compared), _substance(current, compared)
    raw_before = json.loads(canonical_json(before))
    raw_after = json.loads(canonical_json(after))
    norm_before, norm_after = normalise(raw_before), normalise(raw_after)
    if raw_before == raw_after:
        change = "unchanged"
    elif norm_before == norm_after:
        change = "trivial"
    else:
        change = "changed"
    changed_fields = tuple(k for k in before if normalise(raw_before[k]) != normalise(raw_after[k]))
    text_before = json.dumps(norm_before, sort_keys=True, ensure_ascii=False)
    text_after = json.dumps(norm_after, sort_keys=True, ensure_ascii=False)
    matcher = difflib.SequenceMatcher(None, text_before, text_after, autojunk=False)
    long = len(text_before) + len(text_after) > _EXACT_RATIO_CHARS
    similarity = matcher.quick_ratio() if long else matcher.ratio()
    return Resubmission(
        previous_gate_id=previous_gate_id,
        change=change,
        compared=compared,
        similarity=round(similarity, 4),
        changed_fields=changed_fields,
    )


def describe(resubmission: Resubmission) -> str:
    """One line for a reviewer: what the revision changed."""
    r = resubmission
    what = "payload and artifacts" if r.compared == "payload+artifacts" else "body"
    since = f" since {r.previous_gate_id}" if r.previous_gate_id else ""
    if r.change == "unchanged":
        return f"UNCHANGED RESUBMISSION: {what} identical{since} (only presentation may differ)"
    if r.change == "trivial":
        return (
            f"TRIVIAL RESUBMISSION: {what} differ{since} only in case/whitespace/number form "
            f"(similarity {r.similarity:.3f})"
        )
    fields = ", ".join(r.changed_fields) or what
    return f"revision{since}: changed {fields} (similarity {r.similarity:.3f})"
