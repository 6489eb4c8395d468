"""The default ledger: one SQLite file in WAL mode, events hash-chained, leases beside them."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, cast, get_args

from coimprove.errors import LedgerError, LedgerIntegrityError, NotALedgerError
from coimprove.ledger.chain import GENESIS, event_data_json, verify_chain
from coimprove.ledger.witness import Head, HeadWitness
from coimprove.model import EventType, LedgerEvent, event_hash
from coimprove.protocols import ChainReport

FORMAT = "coimprove-ledger"
SCHEMA_VERSION = "1"

# Generated columns expose the event fields that measures group and filter by, so metrics are
# plain SQL aggregates over `events` (and a Postgres schema can define the same columns).
# What the hash covers: every stored column but `recorded`. `seq`, `type`, `run_id`, `gate_id`,
# `actor`, `at`, `data` and `prev_hash` are hashed into `hash`; the generated columns are
# computed from `data` (virtual here, so there is nothing stored to edit). `recorded` is the
# wall-clock time this row was written: a property of this copy, not of the event, kept out of
# the hash so the same events give the same chain in any store (a replay or a migration to
# Postgres keeps every hash); nothing in coimprove reads it, and `verify` says it is unproven.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    run_id     TEXT,
    gate_id    TEXT,
    actor      TEXT,
    at         REAL NOT NULL,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    recorded   REAL NOT NULL,
    verdict       TEXT GENERATED ALWAYS AS (json_extract(data, '$.verdict')) VIRTUAL,
    reviewer_kind TEXT GENERATED ALWAYS AS (json_extract(data, '$.reviewer_kind')) VIRTUAL,
    proposal_kind TEXT GENERATED ALWAYS AS (json_extract(data, '$.proposal_kind')) VIRTUAL,
    policy        TEXT GENERATED ALWAYS AS (json_extract(data, '$.policy')) VIRTUAL,
    outcome       TEXT GENERATED ALWAYS AS (json_extract(data, '$.outcome')) VIRTUAL,
    canary        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.hidden.canary')) VIRTUAL,
    truth         TEXT GENERATED ALWAYS AS (json_extract(data, '$.hidden.truth')) VIRTUAL,
    has_detail    INTEGER GENERATED ALWAYS AS (json_extract(data, '$.has_detail')) VIRTUAL,
    min_review_s  REAL GENERATED ALWAYS AS (json_extract(data, '$.min_review_s')) VIRTUAL,
    category      TEXT GENERATED ALWAYS AS (json_extract(data, '$.category')) VIRTUAL,
    reason        TEXT GENERATED ALWAYS AS (json_extract(data, '$.reason')) VIRTUAL,
    deadline      REAL GENERATED ALWAYS AS (json_extract(data, '$.deadline')) VIRTUAL,
    latency_s     REAL GENERATED ALWAYS AS (json_extract(data, '$.latency_s')) VIRTUAL,
    tokens        INTEGER GENERATED ALWAYS AS (json_extract(data, '$.total_tokens')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS events_gate ON events (gate_id, type);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, type);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE TABLE IF NOT EXISTS leases (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

# The recorded head moves with every insert inside the INSERT statement itself, so a lone
# append is one autocommit statement. Ledgers created before the trigger existed get it on open;
# writers that still update the head themselves stay compatible (they write the same value).
_HEAD_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS events_head AFTER INSERT ON events
BEGIN UPDATE meta SET value = NEW.hash WHERE key = 'head'; END
"""
_INSERT = (
    "INSERT INTO events (seq, type, run_id, gate_id, actor, at, data, prev_hash, hash, recorded) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)

_COLUMNS = "seq, type, run_id, gate_id, actor, at, data, prev_hash, hash"

Synchronous = Literal["normal", "full"]
"""How durable the ledger's commits are. ``normal``: a commit survives the process being killed
(``kill -9``), not an OS crash or power loss, which can take the last commits (SQLite's WAL
with ``synchronous=NORMAL``). ``full``: commits are also fsynced before anything acts on them:
`SqliteLedger.durable` (awaited by the runner before it resumes a run and around every effect)
and `sync` fsync the ledger's write-ahead log in a background thread, one fsync for all the
commits made since the last (group commit), and `close` does it last; so the ledger is never
behind a LangGraph checkpoint (those are fsynced) or a side effect that came after it."""
SYNCHRONOUS: tuple[str, ...] = get_args(Synchronous)

_SELECT = re.compile(r"\s*SELECT\b", re.IGNORECASE)
"""A statement `SqliteLedger.query` may run on the writer connection."""


class _Tx:
    """`SqliteLedger.transaction()`: a context manager that is also the writer it hands out.

    Entering takes the ledger's lock and ``BEGIN IMMEDIATE``; leaving commits (or rolls back
    on an exception) and releases them. A class rather than a generator: this runs for every
    decision and every step of every run.
    """

    def __init__(self, ledger: SqliteLedger) -> None:
        self._ledger = ledger
        self._head: tuple[int, str] | None = None

    def __enter__(self) -> _Tx:
        ledger = self._ledger
        ledger._lock.acquire()
        try:
            ledger._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            ledger._lock.release()
            raise
        ledger._tx_thread = threading.get_ident()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        ledger, conn = self._ledger, self._ledger._conn
        ledger._tx_thread = None
        try:
            if exc_type is not None:
                self._roll_back()
                return
            try:
                if self._head is not None and not ledger._head_trigger:
                    conn.execute("UPDATE meta SET value=? WHERE key='head'", (self._head[1],))
                conn.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise
            if self._head is not None:  # it appended events (not only leases or reads)
                ledger._commits += 1
                ledger._head = self._head
                ledger._committed(self._head)
        finally:
            ledger._lock.release()

    def _roll_back(self) -> None:
        self._ledger._head = None  # what this transaction appended was rolled back
        if self._ledger._conn.in_transaction:
            self._ledger._conn.execute("ROLLBACK")

    def events(
        self,
        *,
        run_id: str | None = None,
        gate_id: str | None = None,
        types: Sequence[EventType] | None = None,
        after_seq: int = 0,
    ) -> list[LedgerEvent]:
        return self._ledger._select(
            run_id=run_id, gate_id=gate_id, types=types, after_seq=after_seq
        )

    def append(
        self,
        type: EventType,
        *,
        at: float,
        run_id: str | None = None,
        gate_id: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> LedgerEvent:
        # `BEGIN IMMEDIATE` holds the write lock, so a head read here cannot go stale; a head
        # remembered from an earlier transaction can, and then its next seq is already taken
        event, self._head = self._ledger._insert(
            self._head, type, at, run_id, gate_id, actor, data, retry=self._head is None
        )
        return event


class SqliteLedger:
    """Append-only, hash-chained events in one SQLite file (WAL; safe across processes)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 30.0,
        synchronous: Synchronous | None = None,
    ) -> None:
        """Open (or create) the ledger at `path`.

        `synchronous` sets the ledger's durability (see `Synchronous`) and records it in the
        file, so every process that opens the ledger later commits the same way; None keeps
        the recorded one (``normal`` if none was ever set).
        """
        if synchronous is not None and synchronous not in SYNCHRONOUS:
            raise LedgerError(
                f"synchronous={synchronous!r} is not a ledger durability; use one of "
                f"{', '.join(SYNCHRONOUS)}"
            )
        self.path = Path(path)
        if self.path.is_dir():
            raise NotALedgerError(f"{self.path} is a directory, not a coimprove ledger file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._timeout = busy_timeout_s
        self._reader: sqlite3.Connection | None = None
        self._head: tuple[int, str] | None = None
        """(seq, hash) of the last event this process saw committed: a guess that the
        events table's primary key checks (another writer's append makes its seq taken)."""
        self._head_trigger = False
        self._tx_thread: int | None = None
        """The thread inside a `transaction()` (holding the lock), if any."""
        self.synchronous: Synchronous = synchronous or "normal"
        """How durable this connection's commits are (see `Synchronous`)."""
        self._commits = 0
        """Commits of events made here (what `sync` has to cover)."""
        self._synced: tuple[int, int] | None = None
        """(commits, SQLite data_version) at the last fsync: nothing new since, if unchanged."""
        self._sync_lock = threading.Lock()
        self._syncer: ThreadPoolExecutor | None = None
        self._closed = False
        self.head_witness = HeadWitness(self.path.with_name(self.path.name + ".head"))
        """The head witness beside the file (`coimprove.ledger.witness`)."""
        self._unwitnessed: tuple[int, str] | None = None
        """``full`` mode: the head committed here that the witness may name once it is synced."""
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
            self._init_schema(synchronous)
        except sqlite3.DatabaseError as exc:
            raise NotALedgerError(f"{self.path} is not a coimprove ledger ({exc})") from exc

    @property
    def checkpoint_path(self) -> Path:
        """Where LangGraph checkpoints for this ledger's runs live (a sibling file)."""
        return self.path.with_name(self.path.stem + ".checkpoints.db")

    def _init_schema(self, synchronous: Synchronous | None) -> None:
        conn = self._conn
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta: dict[str, str] = {}
        if tables and "meta" not in tables:
            raise NotALedgerError(
                f"{self.path} is an SQLite database but not a coimprove ledger "
                f"(it has tables {sorted(tables)[:5]} and no coimprove metadata)"
            )
        if "meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != FORMAT:
                raise NotALedgerError(f"{self.path} is not a coimprove ledger (format missing)")
            if meta.get("schema") != SCHEMA_VERSION:
                raise NotALedgerError(
                    f"{self.path} has ledger schema {meta.get('schema')!r}; this coimprove reads "
                    f"schema {SCHEMA_VERSION!r}"
                )
        recorded = meta.get("synchronous", "normal")
        if recorded not in SYNCHRONOUS:
            raise NotALedgerError(
                f"{self.path}: its recorded durability {recorded!r} is none of "
                f"{', '.join(SYNCHRONOUS)} (meta key 'synchronous')"
            )
        self.synchronous = synchronous or cast(Synchronous, recorded)
        conn.execute("PRAGMA journal_mode=WAL")
        # `full` fsyncs at `durable`/`sync`/`close` (one fsync for many commits), so SQLite
        # itself need not fsync on every commit in either mode
        conn.execute("PRAGMA synchronous=NORMAL")
        if not tables:
            with self.transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('schema', ?), ('head', ?)",
                    (FORMAT, SCHEMA_VERSION, GENESIS),
                )
            self.head_witness.reset(Head(0, GENESIS))  # not a witness left by an older file
        if synchronous is not None and synchronous != recorded:
            try:
                with self.transaction():  # recorded, so every writer opening it later follows
                    conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('synchronous', ?)", (synchronous,)
                    )
            except sqlite3.OperationalError as exc:  # read-only, or locked past the timeout
                conn.close()
                raise LedgerError(
                    f"{self.path}: cannot record durability {synchronous!r} ({exc}); "
                    "nothing was changed"
                ) from exc
        found = "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='events_head'"
        if conn.execute(found).fetchone() is None:
            try:
                with self.transaction():
                    conn.execute(_HEAD_TRIGGER)
            except sqlite3.OperationalError:  # a read-only file: appends will fail anyway
                return
        self._head_trigger = True

    def _committed(self, head: tuple[int, str]) -> None:
        """Move the head witness to `head`, just committed. In ``normal`` mode at once (a
        commit survives a killed process, so the witness never names a lost event then; after
        an OS crash it can, and `verify` says that as a possibility); in ``full`` mode only once
        `sync` has fsynced the commit, so the witness never runs ahead of the disk."""
        if self.synchronous == "normal":
            self.head_witness.advance(Head(*head))
        else:
            self._unwitnessed = head

    def transaction(self) -> _Tx:
        """Serialised read-then-append: `BEGIN IMMEDIATE` makes concurrent writers queue."""
        return _Tx(self)

    def append(
        self,
        type: EventType,
        *,
        at: float,
        run_id: str | None = None,
        gate_id: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> LedgerEvent:
        """Append one event in its own transaction."""
        if not self._head_trigger:
            with self.transaction() as tx:
                return tx.append(
                    type, at=at, run_id=run_id, gate_id=gate_id, actor=actor, data=data
                )
        with self._lock:  # one autocommit INSERT; the trigger moves the recorded head with it
            try:
                event, self._head = self._insert(
                    None, type, at, run_id, gate_id, actor, data, retry=True
                )
            except BaseException:
                self._head = None
                raise
            self._commits += 1
            self._committed(self._head)
            return event

    def _read_head(self) -> tuple[int, str]:
        row = self._conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        last = row.fetchone()
        return (last[0], last[1]) if last else (0, GENESIS)

    def _insert(
        self,
        head: tuple[int, str] | None,
        type: EventType,
        at: float,
        run_id: str | None,
        gate_id: str | None,
        actor: str | None,
        data: dict[str, Any] | None,
        *,
        retry: bool,
    ) -> tuple[LedgerEvent, tuple[int, str]]:
        """Insert one event after `head` (default: the remembered head, else the stored one).

        With `retry`, a head another writer has moved on from (its next seq is taken) is read
        again and the insert repeated, until it lands at the end of the chain.
        """
        data = dict(data or {})
        data_json = event_data_json(type, data)
        at = float(at)
        if head is None:
            head = self._head or self._read_head()
        while True:
            prev_seq, prev_hash = head
            seq = prev_seq + 1
            digest = event_hash(prev_hash, seq, type, run_id, gate_id, actor, at, data_json)
            row = (seq, type, run_id, gate_id, actor, at, data_json, prev_hash, digest, time.time())
            try:
                self._conn.execute(_INSERT, row)
                break
            except sqlite3.IntegrityError:
                fresh = self._read_head()
                if not retry or fresh[0] < seq:  # not a taken seq: a real constraint failure
                    raise
                head = fresh
        event = LedgerEvent.stored(seq, type, run_id, gate_id, actor, at, data, prev_hash, digest)
        return event, (seq, digest)

    def _select(
        self,
        *,
        run_id: str | None,
        gate_id: str | None,
        types: Sequence[EventType] | None,
        after_seq: int,
    ) -> list[LedgerEvent]:
        where = ["seq > ?"]
        params: list[Any] = [after_seq]
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if gate_id is not None:
            where.append("gate_id = ?")
            params.append(gate_id)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        # rows were validated when they were appended and are covered by the hash chain
        # (`verify`), so reading them back skips validation
        return [LedgerEvent.from_row(r) for r in rows]

    def events(
        self,
        *,
        run_id: str | None = None,
        gate_id: str | None = None,
        types: Sequence[EventType] | None = None,
        after_seq: int = 0,
    ) -> list[LedgerEvent]:
        """Events in append order, filtered by run, gate, type and sequence."""
        return self._select(run_id=run_id, gate_id=gate_id, types=types, after_seq=after_seq)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only SQL query.

        One SELECT statement runs on the writer connection, whose page cache the ledger's own
        appends keep warm (a SELECT cannot write, and a second statement is refused); anything
        else runs on a read-only connection, where SQLite refuses every write.
        """
        with self._lock:
            try:
                conn = self._conn if _SELECT.match(sql) else self._read_only()
                return [tuple(r) for r in conn.execute(sql, tuple(params)).fetchall()]
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger query failed: {exc}") from exc

    def _read_only(self) -> sqlite3.Connection:
        if self._reader is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._reader = sqlite3.connect(
                uri, uri=True, check_same_thread=False, timeout=self._timeout
            )
        return self._reader

    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def verify(self) -> ChainReport:
        """Walk the chain from the genesis hash; report the first event that does not fit,
        including a chain that ends before the head its witness names."""
        # the witness first: it is written after a commit, so it cannot name an event that a
        # read of the chain made after it misses
        witness = self.head_witness.read()
        with self._lock:
            try:
                head = self._conn.execute("SELECT value FROM meta WHERE key='head'").fetchone()
                cursor = self._conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
                return verify_chain(
                    ((r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in cursor),
                    recorded_head=head[0] if head else None,
                    witness=witness,
                )
            except sqlite3.DatabaseError as exc:  # a damaged file: a missing table, a bad page
                raise LedgerIntegrityError(
                    f"{self.path}: ledger is NOT intact: cannot read its events ({exc})"
                ) from exc

    def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, steal_from: str | None = None
    ) -> bool:
        """Take the lease on `key` if it is free, expired, ours, or held by `steal_from`
        (a holder known to be dead). The TTL is wall-clock time. Inside a `transaction()` of
        this thread it joins that transaction."""
        if self._tx_thread == threading.get_ident():
            return self._lease(key, owner, ttl_s, steal_from)
        with self.transaction():
            return self._lease(key, owner, ttl_s, steal_from)

    def _lease(self, key: str, owner: str, ttl_s: float, steal_from: str | None) -> bool:
        now = time.time()
        row = self._conn.execute("SELECT owner, expires FROM leases WHERE key=?", (key,))
        held = row.fetchone()
        if held is not None and held[0] not in (owner, steal_from) and held[1] > now:
            return False
        self._conn.execute(
            "INSERT INTO leases (key, owner, expires) VALUES (?,?,?) "
            "ON CONFLICT(key) DO UPDATE SET owner=excluded.owner, expires=excluded.expires",
            (key, owner, now + ttl_s),
        )
        return True

    def lease_holder(self, key: str) -> str | None:
        """Who holds the (unexpired) lease on `key`, if anyone."""
        with self._lock:
            row = self._conn.execute(
                "SELECT owner FROM leases WHERE key=? AND expires > ?", (key, time.time())
            ).fetchone()
        return None if row is None else str(row[0])

    def release_lease(self, key: str, owner: str) -> None:
        with self.transaction():
            self._conn.execute("DELETE FROM leases WHERE key=? AND owner=?", (key, owner))

    def _state(self) -> tuple[int, int]:
        """(commits made here, data_version): the latter moves when another connection (or
        process) commits to this file."""
        with self._lock:
            return self._commits, int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def sync(self) -> None:
        """In ``full`` mode, fsync the ledger's write-ahead log unless nothing was committed
        (here or by another process) since the last fsync. Blocks; `durable` is the async
        form."""
        if self.synchronous != "full":
            return
        with self._sync_lock:  # a second caller waits, then finds its commits covered
            state = self._state()
            if state == self._synced:
                return
            with self._lock:
                synced_head, self._unwitnessed = self._unwitnessed, None
            # the WAL holds every commit not yet copied into the database file, and SQLite
            # fsyncs the WAL before it copies and the database file after; so a WAL that is
            # gone (checkpointed and removed) has nothing left to sync
            try:
                fd = os.open(self.path.with_name(self.path.name + "-wal"), os.O_RDONLY)
            except FileNotFoundError:
                fd = None
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._synced = state
            if synced_head is not None:  # committed before the fsync, so now on disk
                self.head_witness.advance(Head(*synced_head))

    async def durable(self) -> None:
        """Return once every commit so far is on disk (``full`` mode; else at once). The fsync
        runs in a background thread, so the event loop goes on with other runs meanwhile."""
        if self.synchronous != "full" or self._state() == self._synced:
            return
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(1, thread_name_prefix="coimprove-ledger-sync")
        await asyncio.get_running_loop().run_in_executor(self._syncer, self.sync)

    def close(self) -> None:
        """Close the connections; in ``full`` mode, fsync what is still unsynced first."""
        if self._closed:
            return
        if self._syncer is not None:
            self._syncer.shutdown()  # waits for a sync in flight (it takes `_lock`)
        self.sync()
        with self._lock:
            self._closed = True
            if self._reader is not None:
                self._reader.close()
            self._conn.close()
            self.head_witness.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
