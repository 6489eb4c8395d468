"""Live updates, honest timing, canaries, stats, and the awkward cases (empty ledger,
a gate decided elsewhere while on screen, resizing, themes)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from coimprove import Decision, Proposal, Runner, SimClock
from coimprove.tui import ReviewApp
from coimprove.tui.screens.dialogs import RevealDialog
from tests.tui.helpers import Db, detail_text, events, refresh, settle, text, types
from tests.tui.review_graph import build

MakeApp = Callable[..., ReviewApp]


def _decide_elsewhere(db: Db, gate_id: str, verdict: str = "approve") -> None:
    """Another reviewer decides through a separate ledger connection (like another TUI)."""
    from coimprove.gates import load_gate, record_decision
    from coimprove.ledger import open_ledger

    with open_ledger(db) as other:
        gate = load_gate(other, gate_id)
        record_decision(
            other,
            gate_id,
            Decision(verdict=verdict, reviewer="bob", digest=gate.proposal.digest),  # type: ignore[arg-type]
            at=gate.opened.at + 60,  # within the gate's deadline
        )


async def test_a_gate_decided_elsewhere_stays_on_screen_marked_and_cannot_be_decided(
    db: Db, runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        (gate_id,) = app.queue.records
        _decide_elsewhere(db, gate_id)
        await refresh(pilot)
        assert app.tracker.shown == gate_id and gate_id in app.queue.closed
        assert "decided elsewhere: approve (approve by bob)" in text(
            app.main.query_one("#summary")  # type: ignore[arg-type]
        )
        await pilot.press("a", "r", "escape")
        await settle(pilot)
    decided = events(runner, info.run_id, "gate.decided")
    assert [(e.actor, e.data["verdict"]) for e in decided] == [("bob", "approve")]


async def test_live_updates_keep_the_cursor_on_its_gate(
    db: Db, runner: Runner, make_app: MakeApp
) -> None:
    first = await runner.start(build())
    second = await runner.start(build())
    third = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)
        target = second.open_gates[0]
        assert app.queue.current_key() == target == app.tracker.shown
        _decide_elsewhere(db, first.open_gates[0])  # a row above the cursor goes
        fourth = await runner.start(build())  # a new gate arrives
        await refresh(pilot)
        assert app.queue.current_key() == target == app.tracker.shown
        assert list(app.queue.rows) == [target, third.open_gates[0], fourth.open_gates[0]]
        assert app.queue.new_count == 1
        assert "1 new" in text(app.main.query_one("#status"))  # type: ignore[arg-type]
    # (on quit the look in progress ends: a second view event carries its visible time)
    viewed = list(dict.fromkeys(e.gate_id for e in runner.ledger.events(types=["gate.viewed"])))
    assert viewed == [target]  # only the gate the reviewer moved to; never the shifted rows


async def test_decision_keys_are_ignored_right_after_the_item_changes(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app(guard_s=3600.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
    assert "gate.decided" not in types(runner, info.run_id)


class _Planted:
    """A canary source that multiplies the learning rate by 50."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        payload = {**proposal.payload, "lr": proposal.payload["lr"] * 50}
        return proposal.model_copy(update={"payload": payload}), "lr_x50"


async def test_a_canary_is_revealed_after_the_decision(tmp_path: Path) -> None:
    policy = tmp_path / "planted.yaml"
    policy.write_text("name: planted\ndefaults:\n  canary_rate: 0.999\n")
    db = tmp_path / "canary.db"
    async with Runner(db, clock=SimClock(1e6), canaries=_Planted()) as runner:
        info = await runner.start(build(), policy=str(policy))
        app = ReviewApp(db, reviewer="alice", runner=runner, guard_s=0, rest_s=0, poll_s=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            (canary,) = app.queue.records.values()
            assert "canary" not in text(app.main.query_one("#summary"))  # type: ignore[arg-type]
            await pilot.press("r", "enter")
            await settle(pilot)
            assert isinstance(app.screen, RevealDialog)
            assert app.reveals == [(canary.gate_id, "lr_x50", True)]
            await pilot.press("escape")
            await refresh(pilot)
            (real,) = app.queue.records.values()  # the real proposal comes next
            assert real.proposal.payload["lr"] == 0.01
        revealed = runner.ledger.events(types=["canary.revealed"])
        assert revealed[0].data["caught"] is True
        assert "effect.started" not in types(runner, info.run_id)


async def test_the_stats_panel_shows_this_reviewers_measures(
    runner: Runner, make_app: MakeApp
) -> None:
    await runner.start(build())
    await runner.start(build())
    app = make_app(stats=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter", "escape", "a")
        await settle(pilot)
        await pilot.press("r", "enter")
        await settle(pilot)
        shown = text(app.stats_panel)
    assert "decisions" in shown and "2" in shown.split("decisions")[1].splitlines()[0]
    assert "approval rate" in shown and "50%" in shown


async def test_an_empty_ledger_resizes_and_switches_theme_without_crashing(
    tmp_path: Path,
) -> None:
    app = ReviewApp(tmp_path / "new.db", reviewer="alice", poll_s=0, stats=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "No gates are waiting" in text(app.main.query_one("#summary"))  # type: ignore[arg-type]
        await pilot.press("a", "enter", "d", "e", "o", "s", "t")
        await settle(pilot)
        assert not app.dark
        await pilot.resize_terminal(200, 60)
        await pilot.pause()
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert app.dark


async def test_the_poll_timer_picks_up_gates_opened_by_another_process(
    runner: Runner, make_app: MakeApp
) -> None:
    app = make_app(poll_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert not app.queue.records
        info = await runner.start(build())  # another connection commits: data_version moves
        for _ in range(200):  # no timing assertion: wait (up to ~minutes on a loaded box)
            if app.queue.records:
                break
            await pilot.pause(0.05)
        assert list(app.queue.records) == list(info.open_gates)
        assert app.tracker.shown == info.open_gates[0]


async def test_the_open_detail_shows_a_decision_made_elsewhere_and_refuses_to_act(
    db: Db, runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        _decide_elsewhere(db, info.open_gates[0], "reject")
        await refresh(pilot)
        detail = detail_text(app)
        assert "decided elsewhere: reject (reject by bob)" in detail
        await pilot.press("a", "e")
        await settle(pilot)
        assert app.screen is app.main and app.detail_open  # no dialog, nothing recorded
    assert [e.actor for e in events(runner, info.run_id, "gate.decided")] == ["bob"]
