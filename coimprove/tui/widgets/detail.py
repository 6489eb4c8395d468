"""What the reviewer reads: a short summary under the queue, and the full detail screen body.

The summary deliberately leaves out the payload, diff and artifacts: those are the detail,
and opening them is what ``detail.viewed`` records (the rubber-stamp measure depends on it).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.markdown import Markdown
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from coimprove.gates import GateRecord
from coimprove.model import Artifact
from coimprove.resubmission import describe
from coimprove.tui.data import DetailData
from coimprove.tui.format import (
    StyledLine,
    contents,
    diff_lines,
    diff_text,
    is_diff,
    needs,
    pretty_json,
    risk_style,
    short_digest,
    split_critique,
)

MAX_TEXT_LINES = 400
INLINE_LINES = 200
"""Artifacts longer than this are drawn one line at a time, only where visible (`DetailView`)."""
_JSON = JSONHighlighter()
SPEC_KINDS = frozenset({"experiment"})


def _header(record: GateRecord, dark: bool) -> list[RenderableType]:
    p, req = record.proposal, record.request
    line = Text()
    line.append(p.kind, style="bold")
    line.append(" · risk ")
    line.append(p.risk, style=risk_style(p.risk, dark))
    line.append(f" · by {p.author} · round {req.round} · {req.graph}/{req.gate}")
    rule = req.requirement
    meta = Text(
        f"needs {needs(record)} · policy {rule.policy} ({rule.rule}) · "
        f"digest {short_digest(p.digest)} · {record.gate_id}",
        style="dim",
    )
    out: list[RenderableType] = [Text(p.title, style="bold"), line, meta]
    if record.status != "open":
        out.append(closed_banner(record))
    if req.feedback:
        out.append(Text.assemble(("previous round: ", "bold yellow"), req.feedback))
    if req.resubmission is not None:
        flagged = req.resubmission.flagged
        out.append(Text(describe(req.resubmission), style="bold red" if flagged else "dim"))
    return out


def closed_banner(record: GateRecord) -> Text:
    """The notice shown when a gate was decided while it was on screen."""
    outcome = record.outcome
    verdicts = ", ".join(f"{d.verdict} by {d.reviewer}" for _, d in record.decisions)
    how = "timed out" if record.timed_out else (verdicts or "resolved")
    shown = outcome.outcome if outcome and outcome.outcome != "canary" else "closed"
    return Text(
        f" decided elsewhere: {shown} ({how}); nothing you do here changes it ",
        style="bold reverse yellow",
    )


def summary(record: GateRecord | None, *, dark: bool, holds: str | None = None) -> RenderableType:
    """The preview under the queue: header, what the detail holds (`holds`, default: from
    `record`), the AI critique's first line, and the rationale."""
    if record is None:
        return Text("No gates are waiting. New ones appear here as runs reach them.", "dim")
    out = _header(record, dark)
    body, critique = split_critique(record.proposal.body.strip())
    holds = contents(record) if holds is None else holds
    if holds:
        out.append(Text(f"detail: {holds} — press Enter or d to open", style="italic"))
    if critique:
        first = critique.splitlines()[0].replace("**", "")
        out.append(Text(f"AI {first}", style="italic"))
    if body:  # last: in a small terminal the summary's bottom is cut, never its header
        lines = body.splitlines()
        out.append(Text("\n".join(lines[:6]) + ("\n…" if len(lines) > 6 else "")))
    return Group(*out)


def _section(title: str) -> Rule:
    return Rule(Text(title, style="bold"), align="left", style="dim")


def _spec(payload: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in payload.items():
        table.add_row(str(key), value if isinstance(value, str) else pretty_json(value))
    return table


def _artifact(a: Artifact, dark: bool) -> list[RenderableType]:
    head = Text(f"{a.name}  ({a.media_type}, {a.size} B, {short_digest(a.digest)})", "bold")
    if a.content is None:
        return [head, Text(f"not inline: {a.uri or 'no uri'}", style="dim")]
    if is_diff(a.name, a.media_type, a.content):
        return [head, diff_text(a.content, dark=dark)]
    lines = a.content.splitlines()
    text = "\n".join(lines[:MAX_TEXT_LINES])
    if len(lines) > MAX_TEXT_LINES:
        text += f"\n… {len(lines) - MAX_TEXT_LINES} more lines not shown"
    return [head, Text(text)]


def _history(rounds: tuple[GateRecord, ...]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for r in rounds:
        outcome = r.outcome
        line = Text(f"round {r.request.round}: ", style="bold")
        line.append(r.proposal.title)
        line.append(f"  → {outcome.outcome if outcome else r.status}", style="italic")
        out.append(line)
        for _, d in r.decisions:
            note = f": {d.note}" if d.note else ""
            out.append(Text(f"    {d.reviewer} {d.verdict}{note}"))
        if r.timed_out is not None:
            out.append(Text("    timed out", style="italic"))
    return out


def _results(results: tuple[dict[str, Any], ...]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for r in results:
        line = Text(f"{r.get('gate')}: exit {r.get('exit_code')} ({r.get('ended_by')}), ")
        line.append(f"{r.get('wall_s')}s, metrics {pretty_json(r.get('metrics'))}")
        out.append(line)
    return out


def detail(data: DetailData, *, dark: bool) -> RenderableType:
    """The full detail: everything a reviewer needs to decide, without anything hidden."""
    head, _, tail = detail_parts(data, dark=dark, inline_lines=None)
    return Group(head, tail)


def _artifact_lines(a: Artifact, dark: bool) -> list[StyledLine]:
    """An artifact as (line, style) pairs for `DetailView`, styled as inline."""
    out: list[StyledLine] = [
        (f"Artifact: {a.name}", "bold underline"),
        (f"{a.name}  ({a.media_type}, {a.size} B, {short_digest(a.digest)})", "bold"),
    ]
    if a.content is None:
        return [*out, (f"not inline: {a.uri or 'no uri'}", "dim")]
    if is_diff(a.name, a.media_type, a.content):
        return out + diff_lines(a.content, dark=dark)
    return out + [(line, "") for line in a.content.splitlines()]


def detail_parts(
    data: DetailData, *, dark: bool, inline_lines: int | None = INLINE_LINES
) -> tuple[RenderableType, list[StyledLine], RenderableType]:
    """The detail as (head, artifact lines, tail). When the artifacts hold more than
    `inline_lines` lines (None: never), they come as separate lines for `DetailView`,
    which draws only what is visible; otherwise everything is in `head`."""
    record = data.record
    p = record.proposal
    out = _header(record, dark)
    body, critique = split_critique(p.body.strip())
    if body:
        out += [_section("Rationale"), Text(body)]
    if critique:
        out += [_section("AI risk critique (advisory)"), Markdown(critique)]
    if p.payload:
        if p.kind in SPEC_KINDS or "command" in p.payload:
            out += [_section("Experiment spec"), _spec(p.payload)]
        else:
            # Rich's JSON highlighter (regular expressions) rather than a Pygments lexer:
            # the same colours for keys, strings and numbers at a fraction of the cost.
            out += [_section("Payload"), _JSON(pretty_json(p.payload))]
    if p.commit:
        out.append(Text(f"commit {p.commit}", style="dim"))
    total = sum((a.content or "").count("\n") + 1 for a in p.artifacts)
    lines: list[StyledLine] = []
    if inline_lines is not None and total > inline_lines:
        for a in p.artifacts:
            lines += _artifact_lines(a, dark)
        head, out = Group(*out), []
    else:
        for a in p.artifacts:
            out.append(_section(f"Artifact: {a.name}"))
            out += _artifact(a, dark)
        head = None
    if p.tags:
        out.append(Text("tags: " + ", ".join(p.tags), style="dim"))
    if data.results:
        out += [_section("Prior results in this run"), *_results(data.results)]
    if data.history:
        out += [_section("Earlier rounds"), *_history(data.history)]
    out.append(Text(f"digest {p.digest}", style="dim"))
    if head is None:
        return Group(*out), [], Text("")
    return head, lines, Group(*out)
