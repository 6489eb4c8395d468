"""What the app keeps off its UI loop: resuming runs, ledger writes, and what it tells the
reviewer when they fail; the visible time the view events carry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from coimprove import Runner
from coimprove.tui import ReviewApp
from tests.tui.helpers import Db, events, settle
from tests.tui.review_graph import build
from tests.tui.test_live import _decide_elsewhere

MakeApp = Callable[..., ReviewApp]


async def test_the_ui_answers_keys_while_the_approved_run_is_resumed(
    runner: Runner, make_app: MakeApp
) -> None:
    hold = threading.Event()
    info = await runner.start(build("slow", hold=hold))
    app = make_app()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("a")
            for _ in range(600):  # the effect has started and is blocked in its own thread
                if events(runner, info.run_id, "effect.started"):
                    break
                await asyncio.sleep(0.05)
            assert events(runner, info.run_id, "effect.started")
            dark = app.dark
            await pilot.press("t")  # the loop is free: the key is handled at once
            await pilot.pause()
            assert app.dark is not dark
            assert not events(runner, info.run_id, "effect.finished")
            hold.set()
            await settle(pilot)
    finally:
        hold.set()
    assert runner.info(info.run_id).state == "finished"
    assert len(events(runner, info.run_id, "effect.finished")) == 1


async def test_a_resume_that_fails_is_reported_as_a_notification(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build("broken", fail=True))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        messages = [(n.message, n.severity) for n in app._notifications]
    assert runner.info(info.run_id).state == "failed"
    assert any(
        "failed" in m and "the training cluster is down" in m and severity == "error"
        for m, severity in messages
    ), messages


async def test_a_decision_refused_by_the_ledger_is_reported_and_its_row_restored(
    db: Db, runner: Runner, make_app: MakeApp
) -> None:
    first = await runner.start(build())
    await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        gate_id = first.open_gates[0]
        assert app.tracker.shown == gate_id
        _decide_elsewhere(db, gate_id, "reject")  # the app has not polled yet
        await pilot.press("a")
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("already resolved" in m for m in messages), messages
        assert not any("approve recorded" in m for m in messages)
        assert not app.queue.pending
    decided = events(runner, first.run_id, "gate.decided")
    assert [(e.actor, e.data["verdict"]) for e in decided] == [("bob", "reject")]


async def test_view_events_carry_the_visible_time_and_the_decision_closes_the_look(
    runner: Runner, make_app: MakeApp
) -> None:
    first = await runner.start(build())
    second = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("down")  # a look at the second gate
        await settle(pilot)
        await asyncio.sleep(0.2)
        await pilot.press("up", "d")  # back to the first: its view, then its detail
        await settle(pilot)
        await asyncio.sleep(0.2)
        await pilot.press("a")
        await settle(pilot)
    first_views = events(runner, first.run_id, "gate.viewed", "detail.viewed", "gate.decided")
    kinds = [e.type for e in first_views]
    assert kinds == ["gate.viewed", "detail.viewed", "gate.viewed", "detail.viewed", "gate.decided"]
    # the decision's closing views hold the time the gate and its detail stayed on screen
    assert first_views[2].data["visible_s"] >= 0.2
    assert first_views[3].data["visible_s"] >= 0.2
    assert first_views[2].at == first_views[4].at
    # the second gate's look ended when the reviewer moved on; quitting reported it
    second_views = events(runner, second.run_id, "gate.viewed")
    assert sum(e.data["visible_s"] for e in second_views) >= 0.2


async def test_resuming_for_a_given_runner_leaves_its_leases_with_it(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        await pilot.press(*"smaller steps", "enter")  # the run goes round to a new gate
        await settle(pilot)
    assert runner.info(info.run_id).state == "waiting"
    assert runner.ledger.lease_holder(info.run_id) == runner.owner  # not released on quit
