"""Honest timing: which looks count as views, how long an item was really on screen, and
the guard that ignores decision keys right after the item under the cursor changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

ViewKind = Literal["gate", "detail"]
RecordView = Callable[[str, ViewKind, float], None]
"""``record(gate_id, what, visible_s)``: write one ``gate.viewed`` / ``detail.viewed``."""

_KINDS: tuple[ViewKind, ...] = ("gate", "detail")


class ViewTracker:
    """Tracks the gate on screen, records views through `record`, and guards decisions.

    A gate shown by user navigation (or as the next item after the user decided) is recorded
    as ``gate.viewed``; a gate that merely appeared (first load) is recorded once the user
    acts on it. Visible time uses a monotonic clock and stops while something covers the
    item (a dialog, the terminal losing focus); the detail has a clock of its own that runs
    only while the detail is open.

    Each view event carries ``visible_s``: the seconds the gate (or its detail) was visible
    since the previous event of the same kind for that gate, so the ``visible_s`` of all of a
    reviewer's view events of a gate add up to the time it was really on their screen. The
    time of the look in progress is reported by `closing_views` (with the decision) or
    `flush` (when the app stops).
    """

    def __init__(
        self,
        record: RecordView,
        *,
        guard_s: float = 0.6,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._record = record
        self.guard_s = guard_s
        self._now = monotonic
        self.shown: str | None = None
        self._changed_at = -1e9
        self._viewed: set[tuple[str, ViewKind]] = set()
        self._detail_open = False
        self._unreported: dict[tuple[str, ViewKind], float] = {}
        self._since: dict[ViewKind, float] = {}
        self._covers: set[str] = set()
        self._decided: set[str] = set()

    # -- what is on screen ----------------------------------------------------------------

    def show(self, gate_id: str | None, *, by_user: bool) -> None:
        """`gate_id` is now the item on screen (None: nothing)."""
        if gate_id == self.shown:
            return
        self._stop_clocks()
        self.shown = gate_id
        self._changed_at = self._now()
        self._detail_open = False
        self._start_clocks()
        if gate_id is not None and by_user:
            self.view(gate_id, "gate")

    def changed(self) -> None:
        """The item on screen changed in place (e.g. edited elsewhere): guard again."""
        self._changed_at = self._now()

    def view(self, gate_id: str, what: ViewKind) -> None:
        """Record a view now (with the visible time not yet reported)."""
        self._viewed.add((gate_id, what))
        self._record(gate_id, what, self._take(gate_id, what))

    def viewed(self, gate_id: str, what: ViewKind = "gate") -> bool:
        """Whether this session recorded a view of `gate_id` (or its detail)."""
        return (gate_id, what) in self._viewed

    def ensure_viewed(self, gate_id: str) -> None:
        """Before a decision: record the gate view if this session never recorded one."""
        if (gate_id, "gate") not in self._viewed:
            self.view(gate_id, "gate")

    def detail_opened(self, gate_id: str) -> None:
        """The detail/diff was opened or scrolled: one ``detail.viewed`` per opening."""
        self.ensure_viewed(gate_id)
        if not self._detail_open or (gate_id, "detail") not in self._viewed:
            self._stop_clocks()
            self._detail_open = True
            self._start_clocks()
            self.view(gate_id, "detail")

    def detail_closed(self) -> None:
        self._stop_clocks()
        self._detail_open = False
        self._start_clocks()

    def ready(self) -> bool:
        """Whether decision keys are accepted (the item has been steady for `guard_s`)."""
        return self._now() - self._changed_at >= self.guard_s

    # -- visible time ---------------------------------------------------------------------

    def cover(self, reason: str) -> None:
        """Something hides the item (a modal, focus lost): stop its clock."""
        self._stop_clocks()
        self._covers.add(reason)

    def uncover(self, reason: str) -> None:
        self._covers.discard(reason)
        self._start_clocks()

    def visible_s(self, gate_id: str, what: ViewKind = "gate") -> float:
        """Seconds `gate_id` (or its detail) was on screen, uncovered, and not yet reported."""
        extra = 0.0
        since = self._since.get(what)
        if gate_id == self.shown and since is not None:
            extra = self._now() - since
        return self._unreported.get((gate_id, what), 0.0) + extra

    def closing_views(self, gate_id: str) -> list[tuple[ViewKind, float]]:
        """The unreported visible time of `gate_id` as (kind, seconds), and reset it.

        For the view events written with a decision: the gate always, the detail only if
        this session recorded it opened. Time on screen after this (while the decision is
        written) is not review time: `flush` leaves the gate out unless `reopen` is called.
        """
        self._decided.add(gate_id)
        return [
            (what, spent)
            for what in _KINDS
            if (spent := self._take(gate_id, what)) > 0
            and (what == "gate" or (gate_id, what) in self._viewed)
        ]

    def reopen(self, gate_id: str) -> None:
        """The decision on `gate_id` was refused: its time on screen counts again."""
        self._decided.discard(gate_id)

    def flush(self) -> list[tuple[str, ViewKind, float]]:
        """Unreported visible time of every gate this session recorded a view of, and reset
        it (when the app stops: the looks in progress end)."""
        self._stop_clocks()
        out = [
            (gate_id, what, self._take(gate_id, what))
            for (gate_id, what), spent in list(self._unreported.items())
            if spent > 0 and (gate_id, what) in self._viewed and gate_id not in self._decided
        ]
        self._start_clocks()
        return out

    def _take(self, gate_id: str, what: ViewKind) -> float:
        spent = self.visible_s(gate_id, what)
        self._unreported.pop((gate_id, what), None)
        if gate_id == self.shown and what in self._since:
            self._since[what] = self._now()
        return spent

    def _running(self) -> tuple[ViewKind, ...]:
        if self.shown is None or self._covers:
            return ()
        return _KINDS if self._detail_open else ("gate",)

    def _start_clocks(self) -> None:
        now = self._now()
        for what in self._running():
            self._since.setdefault(what, now)

    def _stop_clocks(self) -> None:
        now = self._now()
        if self.shown is not None:
            for what, since in self._since.items():
                key = (self.shown, what)
                self._unreported[key] = self._unreported.get(key, 0.0) + (now - since)
        self._since.clear()
