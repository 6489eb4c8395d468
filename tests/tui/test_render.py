"""What the summary and detail views say, rendered to plain text (no app needed)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console, RenderableType

from coimprove.gates import GateRecord, fold_gate
from coimprove.model import Artifact, LedgerEvent, Proposal, Requirement
from coimprove.tui.data import DetailData
from coimprove.tui.format import age, diff_text, split_critique
from coimprove.tui.screens.dialogs import parse_payload
from coimprove.tui.widgets.detail import detail, detail_parts, summary
from tests.tui.review_graph import DIFF


def _plain(renderable: RenderableType) -> str:
    console = Console(width=120, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _record(proposal: Proposal, round_: int = 1) -> GateRecord:
    requirement = Requirement(
        policy="default",
        rule="defaults",
        roles=("reviewer",),
        quorum=2,
        reviewer_kinds=("human",),
        allowed=("approve", "reject"),
        timeout_s=None,
        on_timeout="reject",
        min_review_seconds=10,
        escalation=(),
    )
    request: dict[str, Any] = {
        "gate_id": f"r-1.review.{round_}",
        "run_id": "r-1",
        "graph": "g",
        "gate": "review",
        "round": round_,
        "proposal": proposal.model_dump(mode="json"),
        "requirement": requirement.model_dump(mode="json"),
    }
    opened = LedgerEvent(
        seq=1,
        type="gate.opened",
        run_id="r-1",
        gate_id=request["gate_id"],
        at=0.0,
        data={"interrupt_id": "i", "request": request},
        prev_hash="0",
        hash="1",
    )
    return fold_gate([opened])


def test_the_summary_leaves_the_diff_and_payload_to_the_detail() -> None:
    p = Proposal(
        kind="code",
        title="Patch",
        body="why",
        payload={"lr": 0.5},
        author="agent:x",
        artifacts=(Artifact.from_text("changes.diff", DIFF, "text/x-diff"),),
    )
    shown = _plain(summary(_record(p), dark=True))
    assert "quorum 0/2" in shown and "why" in shown
    assert "changes.diff (+1 -1)" in shown and "payload (1 fields)" in shown
    assert "LR = 0.01" not in shown and '"lr"' not in shown
    full = _plain(detail(DetailData(_record(p)), dark=True))
    assert "+LR = 0.01" in full and '"lr": 0.5' in full


def test_added_and_removed_lines_are_coloured_in_both_themes() -> None:
    for dark in (True, False):
        text = diff_text(DIFF, dark=dark)
        styles = {text.plain[s.start : s.end].strip(): str(s.style) for s in text.spans}
        assert "green" in styles["+LR = 0.01"] and "red" in styles["-LR = 0.1"]
    assert "more lines not shown" in diff_text("+a\n" * 10, dark=True, max_lines=3).plain


def test_experiment_spec_results_history_and_critique_have_their_sections() -> None:
    critique = (
        "**Safety critique** (advisory, by model m) — risk: high. Deletes data.\n- concern: rm"
    )
    p = Proposal(
        kind="experiment",
        title="Run it",
        body=f"Because.\n\n---\n{critique}",
        payload={"command": "python3 train.py", "timeout_s": 60},
        author="agent:x",
    )
    earlier = _record(p.model_copy(update={"title": "first try"}))
    results = ({"gate": "r-1.review.1", "exit_code": 0, "ended_by": "exit", "metrics": {}},)
    full = _plain(detail(DetailData(_record(p, round_=2), (earlier,), results), dark=False))
    for heading in ("Experiment spec", "AI risk critique", "Prior results", "Earlier rounds"):
        assert heading in full
    assert "python3 train.py" in full and "round 1: first try" in full
    assert "concern: rm" in full and "Because." in full
    assert "AI Safety critique" in _plain(summary(_record(p), dark=True))
    assert split_critique("plain body") == ("plain body", None)


def test_ages_are_short() -> None:
    assert [age(s) for s in (5, 125, 7200, 200000)] == ["5s", "2m", "2h", "2d"]


def test_an_edited_payload_must_be_a_json_object_matching_the_schema() -> None:
    schema = {"type": "object", "properties": {"lr": {"type": "number", "maximum": 1}}}
    assert parse_payload('{"lr": 0.5}', schema) == {"lr": 0.5}
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_payload("{", schema)
    with pytest.raises(ValueError, match="JSON object"):
        parse_payload("[1]", None)
    with pytest.raises(ValueError, match="schema at lr"):
        parse_payload('{"lr": 5}', schema)


def test_a_long_diff_is_drawn_line_by_line_after_the_rest_of_the_head() -> None:
    body = "".join(f"+line {i}\n" for i in range(1500))
    diff = f"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -0,0 +1,1500 @@\n{body}"
    proposal = Proposal(
        kind="code",
        title="Big change",
        body="Why.",
        artifacts=(Artifact.from_text("big.diff", diff, "text/x-diff"),),
        author="agent:x",
        tags=("t1",),
    )
    head, lines, tail = detail_parts(DetailData(_record(proposal)), dark=True)
    assert "Why." in _plain(head) and "+line 0" not in _plain(head)
    assert ("+line 0", "green") in lines and ("+line 1499", "green") in lines
    assert lines[0] == ("Artifact: big.diff", "bold underline")
    assert "tags: t1" in _plain(tail) and "digest sha256:" in _plain(tail)
    # a short diff stays inline, as one renderable
    small = proposal.model_copy(
        update={"artifacts": (Artifact.from_text("changes.diff", DIFF, "text/x-diff"),)}
    )
    head, lines, _ = detail_parts(DetailData(_record(small)), dark=True)
    assert lines == [] and "+LR = 0.01" in _plain(head)
