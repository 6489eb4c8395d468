"""A simulated clock for headless runs: time moves only when the simulation says so."""

from __future__ import annotations

from coimprove.errors import CoimproveError


class SimClock:
    """Monotonic simulated time in seconds. ``advance``/``set`` move it; nothing else does."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise CoimproveError(f"a simulated clock cannot go back ({seconds}s)")
        self._now += seconds
        return self._now

    def set(self, at: float) -> float:
        """Jump forward to `at` (never back)."""
        if at < self._now:
            raise CoimproveError(f"a simulated clock cannot go back from {self._now} to {at}")
        self._now = float(at)
        return self._now


class FixedClock:
    """A clock stopped at one instant (what a reviewer sees when it picks up a gate)."""

    def __init__(self, at: float) -> None:
        self._at = at

    def now(self) -> float:
        return self._at
