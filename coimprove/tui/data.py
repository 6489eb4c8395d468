"""The TUI's data layer: a cheap change check and incremental reads of open gates.

A `Probe` tells whether the ledger changed. `ChangeProbe` runs ``PRAGMA data_version`` on
its own connection to an SQLite file (cheap enough for the UI loop); `SeqProbe` asks any
`Ledger` for its last sequence number (for a ledger on a server: a round trip, run off the
UI loop). `GateIndex.refresh` runs in a worker thread: it reads only the gate events appended
since its last call, re-folds the gates they touch and reports what opened, changed and
closed. It keeps no events, and the records it reports are `light`: what the queue, the
summary and a decision need, without artifact contents or raw event data (thousands of
pending gates with large diffs must not all sit in memory). `load_detail` reads the full
gate, and what else the detail view shows, when the reviewer opens it.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coimprove.gates import GateRecord, fold_gate, gate_id_for, load_gate
from coimprove.model import EventType, LedgerEvent, Proposal
from coimprove.protocols import Ledger, LedgerReader
from coimprove.tui.format import contents

GATE_EVENTS: tuple[EventType, ...] = (
    "gate.opened",
    "gate.decided",
    "gate.resolved",
    "gate.resumed",
    "gate.timed_out",
)


# The first load reads only the gates that are still open (one indexed query) and then their
# events a chunk at a time, instead of every gate event ever recorded: the first rows are on
# screen after one small chunk. Everything is bounded by the head sequence read first, so the
# chunks are one consistent snapshot of the append-only log, and later refreshes continue
# from that sequence.
_HEAD_SQL = "SELECT COALESCE(MAX(seq), 0) FROM events"
_OPEN_IDS_SQL = """
SELECT o.gate_id FROM events o WHERE o.type = 'gate.opened' AND o.seq <= ?
AND NOT EXISTS (SELECT 1 FROM events r
                WHERE r.gate_id = o.gate_id AND r.type = 'gate.resolved' AND r.seq <= ?)
ORDER BY o.seq
"""
_GATE_EVENTS_SQL = (
    "SELECT seq, type, run_id, gate_id, actor, at, data, prev_hash, hash FROM events "
    "WHERE gate_id IN ({ids}) AND type IN ({types}) AND seq <= ? ORDER BY seq"
)
FIRST_CHUNK = 100

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def _event(row: Sequence[Any]) -> LedgerEvent:
    seq, type_, run_id, gate_id, actor, at, data, prev_hash, hash_ = row
    return LedgerEvent(
        seq=seq,
        type=type_,
        run_id=run_id,
        gate_id=gate_id,
        actor=actor,
        at=at,
        data=json.loads(data),
        prev_hash=prev_hash,
        hash=hash_,
    )


class Probe(Protocol):
    """Tells whether the ledger changed since the last check."""

    @property
    def on_ui_loop(self) -> bool:
        """Whether `changed` is cheap enough to call on the UI loop (else: a worker thread)."""
        ...

    def changed(self) -> bool:
        """True on the first call and whenever the ledger changed since the previous one."""
        ...

    def close(self) -> None: ...


class ChangeProbe:
    """Tells whether another connection committed to an SQLite ledger since the last check."""

    on_ui_loop = True

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def changed(self) -> bool:
        """True on the first call and whenever the database changed since the previous one."""
        try:
            if self._conn is None:
                uri = self._path.resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=1)
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            self.close()
            return True
        changed = version != self._version
        self._version = version
        return changed

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class SeqProbe:
    """Tells whether any `Ledger` grew since the last check, by its last sequence number (one
    index lookup; every commit that matters to the queue appends an event). Polling through
    the Ledger protocol rather than LISTEN/NOTIFY: no extra connection or trigger, nothing
    missed while the connection is being taken back, and the same code for every backend."""

    on_ui_loop = False

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._seq: int | None = None

    def changed(self) -> bool:
        seq = self._ledger.last_seq()
        changed = seq != self._seq
        self._seq = seq
        return changed

    def close(self) -> None:
        """Nothing of its own to close (the ledger is its owner's)."""


@dataclass(frozen=True)
class Delta:
    """What one refresh found: gates that opened, changed (still open), and closed."""

    opened: tuple[GateRecord, ...] = ()
    changed: tuple[GateRecord, ...] = ()
    closed: tuple[GateRecord, ...] = ()
    seq: int = 0
    contents: dict[str, str] = field(default_factory=dict)
    """What the detail of each opened or changed gate holds (for the summary)."""

    def __bool__(self) -> bool:
        return bool(self.opened or self.changed or self.closed)


def _light_proposal(p: Proposal) -> Proposal:
    if not any(a.content for a in p.artifacts):
        return p
    light = p.model_copy(
        update={"artifacts": tuple(a.model_copy(update={"content": None}) for a in p.artifacts)}
    )
    # Artifacts enter the digest by their own digests, never their contents: the digest is
    # unchanged (tests/tui/test_data.py recomputes it), so carry it over instead of paying
    # for it again on every gate of a long queue.
    light._digest = p.digest
    return light


def light(record: GateRecord) -> GateRecord:
    """`record` without artifact contents and raw event data: what the queue, the summary
    and a decision (bound to the same digest) need. `load_gate` reads the full one."""
    first = _light_proposal(record.request.proposal)
    proposal = first if record.proposal is record.request.proposal else None
    out = dataclasses.replace(
        record,
        opened=record.opened.model_copy(update={"data": {"interrupt_id": record.interrupt_id}}),
        request=record.request.model_copy(update={"proposal": first}),
        decisions=[
            (e.model_copy(update={"data": {"new_digest": e.data.get("new_digest")}}), d)
            for e, d in record.decisions
        ],
    )
    out.proposal = proposal or _light_proposal(record.proposal)  # the edited one, if edited
    return out


@dataclass
class GateIndex:
    """The open gates, refreshed incrementally by sequence number (no events kept)."""

    seq: int = 0
    _open: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, reader: LedgerReader) -> Delta:
        """Read gate events after the last seen one; fold the gates they touch."""
        parts = list(self.refresh_chunks(reader, size=0))
        return Delta(
            tuple(r for d in parts for r in d.opened),
            tuple(r for d in parts for r in d.changed),
            tuple(r for d in parts for r in d.closed),
            self.seq,
            {k: v for d in parts for k, v in d.contents.items()},
        )

    def refresh_chunks(self, reader: LedgerReader, *, size: int = 500) -> Iterator[Delta]:
        """Like `refresh`, folding `size` gates at a time (0: all at once), so a first load
        of thousands of gates can be shown while the rest is still being read."""
        with self._lock:
            query: Query | None = getattr(reader, "query", None)
            if self.seq == 0 and query is not None:
                yield from self._first_load(query, size)
                return
            new = reader.events(types=GATE_EVENTS, after_seq=self.seq)
            if not new:
                return
            fresh: set[str] = set()
            touched: dict[str, None] = {}
            for event in new:
                gid = event.gate_id
                if gid is None:
                    continue
                if event.type == "gate.opened":
                    fresh.add(gid)
                    touched[gid] = None
                elif gid in self._open:
                    touched[gid] = None
            self.seq = new[-1].seq
            ids = list(touched)
            step = size if size > 0 else max(1, len(ids))
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                events = {
                    gid: [
                        e
                        for e in reader.events(gate_id=gid, types=GATE_EVENTS)
                        if e.seq <= self.seq
                    ]
                    for gid in chunk
                }
                yield self._fold(events, fresh)

    def _first_load(self, query: Query, size: int) -> Iterator[Delta]:
        """The open gates only, oldest first: a small first chunk, then `size` at a time."""
        head = int(query(_HEAD_SQL, ())[0][0])
        if head == 0:
            return
        ids = [str(r[0]) for r in query(_OPEN_IDS_SQL, (head, head))]
        self.seq = head
        step = size if size > 0 else max(1, len(ids))
        types = ",".join("?" * len(GATE_EVENTS))
        start = 0
        while start < len(ids):
            chunk = ids[start : start + (min(step, FIRST_CHUNK) if start == 0 else step)]
            start += len(chunk)
            sql = _GATE_EVENTS_SQL.format(ids=",".join("?" * len(chunk)), types=types)
            events: dict[str, list[LedgerEvent]] = {}
            for row in query(sql, (*chunk, *GATE_EVENTS, head)):
                event = _event(row)
                gid = str(event.gate_id)
                if event.type == "gate.opened":
                    events[gid] = [event]
                elif gid in events:
                    events[gid].append(event)
            yield self._fold(events, set(chunk))

    def _fold(self, events: dict[str, list[LedgerEvent]], fresh: set[str]) -> Delta:
        opened: list[GateRecord] = []
        changed: list[GateRecord] = []
        closed: list[GateRecord] = []
        shown: dict[str, str] = {}
        for gid, gate_events in events.items():
            if not gate_events or gate_events[0].type != "gate.opened":
                continue
            record = fold_gate(gate_events)
            if record.status != "open":
                self._open.discard(gid)
                if gid not in fresh:
                    closed.append(light(record))
                continue
            self._open.add(gid)
            shown[gid] = contents(record)
            (opened if gid in fresh else changed).append(light(record))
        return Delta(tuple(opened), tuple(changed), tuple(closed), self.seq, shown)


@dataclass(frozen=True)
class DetailData:
    """Everything the detail view shows about one gate."""

    record: GateRecord
    history: tuple[GateRecord, ...] = ()
    results: tuple[dict[str, Any], ...] = ()


def load_detail(reader: LedgerReader, record: GateRecord) -> DetailData:
    """The full gate (artifact contents included), its earlier rounds and the experiment
    results recorded in its run."""
    record = full_record(reader, record)
    history: list[GateRecord] = []
    req = record.request
    for round_ in range(1, req.round):
        events = reader.events(gate_id=gate_id_for(req.run_id, req.gate, round_))
        gate_events = [e for e in events if e.type in GATE_EVENTS]
        if gate_events and gate_events[0].type == "gate.opened":
            history.append(fold_gate(gate_events))
    results = tuple(
        {"gate": e.gate_id, **e.data}
        for e in reader.events(run_id=req.run_id, types=["experiment.recorded"])
    )
    return DetailData(record, tuple(history), results)


def full_record(reader: LedgerReader, record: GateRecord) -> GateRecord:
    """The full version of a (possibly `light`) record, as the ledger has it now."""
    if not any(a.content is None and a.uri is None for a in record.proposal.artifacts):
        return record
    return load_gate(reader, record.gate_id)


def open_records(reader: LedgerReader) -> Sequence[GateRecord]:
    """Every open gate, oldest first (a fresh index, for one-off reads)."""
    return GateIndex().refresh(reader).opened
