"""What every canary family shares: the family protocol and how a flawed copy is rebuilt.

A canary must look like an ordinary proposal of the same agent: same kind, author, risk, tags
and payload keys, a plausible title and body (text that quoted a changed value quotes the new
one), its own fresh id and a digest computed over its own content. Nothing on it says "canary":
only the ledger's hidden part of the gate knows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, Protocol

from coimprove.model import Artifact, Proposal


class CanaryFamily(Protocol):
    """One family of planted flaws (code, experiment, benchmark item …)."""

    kinds: tuple[str, ...]
    """The mutation kinds this family can plant (recorded in the ledger when revealed)."""
    proposal_kinds: tuple[str, ...]
    """Proposal kinds the family is made for (preferred there over other families)."""

    def mutations(self, proposal: Proposal) -> tuple[str, ...]:
        """The mutation kinds that apply to this proposal (empty: none)."""
        ...

    def apply(self, kind: str, proposal: Proposal, rng: random.Random) -> Proposal | None:
        """The flawed copy for mutation `kind`, or None if it cannot be made after all."""
        ...


def fresh_id(rng: random.Random) -> str:
    """A proposal id drawn from `rng`: the same seed and gate give the same canary."""
    return "p-" + "".join(rng.choice("0123456789abcdef") for _ in range(12))


def rebuild(
    proposal: Proposal,
    rng: random.Random,
    *,
    payload: dict[str, Any] | None = None,
    artifacts: tuple[Artifact, ...] | None = None,
    body: str | None = None,
    commit: str | None = None,
    replacements: Mapping[str, str] | None = None,
    id: str | None = None,
) -> Proposal:
    """The flawed copy: new content, a fresh id, and the title/body rewritten consistently.

    `replacements` maps text the original shows (a value, an answer) to what the flawed copy
    shows instead; they are applied to the title and body so the prose agrees with the payload.
    """
    title, text = proposal.title, proposal.body if body is None else body
    if replacements:
        title, text = replace_values(title, replacements), replace_values(text, replacements)
    return Proposal(
        id=id or fresh_id(rng),
        kind=proposal.kind,
        title=title,
        body=text,
        payload=proposal.payload if payload is None else payload,
        artifacts=proposal.artifacts if artifacts is None else artifacts,
        author=proposal.author,
        risk=proposal.risk,
        tags=proposal.tags,
        commit=proposal.commit if commit is None else commit,
        revises=proposal.revises,
    )


def replace_values(text: str, replacements: Mapping[str, str]) -> str:
    """Replace each key where it stands as a whole token (not inside a longer word or number),
    in one pass (longest first), so a replacement is never replaced again."""
    olds = sorted((k for k, v in replacements.items() if k and k != v), key=len, reverse=True)
    if not olds:
        return text
    pattern = r"(?<![\w.])(?:" + "|".join(re.escape(o) for o in olds) + r")(?![\w])"
    return re.sub(pattern, lambda m: replacements[m.group(0)], text)


def walk_leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every leaf of a JSON value with its path (dict keys and list indexes)."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in walk_leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in walk_leaves(v, (*path, i))]
    return [(path, value)]


def set_path(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A deep copy of a JSON value with the leaf at `path` replaced."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        out[head] = set_path(value[head], rest, new)
        return out
    items = list(value)
    items[head] = set_path(items[head], rest, new)
    return items


def format_like(old: str, value: float) -> str:
    """`value` written the way `old` was (an integer stays an integer)."""
    if re.fullmatch(r"[-+]?\d+", old.strip()):
        return str(round(value))
    text = f"{value:.6g}"
    if "." in old and not any(c in text for c in ".en"):
        text += ".0"  # 0.001 × 1000 is written 1.0, not 1
    return text
