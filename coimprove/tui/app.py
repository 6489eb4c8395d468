"""`ReviewApp`: the reviewer's workplace over the ledger (``coimprove review``).

Reads come from a change probe (on the UI loop for an SQLite file, on a worker thread for a
ledger on a server) and an incremental gate index in a worker thread; ``db`` is an SQLite
file or a ``postgresql://`` URL, so a team can review one shared ledger from many machines.
Writes (views, decisions) go through an embedded `Runner` on one background thread,
in order, stamped with the time the reviewer acted; a decision is validated there and the
screen moves on at once (a refused one is reported and its row restored). Settled gates are
resumed on a thread of their own (`RunDriver`) unless ``apply=False``. The UI loop only
draws and routes keys.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

from rich.style import Style
from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import DataTable, Static

from coimprove._log import get_logger
from coimprove.errors import CoimproveError, LedgerError
from coimprove.feedback import FeedbackBuilder, record_feedback
from coimprove.gates import GateRecord, Recorded, may_decide, record_view
from coimprove.ledger import ledger_kind, open_ledger, sqlite_path
from coimprove.metrics import GroupMeasures, summarize
from coimprove.model import Decision, FeedbackItem, Verdict, ViewEvent
from coimprove.protocols import Clock, Ledger
from coimprove.runner import Runner
from coimprove.tui.background import RunDriver, WriteQueue
from coimprove.tui.data import (
    ChangeProbe,
    Delta,
    DetailData,
    GateIndex,
    Probe,
    SeqProbe,
    full_record,
    load_detail,
)
from coimprove.tui.format import RISKY
from coimprove.tui.idle_gc import IdleCollector
from coimprove.tui.screens.dialogs import ConfirmDialog, EditDialog, NoteDialog, RevealDialog
from coimprove.tui.screens.main import MainScreen
from coimprove.tui.timing import ViewKind, ViewTracker
from coimprove.tui.training import hint, is_practice
from coimprove.tui.widgets import detail as render
from coimprove.tui.widgets.detail_view import DetailView, RenderedDetail, render_detail
from coimprove.tui.widgets.feedback import FeedbackLog
from coimprove.tui.widgets.queue import SORTS, QueueTable
from coimprove.tui.widgets.stats import StatsPanel
from coimprove.workflow import Workflow

log = get_logger("coimprove.tui")

THEMES = {"dark": "textual-dark", "light": "textual-light"}


class ReviewApp(App[None]):
    """Review pending gates: read, then approve, edit, reject, request changes or escalate."""

    CSS_PATH = "review.tcss"
    TITLE = "coimprove review"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True)
    ]

    def __init__(
        self,
        db: str | os.PathLike[str],
        *,
        reviewer: str,
        runner: Runner | None = None,
        workflows: Sequence[Workflow] = (),
        apply: bool = True,
        theme: Literal["dark", "light"] = "dark",
        clock: Clock | None = None,
        guard_s: float = 0.6,
        rest_s: float = 0.15,
        poll_s: float = 0.5,
        stats: bool | None = None,
        freeze_gc: bool = False,
        feedback: bool = True,
        training: bool = False,
    ) -> None:
        """`feedback` shows this reviewer what became of their decisions (and records what
        was shown); off, nothing is shown or recorded, so its effect can be ablated.
        `training` shows only the gates of practice runs (`coimprove.tui.training`), explains
        every miss and shows the catch rate. `freeze_gc` (what `coimprove review` uses) freezes
        the loaded queue out of garbage collection and runs full collections while the
        reviewer pauses (`coimprove.tui.idle_gc`), not inside keypresses."""
        super().__init__()
        self.feedback = feedback
        self.training = training
        self.feedback_shown: list[FeedbackItem] = []
        self._feedback: FeedbackBuilder | None = None
        self._collecting = self._collect_again = False
        self.freeze_gc = freeze_gc
        self._gc = IdleCollector()
        self.db: Path | str = os.fspath(db) if ledger_kind(db) == "postgres" else sqlite_path(db)
        """The ledger: an SQLite file, or a ``postgresql://`` URL."""
        self.reviewer = reviewer
        self.apply = apply
        self._given_runner = runner
        self._runner: Runner | None = runner
        self._workflows = tuple(workflows)
        self._clock = clock
        self._theme_name = THEMES[theme]
        self.rest_s, self.poll_s = rest_s, poll_s
        self._stats_wanted = stats
        self.tracker = ViewTracker(self._record_view, guard_s=guard_s)
        self.index = GateIndex()
        self.decided_here: set[str] = set()
        self.reveals: list[tuple[str, str | None, bool]] = []
        self._reader: Ledger | None = None
        self._probe: Probe | None = None
        self._unreachable = False
        self._refreshing = False
        self._initial = True
        self._dirty = False
        self._rest_timer: Timer | None = None
        self.previewed: str | None = None
        """The gate whose summary is on screen (it follows the cursor before it rests)."""
        self._detail_gen = 0
        self.writes = WriteQueue()
        self._run_driver: RunDriver | None = None
        self._deciding: set[str] = set()
        self._main: MainScreen | None = None
        self._detail_gate: str | None = None
        self._detail_record: GateRecord | None = None
        self._rendered: RenderedDetail | None = None
        """The detail rendered last (shown, or prerendered for the gate on screen)."""
        self._prerender_due = False  # a render-ahead waits for the next frame
        self.loaded = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise RuntimeError("the review app is not mounted")
        return self._runner

    def now(self) -> float:
        """Current time on the runner's clock (what ages and ledger events use)."""
        if self._runner is not None:
            return self._runner.clock.now()
        return self._clock.now() if self._clock is not None else 0.0

    async def on_mount(self) -> None:
        self.theme = self._theme_name
        self.theme_changed_signal.subscribe(self, self._on_theme)
        if self._runner is None:
            self._runner = await Runner(self.db, clock=self._clock).__aenter__()
        for wf in self._workflows:
            self.runner.register(wf)
        if self.apply:
            self._run_driver = RunDriver(
                self.db,
                clock=self.runner.clock,
                workflows=self.runner.workflows,
                canaries=self.runner.canaries,
                seed=self.runner.seed,
                owner=self._given_runner.owner if self._given_runner is not None else None,
            )
        self._reader = open_ledger(self.db)
        self._probe = ChangeProbe(self.db) if isinstance(self.db, Path) else SeqProbe(self._reader)
        self._main = MainScreen(self.reviewer, self.now)
        await self.push_screen(self._main)
        self.queue.mine = self.may_decide
        self.queue.on_move = self._preview
        stats = True if self.training and self._stats_wanted is None else self._stats_wanted
        self.stats_panel.training = self.training
        self.stats_panel.display = self.size.width >= 110 if stats is None else stats
        self._status()
        self._render_shown()
        self.poll()
        if self.poll_s > 0:
            self.set_interval(self.poll_s, self.poll)
            self.set_interval(15, self.queue.tick)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self._gc.input()
        await super().on_event(event)

    async def on_unmount(self) -> None:
        self._gc.stop()
        for gate_id, what, spent in self.tracker.flush():  # the looks in progress end
            self._record_view(gate_id, what, spent)
        await self.writes.drained()
        self.writes.close()
        if self._run_driver is not None:
            await asyncio.to_thread(self._run_driver.close)
        if self._runner is not None and self._given_runner is None:
            await self._runner.__aexit__(None, None, None)
        if self._reader is not None:
            self._reader.close()
        if self._probe is not None:
            self._probe.close()

    # -- widgets ------------------------------------------------------------------------------

    @property
    def main(self) -> MainScreen:
        assert self._main is not None
        return self._main

    @property
    def queue(self) -> QueueTable:
        return self.main.query_one(QueueTable)

    @property
    def stats_panel(self) -> StatsPanel:
        return self.main.query_one(StatsPanel)

    @property
    def detail_open(self) -> bool:
        """Whether the detail of the gate on screen is open."""
        return self._main is not None and self._detail_gate is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Queue-only keys are off while the detail is open, and Back is off without it."""
        if action == "close_detail":
            return self.detail_open
        if action == "toggle_feedback":
            return self.feedback and not self.detail_open
        if action in ("open_detail", "cycle_sort", "toggle_stats", "toggle_mine"):
            return not self.detail_open
        return True

    @property
    def dark(self) -> bool:
        return self.current_theme.dark

    def shown_record(self) -> GateRecord | None:
        """The gate whose summary (or detail) is on screen."""
        shown = self.tracker.shown
        return None if shown is None else self.queue.records.get(shown)

    def _status(self) -> None:
        if self._detail_gate is not None:
            self.main.query_one("#status", Static).update(
                f"detail · {self._detail_gate}", layout=False
            )
            return
        table = self.queue
        parts = [f"coimprove review · {self.reviewer}", f"{len(table.records)} waiting"]
        if table.new_count:
            parts.append(f"{table.new_count} new (o to re-sort)")
        parts.append(f"sort {table.sort_column}{' ↓' if table.sort_reverse else ''}")
        if table.only_mine:
            parts.append(f"only yours ({table.row_count} shown)")
        if table.filter_text:
            parts.append(f"filter '{table.filter_text}' ({table.row_count} shown)")
        if not self.apply:
            parts.append("no-apply")
        if self.training:
            parts.append("TRAINING")
        if not self.feedback:
            parts.append("no feedback")
        self.main.query_one("#status", Static).update(" · ".join(parts), layout=False)

    # -- live data ----------------------------------------------------------------------------

    def poll(self, *, force: bool = False) -> None:
        """Cheap change check; a refresh runs in a worker thread only when something changed
        (a probe that is not cheap enough for the UI loop is asked on that thread)."""
        probe = self._probe
        assert probe is not None
        if probe.on_ui_loop and not (probe.changed() or force):
            return
        if self._refreshing:
            if force or probe.on_ui_loop:
                self._dirty = True
            return
        self._refreshing = True
        self._refresh(check=not (force or probe.on_ui_loop))

    @work(thread=True, group="refresh", exit_on_error=False)
    def _refresh(self, check: bool = False) -> None:
        assert self._reader is not None
        assert self._probe is not None
        stats = None
        try:
            if check and not self._probe.changed():
                self.call_from_thread(self._refresh_skipped)
                return
            for delta in self.index.refresh_chunks(self._reader, size=400):
                self.call_from_thread(self._apply, delta)
            stats = self._measures() if self._stats_visible() else None
            if self._unreachable and self.is_running:
                self._unreachable = False
                self.call_from_thread(self.notify, "The ledger can be read again.")
        except Exception as exc:  # a broken read must not kill the app
            log.warning("tui.refresh_failed", error=str(exc))
            if isinstance(exc, LedgerError) and not self._unreachable and self.is_running:
                self._unreachable = True  # said once, until it can be read again
                self.call_from_thread(
                    self.notify,
                    f"The ledger cannot be read: {exc}",
                    title="ledger",
                    severity="error",
                    timeout=15,
                )
        if self.is_running:
            self.call_from_thread(self._refresh_done, stats)

    def _refresh_skipped(self) -> None:
        """The worker's probe found nothing new."""
        self._refreshing = False
        if self._dirty:
            self._dirty = False
            self.poll(force=True)

    def _stats_visible(self) -> bool:
        try:
            return bool(self.stats_panel.display)
        except Exception:
            return False

    def _measures(self) -> GroupMeasures | None:
        assert self._reader is not None
        return summarize(self._reader, "reviewer").get(self.reviewer)

    def _refresh_done(self, stats: GroupMeasures | None) -> None:
        self._refreshing = False
        if self._initial and self.freeze_gc:
            # the loaded queue is long-lived: frozen out of full collections, which run
            # when the reviewer pauses instead of inside a keypress
            self._gc.start()
            self.set_interval(1.0, self._gc.tick)
        if self._initial and self.training and not self.queue.records:
            self.notify(
                "No practice gates are waiting. Start some with `coimprove review --training "
                "--graph <workflow>`.",
                title="training",
                severity="warning",
                timeout=15,
            )
        self._initial = False
        if stats is not None or self._stats_visible():
            self.stats_panel.show(stats)
        self._collect_feedback()
        if self._dirty:
            self._dirty = False
            self.poll(force=True)
        self.loaded.set()

    def _apply(self, delta: Delta) -> None:
        if self.training:  # training shows the practice gates only
            delta = dataclasses.replace(
                delta,
                opened=tuple(r for r in delta.opened if is_practice(r)),
                changed=tuple(r for r in delta.changed if is_practice(r)),
                closed=tuple(r for r in delta.closed if is_practice(r)),
            )
        table = self.queue
        table.contents.update(delta.contents)
        shown = self.tracker.shown
        if delta.opened:
            if not table.records:  # first rows: sorted in
                table.records.update((r.gate_id, r) for r in delta.opened)
                table.rebuild()
            else:
                added = table.add(delta.opened)
                if not self._initial:
                    table.new_count += added
        before = table.records.get(shown) if shown is not None else None
        table.update(delta.changed)
        closed = [r for r in delta.closed if r.gate_id not in self.decided_here]
        table.close(closed, keep=shown)
        for record in delta.changed + tuple(closed):
            if record.gate_id == shown:
                if (
                    before is None
                    or record.status != "open"
                    or record.proposal.digest != before.proposal.digest
                ):
                    self.tracker.changed()  # what is on screen changed: guard the keys again
                self._render_shown()
        self._status()
        if shown is None or shown not in table.rows:
            table.take_user_move()  # this change of item is the app's doing, not a look
            self._settle()

    # -- what is on screen --------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._rest_timer is not None:
            self._rest_timer.stop()
            self._rest_timer = None
        self._preview()
        if self.rest_s > 0:
            self._rest_timer = self.set_timer(self.rest_s, self._settle)
        else:
            self.call_later(self._settle)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_detail()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        table = self.queue
        table.sort_reverse = table.sort_column == column and not table.sort_reverse
        table.sort_column = column
        table.rebuild()
        self._status()

    def _settle(self) -> None:
        """The cursor rested: show the gate under it (a view if the reviewer moved there)."""
        if self._main is None or not self._main.is_attached:
            return  # the app is closing: a rest timer fired after the screen went away
        table = self.queue
        key = table.current_key()
        by_user = table.take_user_move()
        if key == self.tracker.shown:
            return
        self.tracker.show(key, by_user=by_user)
        table.drop_closed(except_key=key)
        self._render_shown()
        self._status()

    def _preview(self) -> None:
        """The summary follows the cursor at once (it is cheap); the look is counted, and the
        detail rendered ahead, only once the cursor rests on the row (`_settle`)."""
        key = self.queue.current_key()
        if key != self.previewed and key is not None:
            self.tracker.changed()
            self._render_summary()

    def _render_summary(self) -> None:
        """Show the summary of the gate under the cursor (else of the gate on screen)."""
        key = self.queue.current_key()
        record = self.queue.records.get(key) if key is not None else None
        if record is None:
            record = self.shown_record()
        holds = None if record is None else self.queue.contents.get(record.gate_id)
        self.main.show_summary(render.summary(record, dark=self.dark, holds=holds))
        self.previewed = None if record is None else record.gate_id

    def _render_shown(self) -> None:
        record = self.shown_record()
        self._render_summary()
        if record is not None and self._detail_gate == record.gate_id:
            self._load_detail(record)
        elif record is not None:
            self._prerender_due = True
            self.call_after_refresh(self._prerender)

    def on_detail_view_width_changed(self, message: DetailView.WidthChanged) -> None:
        record = self._detail_record
        if self.detail_open and record is not None:
            self._load_detail(record)  # render it again at the new width

    def _record_view(self, gate_id: str, what: ViewKind, visible_s: float) -> None:
        """Queue a view event, stamped now (when it happened, not when it is written), once
        the frame that shows it is drawn."""
        self.writes.hold(
            _write_view,
            self.runner.ledger,
            gate_id,
            self.reviewer,
            what,
            at=self.now(),
            visible_s=visible_s,
        )
        self.call_after_refresh(self.writes.release)

    def on_app_blur(self, event: events.AppBlur) -> None:
        self.tracker.cover("blur")

    def on_app_focus(self, event: events.AppFocus) -> None:
        self.tracker.uncover("blur")

    def _on_theme(self, theme: Theme) -> None:
        if self._main is None:
            return
        self.queue.restyle(theme.dark)
        self._render_shown()

    # -- detail -------------------------------------------------------------------------------

    def _detail_key(self, record: GateRecord, width: int) -> tuple[Any, ...]:
        """What a rendered detail depends on: the gate's version and state, width, theme."""
        return (
            record.gate_id,
            record.proposal.digest,
            record.status,
            len(record.decisions),
            width,
            self.dark,
        )

    def _render_detail(self, data: DetailData, width: int) -> RenderedDetail:
        """Render a detail to strips (on any thread)."""
        parts = render.detail_parts(data, dark=self.dark)
        return render_detail(parts, width, self._detail_style, self._detail_key(data.record, width))

    @property
    def _detail_style(self) -> Style:
        return self.main.detail.rich_style

    def _prerender(self) -> None:
        """Render the detail of the gate on screen on a worker thread, before it is asked for:
        opening it is then only a repaint. Runs after the frame showing the gate is drawn."""
        self._prerender_due = False
        record = self.shown_record()
        if record is None or self.detail_open:
            return
        width = self.main.detail.text_width
        cached = self._rendered
        if cached is not None and cached.key == self._detail_key(record, width):
            return
        self._detail_gen += 1
        self._fetch_detail(record, self._detail_gen, width, self._detail_style, prerender=True)

    def action_open_detail(self) -> None:
        if self.detail_open:
            return
        self._settle()
        record = self.shown_record()
        if record is None:
            return
        self.tracker.detail_opened(record.gate_id)
        self._detail_gate = record.gate_id
        width = self.main.detail.text_width
        rendered = self._rendered
        if rendered is None or rendered.key != self._detail_key(record, width):
            assert self._reader is not None
            try:  # the queue holds light records: read this one in full (one indexed query)
                record = full_record(self._reader, record)
            except CoimproveError as exc:
                log.warning("tui.detail_failed", gate=record.gate_id, error=str(exc))
            rendered = self._rendered = self._render_detail(DetailData(record), width)
            self._detail_record = record
        self.main.show_detail(rendered)
        self._status()
        if not rendered.complete:  # earlier rounds and results: read after this frame
            self.call_after_refresh(self._load_detail, record)

    def action_close_detail(self) -> None:
        if self.detail_open:
            self._detail_gate = None
            self.main.hide_detail()
            self.tracker.detail_closed()
            self._status()

    def _load_detail(self, record: GateRecord) -> None:
        self._detail_gen += 1
        width = self.main.detail.text_width
        self._fetch_detail(record, self._detail_gen, width, self._detail_style)

    @work(thread=True, group="detail", exit_on_error=False)
    def _fetch_detail(
        self,
        record: GateRecord,
        generation: int,
        width: int,
        style: Style,
        *,
        prerender: bool = False,
    ) -> None:
        """Read the gate in full (with earlier rounds and results) and render it, off the UI
        thread; the UI shows it if it is still what is wanted."""
        assert self._reader is not None
        try:
            data = load_detail(self._reader, record)
            parts = render.detail_parts(data, dark=self.dark)
            key = self._detail_key(data.record, width)
            rendered = render_detail(parts, width, style, key, complete=True)
        except Exception as exc:
            log.warning("tui.detail_failed", gate=record.gate_id, error=str(exc))
            return
        if self.is_running:
            self.call_from_thread(self._show_detail, data.record, rendered, generation, prerender)

    def _show_detail(
        self, record: GateRecord, rendered: RenderedDetail, generation: int, prerender: bool
    ) -> None:
        if generation != self._detail_gen:
            return  # stale: another gate was asked for since
        if prerender:
            if not self.detail_open:
                self._rendered, self._detail_record = rendered, record
            return
        if self._detail_gate != record.gate_id:
            return  # closed, or another gate is open now
        shown = self._rendered
        self._rendered, self._detail_record = rendered, record
        if shown is None or shown.height != rendered.height or shown.key != rendered.key:
            self.main.update_detail(rendered)  # else: as shown
        else:
            self.main.detail.rendered = rendered

    # -- view options -------------------------------------------------------------------------

    def action_cycle_sort(self) -> None:
        table = self.queue
        if not table.new_count:  # after new gates arrived, the first press sorts them in
            at = SORTS.index(table.sort_column) if table.sort_column in SORTS else -1
            table.sort_column = SORTS[(at + 1) % len(SORTS)]
        table.sort_reverse = False
        table.rebuild()
        self._status()

    def action_toggle_mine(self) -> None:
        """Show only the gates this reviewer may decide now, or every pending gate."""
        table = self.queue
        table.only_mine = not table.only_mine
        table.mark_user_move()
        table.rebuild()
        self._status()

    def may_decide(self, record: GateRecord) -> bool:
        """Whether this reviewer may decide `record` now: a role it needs (per the run's
        policy, or the patterns snapshotted when it opened), a human reviewer accepted, not
        an author, and not already counted for this version."""
        if record.gate_id in self.queue.closed or record.status != "open":
            return False
        authors = {record.request.proposal.author, record.proposal.author}
        if self.reviewer in authors or self.reviewer in record.approvers():
            return False
        if "human" not in record.request.requirement.reviewer_kinds:
            return False
        return may_decide(record, self.reviewer, self.runner.roles_of(record.run_id, self.reviewer))

    def action_toggle_stats(self) -> None:
        panel = self.stats_panel
        panel.display = not panel.display
        if panel.display:
            self.poll(force=True)

    def action_toggle_theme(self) -> None:
        self.theme = THEMES["light"] if self.dark else THEMES["dark"]

    # -- deciding -----------------------------------------------------------------------------

    def action_decide(self, verdict: str) -> None:
        """Start a decision on the gate on screen (dialogs first where needed)."""
        if self.queue.current_key() != self.tracker.shown:
            self._settle_now()  # the cursor moved and has not rested: that gate is on screen now
        record = self.shown_record()
        if record is None:
            self.notify("Nothing to decide.", severity="warning")
            return
        if not self.tracker.ready():
            self.notify("The item just changed: read it, then press again.", severity="warning")
            return
        if record.gate_id in self.queue.closed or record.status != "open":
            self.notify("This gate was decided elsewhere; nothing was recorded.", severity="error")
            return
        title, risky = record.proposal.title, record.proposal.risk in RISKY
        if verdict == "approve":
            if risky:
                question = f"Approve {title!r}? It is {record.proposal.risk.upper()} risk."
                self._ask(
                    ConfirmDialog(question),
                    lambda ok: self._submit(record, "approve") if ok else None,
                )
            else:
                self._submit(record, "approve")
        elif verdict == "reject":
            self._ask(
                NoteDialog(f"Reject {title!r}: why? (optional; Enter rejects)", required=False),
                lambda note: (
                    self._submit(record, "reject", note=note) if note is not None else None
                ),
            )
        elif verdict == "request_changes":
            self._ask(
                NoteDialog(f"Request changes to {title!r}: what must change?", required=True),
                lambda note: self._submit(record, "request_changes", note=note) if note else None,
            )
        elif verdict == "escalate":
            self._ask(
                NoteDialog(
                    f"Escalate {title!r}: note for the next role (optional)", required=False
                ),
                lambda note: (
                    self._submit(record, "escalate", note=note) if note is not None else None
                ),
            )
        elif verdict == "edit":
            dialog = EditDialog(
                f"Edit the payload of {title!r}",
                record.proposal.payload,
                record.request.payload_schema,
            )
            self._ask(dialog, lambda payload: self._edited(record, payload))

    def _edited(self, record: GateRecord, payload: dict[str, Any] | None) -> None:
        if payload is None:
            return
        if record.proposal.risk in RISKY:
            question = (
                f"Approve your edit of {record.proposal.title!r}? "
                f"It is {record.proposal.risk.upper()} risk."
            )
            self._ask(
                ConfirmDialog(question, "Approve edit (y)"),
                lambda ok: self._submit(record, "edit", payload=payload) if ok else None,
            )
        else:
            self._submit(record, "edit", payload=payload)

    def _ask(self, dialog: ModalScreen[Any], then: Callable[[Any], None]) -> None:
        """Show a dialog; the item's visible time stops while it covers the item."""
        self.tracker.cover("dialog")

        def done(result: Any) -> None:
            self.tracker.uncover("dialog")
            then(result)

        self.push_screen(dialog, done)

    def _submit(
        self,
        record: GateRecord,
        verdict: Verdict,
        *,
        note: str = "",
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Record the decision, bound to the digest of `record` as it was on screen.

        The decision is validated and written on the write thread; the screen moves to the
        next gate at once, with this one marked until the ledger has it (a refused decision
        is reported and its row restored).
        """
        gate_id = record.gate_id
        if gate_id in self._deciding:
            self.notify("This decision is still being recorded.", severity="warning")
            return
        try:
            decision = Decision(
                verdict=verdict,
                reviewer=self.reviewer,
                reviewer_kind="human",
                digest=record.proposal.digest,
                note=note,
                edited_payload=payload,
            )
        except ValueError as exc:
            self.notify(str(exc), title="not recorded", severity="error", timeout=10)
            return
        self.tracker.ensure_viewed(gate_id)
        at = self.now()
        views = tuple(
            ViewEvent(what=what, at=at, visible_s=spent)
            for what, spent in self.tracker.closing_views(gate_id)
        )
        future = self.writes.submit(self._write_decision, gate_id, decision, at, views)
        self._deciding.add(gate_id)
        self.decided_here.add(gate_id)
        self.action_close_detail()
        table = self.queue
        table.mark_pending(gate_id, verdict)
        if table.current_key() == gate_id and table.row_count > 1:
            row = table.cursor_row
            table.mark_user_move()  # the next item is shown because the reviewer decided
            table.move_cursor(row=row + 1 if row + 1 < table.row_count else row - 1)
            self._settle_now()
        self.run_worker(self._decision_done(future, gate_id, verdict), group="decide")

    def _write_decision(
        self, gate_id: str, decision: Decision, at: float, views: tuple[ViewEvent, ...]
    ) -> Recorded:
        """On the write thread: record the decision."""
        return self.runner.decide(gate_id, decision, views=views, at=at)

    async def _decision_done(
        self, future: concurrent.futures.Future[Recorded], gate_id: str, verdict: Verdict
    ) -> None:
        table = self.queue
        try:
            recorded = await asyncio.wrap_future(future)
        except Exception as exc:
            self._deciding.discard(gate_id)
            self.decided_here.discard(gate_id)
            self.tracker.reopen(gate_id)
            table.unmark_pending(gate_id)
            if not isinstance(exc, CoimproveError | ValueError):
                log.exception("tui.decision_failed", gate=gate_id, exc_info=exc)
            self.notify(f"{gate_id}: {exc}", title="not recorded", severity="error", timeout=10)
            self.poll(force=True)
            return
        self._deciding.discard(gate_id)
        outcome = recorded.outcome
        if outcome is None:
            self.decided_here.discard(gate_id)
            self.tracker.reopen(gate_id)
            table.unmark_pending(gate_id)
            self.notify(f"{verdict} recorded; the gate waits for more reviewers.")
            self.poll(force=True)
            return
        on_it = table.current_key() == gate_id
        table.discard(gate_id)
        if on_it:
            table.mark_user_move()
            self._settle_now()
        self._status()
        settled: str = outcome.outcome
        if settled == "canary" and not self.feedback:
            settled = "closed"  # saying it was a canary is feedback: off means not shown
        self.notify(f"{verdict.replace('_', ' ')} recorded; gate {gate_id} {settled}.")
        self._collect_feedback()  # a canary is revealed now: show it right after the decision
        run_id = recorded.event.run_id
        if self._run_driver is not None and run_id:
            self._advance(run_id)
        self.poll(force=True)

    def _settle_now(self) -> None:
        if self._rest_timer is not None:
            self._rest_timer.stop()
        self._settle()

    # -- feedback -----------------------------------------------------------------------------

    def _collect_feedback(self) -> None:
        """Read this reviewer's new feedback (on the write thread, after the writes queued so
        far, so a decision just made is in it) and show it."""
        if not self.feedback or self._runner is None:
            return
        if self._collecting:
            self._collect_again = True
            return
        self._collecting, self._collect_again = True, False
        future = self.writes.submit(self._new_feedback)
        self.run_worker(self._feedback_ready(future), group="feedback")

    def _new_feedback(self) -> list[FeedbackItem]:
        if self._feedback is None:  # reads what earlier sessions showed: not shown twice
            self._feedback = FeedbackBuilder(
                self.runner.ledger, reviewers=frozenset({self.reviewer})
            )
        return self._feedback.new()

    async def _feedback_ready(self, future: concurrent.futures.Future[list[FeedbackItem]]) -> None:
        try:
            items = await asyncio.wrap_future(future)
        except Exception as exc:  # feedback must never cost a decision
            log.warning("tui.feedback_failed", error=str(exc))
            items = []
        self._collecting = False
        if items and self.is_running:
            self._show_feedback(items)
        if self._collect_again:
            self._collect_feedback()

    def _show_feedback(self, items: list[FeedbackItem]) -> None:
        """Show `items` (a canary reveal as a dialog, the rest as notifications, all in the
        feedback log) and record exactly these as shown."""
        self.feedback_shown.extend(items)
        self.main.query_one(FeedbackLog).add(items)
        for item in items:
            if item.kind == "canary":
                self._reveal(item)
            else:
                self.notify(
                    item.explanation,
                    title=f"feedback: {item.kind}",
                    severity="warning" if item.lesson else "information",
                    timeout=12 if item.lesson else 6,
                )
        self.writes.submit(_write_feedback, self.runner.ledger, items, at=self.now())

    def _reveal(self, item: FeedbackItem) -> None:
        mutation = item.detail.get("mutation")
        caught = bool(item.correct)
        self.reveals.append((item.gate_id, mutation, caught))
        dialog = RevealDialog(
            mutation,
            caught,
            explanation=item.explanation,
            hint=hint(mutation) if self.training else None,
        )
        cover = f"reveal:{item.gate_id}"
        self.tracker.cover(cover)
        self.push_screen(dialog, lambda _: self.tracker.uncover(cover))

    def action_toggle_feedback(self) -> None:
        """Show or hide the log of the feedback shown in this session."""
        panel = self.main.query_one(FeedbackLog)
        panel.display = not panel.display

    @work(thread=True, group="advance", exit_on_error=False)
    def _advance(self, run_id: str) -> None:
        """Resume the run whose gate settled, off the UI loop (exactly once: the runner's
        lease guarantees it); failures become notifications."""
        assert self._run_driver is not None
        try:
            self._run_driver.advance(run_id)
            info = self.runner.info(run_id)
            if info.state in ("failed", "blocked"):
                self._notify_from_thread(f"run {run_id} {info.state}: {info.error}")
            elif info.state == "ready":  # leased by another runner, or its graph is unknown
                self._notify_from_thread(
                    f"run {run_id} was not resumed here; `coimprove resume {run_id}` applies "
                    "the decision",
                    severity="warning",
                )
        except CoimproveError as exc:
            self._notify_from_thread(f"run {run_id} was not resumed: {exc}")
        except Exception as exc:
            log.exception("tui.advance_failed", run=run_id, exc_info=exc)
            self._notify_from_thread(f"run {run_id} failed to resume: {exc}")
        if self.is_running:
            self.call_from_thread(self.poll, force=True)

    def _notify_from_thread(
        self, message: str, *, severity: Literal["warning", "error"] = "error"
    ) -> None:
        if self.is_running:
            self.call_from_thread(self.notify, message, severity=severity, timeout=10)

    async def settled(self) -> None:
        """Wait until pending writes, resumes, refreshes and renders ahead are done (for tests
        and scripts)."""
        while True:
            await self.writes.drained()
            if self._prerender_due and self.is_running:  # due after the next frame is drawn
                await asyncio.sleep(0.01)
                continue
            await self.workers.wait_for_complete()
            if not any(not w.is_finished for w in self.workers):
                await self.writes.drained()
                return


def _write_feedback(ledger: Any, items: list[FeedbackItem], *, at: float) -> None:
    try:
        record_feedback(ledger, items, at=at)
    except CoimproveError as exc:
        log.warning("tui.feedback_not_recorded", error=str(exc))


def _write_view(ledger: Any, gate_id: str, *args: Any, **kwargs: Any) -> None:
    try:
        record_view(ledger, gate_id, *args, **kwargs)
    except CoimproveError as exc:  # e.g. the gate vanished: the look is lost, not the app
        log.warning("tui.view_not_recorded", gate=gate_id, error=str(exc))


def run_review(
    db: str | os.PathLike[str],
    *,
    reviewer: str,
    theme: Literal["dark", "light"] = "dark",
    apply: bool = True,
    feedback: bool = True,
    training: bool = False,
) -> None:
    """Run the review app in this terminal until the reviewer quits.

    While it runs, coimprove's log lines go to a file instead of the terminal the app draws
    on (`review_log`).
    """
    with _logs_to_file(review_log(db)):
        ReviewApp(
            db,
            reviewer=reviewer,
            theme=theme,
            apply=apply,
            freeze_gc=True,
            feedback=feedback,
            training=training,
        ).run()


def review_log(db: str | os.PathLike[str]) -> Path:
    """Where `run_review` writes its log: ``<ledger>.review.log`` beside an SQLite ledger,
    ``.coimprove/review-<database>.log`` here for a Postgres one."""
    if ledger_kind(db) == "postgres":
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(os.fspath(db)).get("dbname") or "postgres"
        return Path(".coimprove") / f"review-{name}.log"
    return sqlite_path(db).with_suffix(".review.log")


@contextmanager
def _logs_to_file(path: Path) -> Iterator[None]:
    root = logging.getLogger("coimprove")
    streams = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    for h in streams:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in streams:
            root.addHandler(h)
