"""Full garbage collections move to moments when the reviewer is not pressing keys."""

from __future__ import annotations

import gc

from coimprove.tui.idle_gc import IdleCollector


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _churn() -> None:
    """Enough young garbage for a generation-1 collection to run."""
    for _ in range(30_000):
        a: list[object] = []
        a.append(a)


def test_full_collections_wait_for_a_pause_and_thresholds_come_back() -> None:
    before = gc.get_threshold()
    clock = _Clock()
    collector = IdleCollector(idle_s=0.5, every_s=5.0, at_most_s=60.0, monotonic=clock)
    collector.start()
    try:
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 10**8
        _churn()
        clock.t += 6.0
        collector.input()  # a key just now: not idle
        assert not collector.tick()
        clock.t += 0.6  # no key for 0.6 s
        assert collector.tick() and collector.collections == 1
        clock.t += 1.0
        _churn()
        assert not collector.tick()  # idle, but the last full collection was 1 s ago
    finally:
        collector.stop()
    assert gc.get_threshold() == before
    assert not collector.tick()


def test_a_session_without_pauses_still_gets_a_full_collection() -> None:
    clock = _Clock()
    collector = IdleCollector(idle_s=0.5, every_s=5.0, at_most_s=60.0, monotonic=clock)
    collector.start()
    try:
        for _ in range(61):
            clock.t += 1.0
            collector.input()
            collector.tick()
        assert collector.collections == 1
    finally:
        collector.stop()
