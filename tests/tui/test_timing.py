"""The view tracker: what counts as a look, visible time that stops under a dialog, the guard."""

from __future__ import annotations

from coimprove.tui.timing import ViewKind, ViewTracker


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _tracker(guard_s: float = 1.0) -> tuple[ViewTracker, list[tuple[str, ViewKind]], _Clock]:
    seen: list[tuple[str, ViewKind]] = []
    clock = _Clock()
    tracker = ViewTracker(lambda g, w: seen.append((g, w)), guard_s=guard_s, monotonic=clock)
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
