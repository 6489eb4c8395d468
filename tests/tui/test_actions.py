"""Every action, end to end: keys in the real app, a real ledger, a real paused run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input, Static, TextArea

from coimprove import Artifact, Runner
from coimprove.gates import load_gate
from coimprove.tui import ReviewApp
from coimprove.tui.screens.dialogs import ConfirmDialog, EditDialog, NoteDialog
from tests.tui.helpers import detail_text, events, refresh, settle, text, types
from tests.tui.review_graph import build

MakeApp = Callable[..., ReviewApp]


async def test_approve_records_the_view_and_decision_and_resumes_the_run(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        (gate_id,) = app.queue.records
        assert app.tracker.shown == gate_id
        digest = app.queue.records[gate_id].proposal.digest
        await pilot.press("a")
        await settle(pilot)
        assert not app.queue.records
    decided = events(runner, info.run_id, "gate.decided")
    assert [(e.actor, e.data["verdict"]) for e in decided] == [("alice", "approve")]
    assert decided[0].data["decision"]["digest"] == digest
    assert decided[0].data["reviewer_kind"] == "human"
    assert types(runner, info.run_id).index("gate.viewed") < types(runner, info.run_id).index(
        "gate.decided"
    )
    assert runner.info(info.run_id).state == "finished"
    assert (await runner.state(info.run_id))["trained"] == {"lr": 0.01, "epochs": 3}


async def test_enter_opens_the_detail_and_never_approves(runner: Runner, make_app: MakeApp) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.detail_open and app.screen is app.main
        assert app.main.detail.visible
        shown = detail_text(app)
        assert "+LR = 0.01" in shown and "-LR = 0.1" in shown
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert "gate.decided" not in types(runner, info.run_id)
        await pilot.press("escape")
        await settle(pilot)
        assert not app.detail_open
        assert not app.main.detail.visible
    assert types(runner, info.run_id)[-2:] == ["gate.viewed", "detail.viewed"]
    assert runner.info(info.run_id).state == "waiting"


async def test_high_risk_approval_asks_first_and_enter_cancels(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build("risky", risk="high"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot)
        assert "gate.decided" not in types(runner, info.run_id)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
    assert [e.data["verdict"] for e in events(runner, info.run_id, "gate.decided")] == ["approve"]
    assert runner.info(info.run_id).state == "finished"


async def test_request_changes_needs_a_note_and_the_revision_comes_back(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, NoteDialog)
        await pilot.press("enter")  # an empty note is refused
        await pilot.pause()
        assert isinstance(app.screen, NoteDialog)
        await pilot.press(*"cite the baseline", "enter")
        await settle(pilot)
        await refresh(pilot)
        (second,) = app.queue.records.values()
        assert second.request.round == 2
        assert second.request.feedback == "cite the baseline"
        assert app.tracker.shown == second.gate_id
        summary = text(app.main.query_one("#summary", Static))
        assert "previous round: cite the baseline" in summary
        await pilot.press("d")
        await settle(pilot)
        detail = detail_text(app)
        assert "Earlier rounds" in detail and "alice request_changes: cite the baseline" in detail
    (decided,) = events(runner, info.run_id, "gate.decided")
    assert decided.data["decision"]["note"] == "cite the baseline"


async def test_reject_ends_the_run_without_the_effect(runner: Runner, make_app: MakeApp) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press(*"unsafe", "enter")
        await settle(pilot)
    (decided,) = events(runner, info.run_id, "gate.decided")
    assert decided.data["verdict"] == "reject" and decided.data["decision"]["note"] == "unsafe"
    assert runner.info(info.run_id).state == "finished"
    assert "effect.started" not in types(runner, info.run_id)
    assert "trained" not in await runner.state(info.run_id)


async def test_edit_is_validated_against_the_schema_before_it_is_accepted(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, EditDialog)
        area = dialog.query_one(TextArea)
        error = dialog.query_one("#error", Static)
        area.load_text('{"lr": 0.001,')
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog and "not valid JSON" in text(error)
        area.load_text('{"lr": 5, "epochs": 3}')
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog and "lr" in text(error)
        area.load_text('{"lr": 0.001, "epochs": 5}')
        await pilot.press("ctrl+s")
        await settle(pilot)
    (decided,) = events(runner, info.run_id, "gate.decided")
    assert decided.data["verdict"] == "edit"
    assert decided.data["decision"]["edited_payload"] == {"lr": 0.001, "epochs": 5}
    assert (await runner.state(info.run_id))["trained"] == {"lr": 0.001, "epochs": 5}
    (started,) = events(runner, info.run_id, "effect.started")
    assert started.data["digest"] == decided.data["new_digest"]


async def test_escalate_reopens_the_gate_for_a_lead_and_alice_cannot_decide_it(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await pilot.pause()
        await pilot.press(*"needs a lead", "enter")
        await settle(pilot)
        await refresh(pilot)
        (lead_gate,) = app.queue.records.values()
        assert lead_gate.request.requirement.roles == ("lead",)
        assert "quorum 0/1 lead" in str(app.queue.get_row(lead_gate.gate_id))
        await pilot.press("a")  # refused by policy: nothing recorded
        await settle(pilot)
        assert lead_gate.gate_id in app.queue.records
    assert [e.data["verdict"] for e in events(runner, info.run_id, "gate.decided")] == ["escalate"]
    assert "gate.escalated" in types(runner, info.run_id)


async def test_no_apply_records_the_decision_and_leaves_the_run(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app(apply=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
    assert runner.info(info.run_id).state == "ready"
    await runner.advance()
    assert runner.info(info.run_id).state == "finished"


async def test_filter_narrows_the_queue_and_escape_restores_it(
    runner: Runner, make_app: MakeApp
) -> None:
    await runner.start(build())
    await runner.start(build("risky", risk="high"))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.queue.row_count == 2
        await pilot.press("slash", *"high")
        await pilot.pause()
        assert app.queue.row_count == 1
        assert app.main.query_one("#filter", Input).has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert app.queue.row_count == 2


def test_the_review_graph_module_is_importable(tmp_path: Path) -> None:
    assert build().name == "tune"


async def test_a_quorum_gate_shows_its_progress_and_waits_for_a_second_reviewer(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build(), policy="strict")  # code needs two reviewers
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        (gate_id,) = app.queue.records
        assert "quorum 0/2" in str(app.queue.get_row(gate_id))
        await pilot.press("a")
        await settle(pilot)
        assert "quorum 1/2 ✓you" in str(app.queue.get_row(gate_id))
        await pilot.press("a")  # the same reviewer cannot count twice: refused, nothing written
        await settle(pilot)
    assert [e.actor for e in events(runner, info.run_id, "gate.decided")] == ["alice"]
    assert runner.info(info.run_id).state == "waiting"


async def test_only_mine_shows_the_gates_this_reviewer_may_decide_now(
    runner: Runner, make_app: MakeApp
) -> None:
    mine = await runner.start(build())
    safety = await runner.start(build("deploy", risk="critical"), policy="strict")  # safety role
    quorum = await runner.start(build(), policy="strict")  # two reviewers; alice approves once
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        app.queue.move_cursor(row=app.queue.get_row_index(quorum.open_gates[0]))
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert app.queue.row_count == 3
        await pilot.press("m")
        await settle(pilot)
        assert list(app.queue.rows) == [mine.open_gates[0]]
        assert "only yours (1 shown)" in text(app.main.query_one("#status"))  # type: ignore[arg-type]
        await pilot.press("m")
        await settle(pilot)
        assert set(app.queue.rows) == {
            mine.open_gates[0],
            safety.open_gates[0],
            quorum.open_gates[0],
        }


async def test_a_long_diff_opens_in_the_detail_and_draws_only_visible_lines(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    gate_id = info.open_gates[0]
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        record = app.queue.records[gate_id]
        body = "".join(f"+row {i}\n" for i in range(3000))
        big = Artifact.from_text("big.diff", f"--- a/x\n+++ b/x\n{body}", "text/x-diff")
        full = load_gate(runner.ledger, gate_id)
        app.queue.records[gate_id] = dataclasses.replace(  # as if the gate carried a big diff
            full, request=full.request.model_copy(update={"proposal": record.proposal})
        )
        app.queue.records[gate_id].proposal = full.proposal.model_copy(update={"artifacts": (big,)})
        await pilot.press("d")
        await settle(pilot)
        rendered = app.main.detail.rendered
        assert rendered is not None and len(rendered.lines) > 2000
        assert app.main.detail.virtual_size.height == rendered.height  # scrolls over all of it
        assert len(rendered._drawn) < 60  # but only the lines the screen showed were drawn
        start = len(rendered.head)
        assert "+row 0" in rendered.line(start + 4).text
        await pilot.press("pagedown")  # the queue keeps the focus; its keys scroll the detail
        await pilot.pause()
        assert app.main.detail.scroll_offset.y > 0 and app.queue.cursor_row == 0
    assert runner.info(info.run_id).state == "waiting"


async def test_the_detail_is_rendered_ahead_and_follows_a_resize(
    runner: Runner, make_app: MakeApp
) -> None:
    await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        ahead = app._rendered  # rendered on a worker while the summary was on screen
        assert ahead is not None and ahead.complete
        assert ahead.key[0] == app.tracker.shown and ahead.width == app.main.detail.text_width
        await pilot.press("d")
        await settle(pilot)
        assert app.main.detail.rendered is ahead  # opening only handed the strips over
        assert "+LR = 0.01" in detail_text(app)
        await pilot.resize_terminal(140, 30)
        await settle(pilot)
        await refresh(pilot)
        wider = app.main.detail.rendered
        assert wider is not None and wider.width == app.main.detail.text_width > ahead.width
        assert "+LR = 0.01" in detail_text(app)


async def test_the_summary_follows_the_cursor_and_a_decision_before_the_rest_is_on_that_gate(
    runner: Runner, make_app: MakeApp
) -> None:
    first = await runner.start(build())
    second = await runner.start(build())
    app = make_app(rest_s=3600.0)  # the cursor never rests by itself in this test
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        top, below = list(app.queue.records)
        assert {top, below} == {first.open_gates[0], second.open_gates[0]}
        assert app.tracker.shown == app.previewed == top
        await pilot.press("down")
        # the summary shows the gate under the cursor at once; the look is not counted yet
        assert app.previewed == below and app.tracker.shown == top
        assert below in text(app.main.query_one("#summary", Static))
        assert not [e for e in runner.ledger.events(gate_id=below) if e.type == "gate.viewed"]
        await pilot.press("a")
        await settle(pilot)
    decided = [e.gate_id for e in runner.ledger.events(types=["gate.decided"])]
    assert decided == [below]  # the gate on screen, never the one the tracker held before
    assert [e.type for e in runner.ledger.events(gate_id=below)][:2] == [
        "gate.opened",
        "gate.viewed",
    ]
