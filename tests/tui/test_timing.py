"""The view tracker: what counts as a look, visible time that stops under a dialog, the guard."""

from __future__ import annotations

from coimprove.tui.timing import ViewKind, ViewTracker


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _tracker(
    guard_s: float = 1.0, spent: list[tuple[str, ViewKind, float]] | None = None
) -> tuple[ViewTracker, list[tuple[str, ViewKind]], _Clock]:
    seen: list[tuple[str, ViewKind]] = []
    clock = _Clock()

    def record(gate_id: str, what: ViewKind, visible_s: float) -> None:
        seen.append((gate_id, what))
        if spent is not None:
            spent.append((gate_id, what, visible_s))

    tracker = ViewTracker(record, guard_s=guard_s, monotonic=clock)
    return tracker, seen, clock


def test_only_user_navigation_records_a_view_and_a_decision_records_one_if_missing() -> None:
    tracker, seen, _ = _tracker()
    tracker.show("g1", by_user=False)  # appeared on load
    assert seen == []
    tracker.ensure_viewed("g1")
    tracker.ensure_viewed("g1")
    tracker.show("g2", by_user=True)
    assert seen == [("g1", "gate"), ("g2", "gate")]


def test_detail_is_recorded_once_per_opening() -> None:
    tracker, seen, _ = _tracker()
    tracker.show("g1", by_user=True)
    tracker.detail_opened("g1")
    tracker.detail_opened("g1")  # scrolled while open: same opening
    tracker.detail_closed()
    tracker.detail_opened("g1")
    assert seen == [("g1", "gate"), ("g1", "detail"), ("g1", "detail")]


def test_visible_time_stops_while_a_dialog_covers_the_item() -> None:
    tracker, _, clock = _tracker()
    tracker.show("g1", by_user=True)
    clock.t = 10.0
    tracker.cover("dialog")
    clock.t = 70.0  # a minute under a dialog does not count
    tracker.uncover("dialog")
    clock.t = 75.0
    assert tracker.visible_s("g1") == 15.0
    tracker.show("g2", by_user=True)
    clock.t = 80.0
    assert tracker.visible_s("g1") == 15.0 and tracker.visible_s("g2") == 5.0


def test_decision_keys_wait_for_the_item_to_be_steady() -> None:
    tracker, _, clock = _tracker(guard_s=0.5)
    tracker.show("g1", by_user=True)
    assert not tracker.ready()
    clock.t = 0.6
    assert tracker.ready()
    tracker.changed()  # the proposal on screen changed
    assert not tracker.ready()


def test_view_events_carry_visible_time_that_adds_up_to_time_on_screen() -> None:
    spent: list[tuple[str, ViewKind, float]] = []
    tracker, _, clock = _tracker(spent=spent)
    tracker.show("g1", by_user=True)  # g1 view, nothing seen before
    clock.t = 4.0
    tracker.detail_opened("g1")  # detail view
    clock.t = 10.0
    tracker.cover("dialog")
    clock.t = 100.0  # under a dialog: neither clock runs
    tracker.uncover("dialog")
    clock.t = 102.0
    tracker.detail_closed()
    clock.t = 103.0
    tracker.show("g2", by_user=True)  # g1's look ends unreported; g2 view
    clock.t = 105.0
    tracker.show("g1", by_user=True)  # back to g1: its view carries the first look's time
    clock.t = 106.0
    closing = tracker.closing_views("g1")  # what a decision on g1 writes with it
    assert spent == [
        ("g1", "gate", 0.0),
        ("g1", "detail", 0.0),
        ("g2", "gate", 0.0),
        ("g1", "gate", 13.0),
    ]
    assert closing == [("gate", 1.0), ("detail", 8.0)]
    total_gate = sum(s for g, w, s in spent if (g, w) == ("g1", "gate")) + closing[0][1]
    assert total_gate == 14.0  # 0-10, 100-103 and 105-106: the dialog time never counts
    clock.t = 110.0
    tracker.show("g3", by_user=False)  # appeared, never looked at by the user
    clock.t = 120.0
    # g1's time on screen after its decision (106-110) is not review time; g3 was never
    # viewed; g2's look ended unreported
    assert tracker.flush() == [("g2", "gate", 2.0)]
    assert tracker.flush() == []
