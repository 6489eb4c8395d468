"""The review app on the tool calls of a LangChain agent (GateMiddleware): same keys, same
ledger events; the tool runs only after the decision the app recorded."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import Static, TextArea

from coimprove import Runner
from coimprove.tui import ReviewApp
from coimprove.tui.screens.dialogs import EditDialog
from tests.tui.helpers import events, settle, text
from tests.unit.test_tool_gates import ADD, RAN, TASK, agent_workflow

MakeApp = Callable[..., ReviewApp]


async def test_approving_a_tool_call_in_the_app_runs_the_tool(
    runner: Runner, make_app: MakeApp
) -> None:
    RAN.clear()
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        (gate_id,) = app.queue.records
        assert app.queue.records[gate_id].proposal.kind == "tool:add"
        assert RAN == []
        await pilot.press("a")
        await settle(pilot)
        assert not app.queue.records
    (decided,) = events(runner, info.run_id, "gate.decided")
    assert (decided.actor, decided.data["verdict"]) == ("alice", "approve")
    assert runner.info(info.run_id).state == "finished"
    assert RAN == [("add", {"a": 2, "b": 3})]


async def test_an_edit_in_the_app_is_checked_against_the_tool_schema_and_runs_edited(
    runner: Runner, make_app: MakeApp
) -> None:
    RAN.clear()
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, EditDialog)
        area = dialog.query_one(TextArea)
        area.load_text('{"a": "two", "b": 3}')
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = text(dialog.query_one("#error", Static))
        assert app.screen is dialog and "integer" in error, error
        area.load_text('{"a": 2, "b": 40}')
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert RAN == [("add", {"a": 2, "b": 40})]
    assert runner.info(info.run_id).state == "finished"


async def test_rejecting_a_tool_call_in_the_app_never_runs_it(
    runner: Runner, make_app: MakeApp
) -> None:
    RAN.clear()
    wf, _ = agent_workflow([ADD, "done"])
    info = await runner.start(wf, TASK)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press(*"no", "enter")
        await settle(pilot)
    assert runner.info(info.run_id).state == "finished"
    assert RAN == []
