"""Pure formatting helpers: ages, requirements, risk and diff colouring (no widgets here)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from coimprove.gates import GateRecord

RISK_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}
RISKY = frozenset({"high", "critical"})
MAX_DIFF_LINES = 2000
StyledLine = tuple[str, str]
"""One line of text and the Rich style it is shown in."""


def age(seconds: float) -> str:
    """A short age: ``42s``, ``5m``, ``3h``, ``2d``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def needs(record: GateRecord) -> str:
    """What the policy still needs, e.g. ``quorum 1/2`` or ``quorum 0/1 lead``."""
    req = record.request.requirement
    text = f"quorum {len(record.approvers())}/{req.quorum}"
    if tuple(req.roles) != ("reviewer",):
        text += " " + ",".join(req.roles)
    return text


def risk_style(risk: str, dark: bool) -> str:
    """The style a risk level is shown in."""
    if risk == "critical":
        return "bold white on red" if dark else "bold white on red3"
    if risk == "high":
        return "bold red" if dark else "bold red3"
    if risk == "medium":
        return "yellow" if dark else "dark_orange3"
    return "green" if dark else "dark_green"


def risk_text(risk: str, dark: bool) -> Text:
    return Text(risk, style=risk_style(risk, dark))


def diff_lines(diff: str, *, dark: bool, max_lines: int = MAX_DIFF_LINES) -> list[StyledLine]:
    """A unified diff as (line, style): added lines green, removed red, hunk headers cyan."""
    add, rem = ("green", "red") if dark else ("dark_green", "red3")
    hunk = "cyan" if dark else "dark_cyan"
    out: list[StyledLine] = []
    lines = diff.splitlines()
    for line in lines[:max_lines]:
        if line.startswith(("+++", "---", "diff --git", "index ")):
            style = "bold"
        elif line.startswith("+"):
            style = add
        elif line.startswith("-"):
            style = rem
        elif line.startswith("@@"):
            style = hunk
        else:
            style = ""
        out.append((line, style))
    if len(lines) > max_lines:
        out.append((f"… {len(lines) - max_lines} more lines not shown", "italic"))
    return out


def diff_text(diff: str, *, dark: bool, max_lines: int = MAX_DIFF_LINES) -> Text:
    """A unified diff with added lines green, removed lines red and hunk headers cyan."""
    out = Text()
    for line, style in diff_lines(diff, dark=dark, max_lines=max_lines):
        out.append(line + "\n", style=style)
    return out


def is_diff(name: str, media_type: str, content: str) -> bool:
    """Whether an artifact is a diff worth colouring."""
    return (
        name.endswith((".diff", ".patch"))
        or media_type in ("text/x-diff", "text/x-patch")
        or content.startswith(("diff --git", "--- "))
    )


def pretty_json(value: Any) -> str:
    """Indented JSON as shown in the detail view and the edit dialog."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def short_digest(digest: str) -> str:
    """``sha256:3f9a1c2b7d4e`` (12 hex digits, enough for `coimprove decide --digest`)."""
    return digest[:19]


CRITIQUE_MARK = "**Safety critique**"


def split_critique(body: str) -> tuple[str, str | None]:
    """The body without the AI safety critique an agent appended to it, and that critique."""
    at = body.find(CRITIQUE_MARK)
    if at < 0:
        return body, None
    head = body[:at].rstrip()
    head = head.removesuffix("---").rstrip()
    return head, body[at:].strip()


def contents(record: GateRecord) -> str:
    """What the detail of `record` holds, e.g. ``payload (2 fields), changes.diff (+1 -1)``."""
    p = record.proposal
    parts: list[str] = []
    if p.payload:
        parts.append(f"payload ({len(p.payload)} fields)")
    for a in p.artifacts:
        if a.content and is_diff(a.name, a.media_type, a.content):
            lines = a.content.splitlines()
            plus = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
            minus = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
            parts.append(f"{a.name} (+{plus} -{minus})")
        else:
            parts.append(a.name)
    if record.request.round > 1:
        parts.append(f"{record.request.round - 1} earlier round(s)")
    return ", ".join(parts)
