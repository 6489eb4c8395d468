"""Honest timing: which looks count as views, how long an item was really on screen, and
the guard that ignores decision keys right after the item under the cursor changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

ViewKind = Literal["gate", "detail"]
RecordView = Callable[[str, ViewKind], None]


class ViewTracker:
    """Tracks the gate on screen, records views through `record`, and guards decisions.

    A gate shown by user navigation (or as the next item after the user decided) is recorded
    as ``gate.viewed``; a gate that merely appeared (first load) is recorded once the user
    acts on it. Visible time uses a monotonic clock and stops while something covers the
    item (a dialog, the terminal losing focus).
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
        self._visible: dict[str, float] = {}
        self._since: float | None = None
        self._covers: set[str] = set()

    # -- what is on screen ----------------------------------------------------------------

    def show(self, gate_id: str | None, *, by_user: bool) -> None:
        """`gate_id` is now the item on screen (None: nothing)."""
        if gate_id == self.shown:
            return
        self._stop_clock()
        self.shown = gate_id
        self._changed_at = self._now()
        self._detail_open = False
        self._start_clock()
        if gate_id is not None and by_user:
            self.view(gate_id, "gate")

    def changed(self) -> None:
        """The item on screen changed in place (e.g. edited elsewhere): guard again."""
        self._changed_at = self._now()

    def view(self, gate_id: str, what: ViewKind) -> None:
        """Record a view now."""
        self._viewed.add((gate_id, what))
        self._record(gate_id, what)

    def ensure_viewed(self, gate_id: str) -> None:
        """Before a decision: record the gate view if this session never recorded one."""
        if (gate_id, "gate") not in self._viewed:
            self.view(gate_id, "gate")

    def detail_opened(self, gate_id: str) -> None:
        """The detail/diff was opened or scrolled: one ``detail.viewed`` per opening."""
        self.ensure_viewed(gate_id)
        if not self._detail_open or (gate_id, "detail") not in self._viewed:
            self._detail_open = True
            self.view(gate_id, "detail")

    def detail_closed(self) -> None:
        self._detail_open = False

    def ready(self) -> bool:
        """Whether decision keys are accepted (the item has been steady for `guard_s`)."""
        return self._now() - self._changed_at >= self.guard_s

    # -- visible time ---------------------------------------------------------------------

    def cover(self, reason: str) -> None:
        """Something hides the item (a modal, focus lost): stop its clock."""
        self._stop_clock()
        self._covers.add(reason)

    def uncover(self, reason: str) -> None:
        self._covers.discard(reason)
        self._start_clock()

    def visible_s(self, gate_id: str) -> float:
        """Seconds `gate_id` was on screen and uncovered in this session."""
        extra = 0.0
        if gate_id == self.shown and self._since is not None:
            extra = self._now() - self._since
        return self._visible.get(gate_id, 0.0) + extra

    def _start_clock(self) -> None:
        if self.shown is not None and not self._covers and self._since is None:
            self._since = self._now()

    def _stop_clock(self) -> None:
        if self.shown is not None and self._since is not None:
            spent = self._now() - self._since
            self._visible[self.shown] = self._visible.get(self.shown, 0.0) + spent
        self._since = None
