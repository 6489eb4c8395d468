"""Reviewer feedback in the review app, and training mode (practice runs with more canaries)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Static

from coimprove import Decision, Proposal, Runner, SimClock
from coimprove.gates import load_gate, record_decision
from coimprove.ledger import open_ledger
from coimprove.model import FeedbackItem
from coimprove.tui import ReviewApp
from coimprove.tui.screens.dialogs import RevealDialog
from coimprove.tui.training import HINTS, start_practice
from coimprove.tui.widgets.feedback import FeedbackLog
from tests.tui.helpers import Db, refresh, settle, text
from tests.tui.review_graph import build

MakeApp = Callable[..., ReviewApp]


class _Planted:
    """A canary source that multiplies the learning rate by 1000."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        payload = {**proposal.payload, "lr": proposal.payload["lr"] * 1000}
        return proposal.model_copy(update={"payload": payload}), "hyperparameter_x1000"


def _shown_events(runner: Runner) -> list[tuple[str | None, str | None, str, str]]:
    return [
        (e.gate_id, e.actor, e.data["kind"], e.data["explanation"])
        for e in runner.ledger.events(types=["feedback.shown"])
    ]


def _as_shown(items: list[FeedbackItem]) -> list[tuple[str | None, str | None, str, str]]:
    return [(i.gate_id, i.reviewer, i.kind, i.explanation) for i in items]


async def test_feedback_is_shown_after_a_decision_and_exactly_that_is_recorded(
    runner: Runner, make_app: MakeApp
) -> None:
    info = await runner.start(build())
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.feedback_shown == []
        await pilot.press("a")
        await settle(pilot)
        await refresh(pilot)  # the run resumed and its effect finished: the outcome is knowable
        (item,) = app.feedback_shown
        assert (item.kind, item.reviewer, item.run_id) == ("outcome", "alice", info.run_id)
        assert "ran: effect 'train' finished" in item.explanation
        messages = [n.message for n in app._notifications]
        assert item.explanation in messages
        await pilot.press("f")
        log = app.main.query_one(FeedbackLog)
        assert log.display and item.explanation in text(log)
        await settle(pilot)
    assert _shown_events(runner) == _as_shown([item])

    again = make_app()  # a new session does not show it twice
    async with again.run_test(size=(120, 36)) as pilot:
        await refresh(pilot)
        assert again.feedback_shown == []
    assert len(_shown_events(runner)) == 1


async def test_no_feedback_shows_and_records_nothing_not_even_a_canary_reveal(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    async with Runner(db, clock=SimClock(1e6), canaries=_Planted()) as runner:
        await start_practice(runner, build(), runs=1, rate=0.999, run_id_prefix="r-nofb")
        await runner.start(build())
        app = ReviewApp(
            db, reviewer="alice", runner=runner, guard_s=0, rest_s=0, poll_s=0, feedback=False
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            assert len(app.queue.records) == 2
            canary = next(r for r in app.queue.records.values() if r.proposal.payload["lr"] > 1)
            app.queue.move_cursor(row=app.queue.get_row_index(canary.gate_id))
            app.queue.mark_user_move()
            await settle(pilot)
            assert app.shown_record() == canary
            await pilot.press("a")
            await settle(pilot)
            await refresh(pilot)
            assert not isinstance(app.screen, RevealDialog)
            assert app.feedback_shown == [] and app.reveals == []
            assert not any("canary" in str(n.message) for n in app._notifications)
            await pilot.press("a")  # the other run's gate: approved, run, finished
            await settle(pilot)
            await refresh(pilot)
            assert app.feedback_shown == []
            await pilot.press("f")
            assert not app.main.query_one(FeedbackLog).display  # the key is off
            assert "no feedback" in text(app.main.query_one("#status", Static))
        assert runner.ledger.events(types=["canary.revealed"])  # it was a canary, and missed
        assert runner.ledger.events(types=["effect.finished"])
        assert _shown_events(runner) == []


async def test_a_missed_canary_in_training_is_explained_with_where_to_look(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    async with Runner(db, clock=SimClock(1e6), canaries=_Planted()) as runner:
        await runner.start(build())  # real work: not shown in training
        (practice,) = await start_practice(
            runner, build(), runs=1, rate=0.999, run_id_prefix="r-train"
        )
        app = ReviewApp(
            db, reviewer="alice", runner=runner, guard_s=0, rest_s=0, poll_s=0, training=True
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            (canary,) = app.queue.records.values()
            assert canary.run_id == practice.run_id
            assert canary.request.requirement.policy == "default+training"
            assert app.stats_panel.display
            assert "TRAINING" in text(app.main.query_one("#status", Static))
            await pilot.press("a")  # approve the planted flaw: a miss
            await settle(pilot)
            dialog = app.screen
            assert isinstance(dialog, RevealDialog)
            assert dialog.has_class("missed") and not dialog.caught
            assert dialog.mutation == "hyperparameter_x1000"
            assert dialog.hint == HINTS["hyperparameter_x1000"]
            shown = "\n".join(text(s) for s in dialog.query(Static))
            assert "MISSED" in shown and "Where to look: the experiment spec" in shown
            (item,) = app.feedback_shown
            assert item.explanation in shown
            assert (item.kind, item.correct, item.lesson) == ("canary", False, True)
            await pilot.press("escape")
            await refresh(pilot)
            assert "catch rate" in text(app.stats_panel) and "0% of 1" in text(app.stats_panel)
            (real,) = app.queue.records.values()  # the real proposal of the practice run
            assert real.run_id == practice.run_id and real.proposal.payload["lr"] == 0.01
        assert _shown_events(runner) == _as_shown([item])


async def test_a_caught_canary_is_revealed_without_the_miss_explanation(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    async with Runner(db, clock=SimClock(1e6), canaries=_Planted()) as runner:
        await start_practice(runner, build(), runs=1, rate=0.999, run_id_prefix="r-catch")
        app = ReviewApp(
            db, reviewer="alice", runner=runner, guard_s=0, rest_s=0, poll_s=0, training=True
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            await pilot.press("r", "enter")
            await settle(pilot)
            dialog = app.screen
            assert isinstance(dialog, RevealDialog) and dialog.caught
            shown = "\n".join(text(s) for s in dialog.query(Static))
            assert "You caught it." in shown and "Where to look" not in shown
            await pilot.press("escape")
            await refresh(pilot)
            assert "100% of 1" in text(app.stats_panel)


async def test_training_practice_gates_carry_canaries_at_the_raised_rate(tmp_path: Path) -> None:
    n = 150
    async with Runner(tmp_path / "ledger.db", clock=SimClock(1e6), canaries=_Planted()) as runner:
        for i in range(n):
            await runner.start(build(), policy="canary", run_id=f"r-base{i:04d}")
        practice = await start_practice(
            runner, build(), runs=n, rate=0.5, policy="canary", run_id_prefix="r-prac"
        )
        assert len(practice) == n
        opened = runner.ledger.events(types=["gate.opened"])
        started = runner.ledger.events(types=["run.started"])
    assert {e.data["policy"] for e in started if e.run_id.startswith("r-prac")} == {
        "canary+training"
    }

    def rate(prefix: str) -> float:
        first = [e for e in opened if e.run_id and e.run_id.startswith(prefix)]
        assert len(first) == n  # each run paused at its first gate
        return sum(bool(e.data["hidden"]["canary"]) for e in first) / n

    base, raised = rate("r-base"), rate("r-prac")
    assert base < 0.2  # the canary policy's own 10%
    assert 0.38 < raised < 0.62  # 50%: over 4 standard deviations from the base rate


async def test_how_a_peer_decided_arrives_as_the_ledger_grows(
    db: Db, runner: Runner, make_app: MakeApp
) -> None:
    await runner.start(build(), policy="strict")  # code needs two reviewers
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        (gate_id,) = app.queue.records
        await pilot.press("a")
        await settle(pilot)
        assert app.feedback_shown == []  # nothing is knowable yet
        with open_ledger(db) as other:  # bob, in another session, rejects it
            gate = load_gate(other, gate_id)
            record_decision(
                other,
                gate_id,
                Decision(verdict="reject", reviewer="bob", digest=gate.proposal.digest),
                at=gate.opened.at + 60,  # within the gate's deadline
            )
        await refresh(pilot)
        (item,) = app.feedback_shown
        assert (item.kind, item.gate_id, item.detail["others"]) == (
            "peers",
            gate_id,
            {"bob": "reject"},
        )
        assert "bob rejected" in item.explanation
        assert item.explanation in [n.message for n in app._notifications]
        await settle(pilot)
    assert _shown_events(runner) == _as_shown([item])
