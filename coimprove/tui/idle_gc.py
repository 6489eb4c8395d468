"""Full garbage collections when the reviewer is not pressing keys.

With a few thousand gates loaded, a full (generation 2) collection of what the session has
allocated since the queue was frozen (`gc.freeze`) takes 15-55 ms on a 2-vCPU machine; run by
the interpreter whenever its counters say so, it lands inside keypresses and doubles their
latency. `IdleCollector` turns the automatic full collections off for the app's lifetime and
runs them itself once no key has been pressed for a moment (a person reading a proposal), or
after a long stretch without one. Generations 0 and 1 are collected as usual.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

_NEVER = 1_000_000_000
"""A generation-2 threshold no session reaches: no automatic full collection."""


class IdleCollector:
    """Moves full collections to idle moments. Call `start` once the queue is loaded,
    `input` on every key or click, `tick` from a timer, `stop` when the app ends."""

    def __init__(
        self,
        *,
        idle_s: float = 0.5,
        every_s: float = 5.0,
        at_most_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s, self.every_s, self.at_most_s = idle_s, every_s, at_most_s
        self._now = monotonic
        self._saved: tuple[int, int, int] | None = None
        self._last_input = self._last_full = monotonic()
        self._young = 0
        self.collections = 0
        """Full collections run here (for tests and the curious)."""

    def start(self) -> None:
        """Freeze what exists now (it lives as long as the app) and take over full collections."""
        if self._saved is not None:
            return
        gc.freeze()
        self._saved = gc.get_threshold()
        gc.set_threshold(self._saved[0], self._saved[1], _NEVER)
        self._last_full = self._now()
        self._young = gc.get_stats()[1]["collections"]

    def input(self) -> None:
        """The reviewer pressed a key or clicked."""
        self._last_input = self._now()

    def tick(self) -> bool:
        """Run a full collection if it is due and the reviewer is idle. Returns whether it ran."""
        if self._saved is None:
            return False
        now = self._now()
        young = gc.get_stats()[1]["collections"]
        due = now - self._last_full >= self.every_s and young != self._young
        idle = now - self._last_input >= self.idle_s
        if not ((due and idle) or now - self._last_full >= self.at_most_s):
            return False
        gc.collect()
        self.collections += 1
        self._last_full, self._young = self._now(), gc.get_stats()[1]["collections"]
        return True

    def stop(self) -> None:
        """Give full collections back to the interpreter (and unfreeze)."""
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()
