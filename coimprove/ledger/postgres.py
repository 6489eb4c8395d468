"""The shared ledger: events in PostgreSQL, one hash chain however many processes append.

``PostgresLedger("postgresql://user@host/db")`` (psycopg 3; ``pip install 'coimprove[postgres]'``).
The schema mirrors the SQLite ledger's: the event's canonical JSON is stored as text exactly as
it was hashed, and *stored generated columns* (``verdict``, ``canary``, ``min_review_s`` …) expose
the fields measures read, so `coimprove.metrics` runs the same SQL on both backends.

Appends are serialised by a row lock on the chain's head (``meta`` row ``head``, ``SELECT …
FOR UPDATE``) held for the whole transaction: appenders in any number of processes and
machines queue, each reads the head the previous one committed, and the chain stays one line.
Leases are a single ``INSERT … ON CONFLICT DO UPDATE … WHERE`` (atomic take-or-renew).
The head witness (`coimprove.ledger.witness`) is a file on the machine that writes, not a row:
whoever can delete events can rewrite any table in the database too. The hash covers every
stored column but `recorded` (see the SQLite schema for why); the generated columns are
``STORED`` but computed from ``data``, and PostgreSQL refuses an ``UPDATE`` of one.
`query` runs in a ``READ ONLY`` transaction, so a metric cannot write.

A lost connection (the server restarted, a network drop) is taken back with bounded, logged
reconnects (tenacity; `Reconnect`). Reads and lease calls are run again on the new connection.
A write transaction is never replayed: lost before its ``COMMIT`` was sent it was rolled back
(`LedgerConnectionError`, ``committed=False``); lost while committing, the new connection
looks its last event up by sequence number and hash, so it is reported committed exactly when
it is in the ledger. `append` (one event, its own transaction) does that check and appends
again only when the event is not there, so it is recorded once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from coimprove._log import get_logger
from coimprove.errors import LedgerConnectionError, LedgerError, NotALedgerError
from coimprove.ledger.chain import GENESIS, event_data_json, verify_chain
from coimprove.ledger.sqlite import FORMAT, SCHEMA_VERSION
from coimprove.ledger.witness import Head, HeadWitness, state_dir
from coimprove.model import EventType, LedgerEvent, event_hash
from coimprove.protocols import ChainReport

log = get_logger("coimprove.ledger")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Reconnect:
    """How `PostgresLedger` gets a lost connection back: up to `attempts` connection attempts,
    waiting `first_wait_s`, then twice as long each time up to `max_wait_s`, giving up after
    `give_up_after_s` in all (then `LedgerConnectionError`)."""

    attempts: int = 12
    first_wait_s: float = 0.2
    max_wait_s: float = 5.0
    give_up_after_s: float = 60.0


class _Lost(Exception):
    """The connection is gone (internal: reconnect and, if the call may be repeated, retry)."""


Method = Callable[Concatenate["PostgresLedger", P], T]


def _retried(what: str) -> Callable[[Method[P, T]], Method[P, T]]:
    """Run the method again on a new connection if the connection is lost while it runs (for
    calls that may be repeated: reads, lease upserts). Inside a write transaction it is not
    repeated: the transaction fails as a whole."""

    def wrap(method: Method[P, T]) -> Method[P, T]:
        @functools.wraps(method)
        def run(self: PostgresLedger, /, *args: P.args, **kwargs: P.kwargs) -> T:
            def call() -> T:
                return method(self, *args, **kwargs)

            return self._retry(what, call)

        return run

    return wrap


def _text(path: str) -> str:
    return f"(data::jsonb #>> '{{{path}}}')"


def _typed(path: str, sql_type: str) -> str:
    """A JSON number (or boolean, as 0/1) at `path`, NULL for anything else: never an error."""
    node = f"(data::jsonb #> '{{{path}}}')"
    value = _text(path)
    return (
        f"CASE jsonb_typeof({node}) WHEN 'number' THEN {value}::numeric::{sql_type} "
        f"WHEN 'boolean' THEN CASE WHEN {value}::boolean THEN 1 ELSE 0 END END"
    )


# name -> (SQL type, expression): the same fields the SQLite schema extracts with json_extract.
GENERATED: dict[str, tuple[str, str]] = {
    "verdict": ('TEXT COLLATE "C"', _text("verdict")),
    "reviewer_kind": ('TEXT COLLATE "C"', _text("reviewer_kind")),
    "proposal_kind": ('TEXT COLLATE "C"', _text("proposal_kind")),
    "policy": ('TEXT COLLATE "C"', _text("policy")),
    "outcome": ('TEXT COLLATE "C"', _text("outcome")),
    "canary": ("INTEGER", _typed("hidden,canary", "integer")),
    "truth": ('TEXT COLLATE "C"', _text("hidden,truth")),
    "has_detail": ("INTEGER", _typed("has_detail", "integer")),
    "min_review_s": ("DOUBLE PRECISION", _typed("min_review_s", "double precision")),
    "category": ('TEXT COLLATE "C"', _text("category")),
    "reason": ('TEXT COLLATE "C"', _text("reason")),
    "deadline": ("DOUBLE PRECISION", _typed("deadline", "double precision")),
    "latency_s": ("DOUBLE PRECISION", _typed("latency_s", "double precision")),
    "tokens": ("BIGINT", _typed("total_tokens", "bigint")),
}

_GENERATED_SQL = ",\n    ".join(
    f"{name} {sql_type} GENERATED ALWAYS AS ({expr}) STORED"
    for name, (sql_type, expr) in GENERATED.items()
)

# Text columns compare and sort byte-wise (COLLATE "C"), as in SQLite, so grouped and ordered
# results come out the same on both backends.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq        BIGINT PRIMARY KEY,
    type       TEXT COLLATE "C" NOT NULL,
    run_id     TEXT COLLATE "C",
    gate_id    TEXT COLLATE "C",
    actor      TEXT COLLATE "C",
    at         DOUBLE PRECISION NOT NULL,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    recorded   DOUBLE PRECISION NOT NULL,
    {_GENERATED_SQL}
);
CREATE INDEX IF NOT EXISTS events_gate ON events (gate_id, type);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, type);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE TABLE IF NOT EXISTS leases (
    key     TEXT COLLATE "C" PRIMARY KEY,
    owner   TEXT COLLATE "C" NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
"""

_COLUMNS = "seq, type, run_id, gate_id, actor, at, data, prev_hash, hash"
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"  # the server's wall clock
_SCHEMA_LOCK = 0x636F696D  # advisory lock id ("coim") taken while creating the schema

# A '?' placeholder outside quotes; quoted text is matched first and kept as is.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def to_pyformat(query: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` as ``%%``)."""
    query = query.replace("%", "%%")
    return _PLACEHOLDER.sub(lambda m: "%s" if m.group(0) == "?" else m.group(0), query)


def _plain(value: Any) -> Any:
    """Numbers as SQLite returns them: PostgreSQL's NUMERIC (SUM, AVG) as int or float."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    return value


def _row_to_event(row: Sequence[Any]) -> LedgerEvent:
    return LedgerEvent(
        seq=row[0],
        type=row[1],
        run_id=row[2],
        gate_id=row[3],
        actor=row[4],
        at=row[5],
        data=json.loads(row[6]),
        prev_hash=row[7],
        hash=row[8],
    )


def witness_path(conn: psycopg.Connection[Any]) -> Path:
    """Where this machine keeps the head witness of the database `conn` is connected to:
    ``<state dir>/ledger-heads/<digest of user@host:port/dbname>.head`` (`state_dir`)."""
    info = conn.info
    key = f"{info.user}@{info.host}:{info.port}/{info.dbname}"
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return state_dir() / "ledger-heads" / f"{name}.head"


class _Tx:
    """The writer handed out by `PostgresLedger.transaction()` (the head row is locked)."""

    def __init__(self, ledger: PostgresLedger, head: tuple[int, str]) -> None:
        self._ledger = ledger
        self._head = head
        self.appended = False
        self.types: list[str] = []
        """The types of the events appended so far (for a message if they are not recorded)."""

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
        prev_seq, prev_hash = self._head
        seq = prev_seq + 1
        data_json = event_data_json(type, data)
        at = float(at)
        digest = event_hash(prev_hash, seq, type, run_id, gate_id, actor, at, data_json)
        self._ledger._conn.execute(
            "INSERT INTO events (seq, type, run_id, gate_id, actor, at, data, prev_hash, hash, "
            "recorded) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (seq, type, run_id, gate_id, actor, at, data_json, prev_hash, digest, time.time()),
        )
        self._head, self.appended = (seq, digest), True
        self.types.append(type)
        return LedgerEvent(
            seq=seq,
            type=type,
            run_id=run_id,
            gate_id=gate_id,
            actor=actor,
            at=at,
            data=data or {},
            prev_hash=prev_hash,
            hash=digest,
        )


class PostgresLedger:
    """Append-only, hash-chained events in a PostgreSQL database (safe across processes)."""

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_s: float = 10.0,
        reconnect: Reconnect | None = None,
        head_witness: Path | None = None,
    ) -> None:
        """Connect to the ledger at `dsn` (creating its tables the first time). The first
        connection is not retried (a wrong URL fails at once); a connection lost later is
        taken back as `reconnect` says. `head_witness`: the file this machine keeps the
        chain's head in (default: `witness_path`)."""
        self.dsn = dsn
        self.reconnect = reconnect or Reconnect()
        self._connect_timeout = max(1, round(connect_timeout_s))
        self._lock = threading.RLock()
        self._tx_depth = 0
        """How deep this ledger's write transactions are nested (under `_lock`, one thread)."""
        try:
            self._raw = self._new_connection()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot connect to the Postgres ledger: {exc}") from exc
        self.head_witness = HeadWitness(head_witness or witness_path(self._conn))
        """This machine's head witness for the ledger (`coimprove.ledger.witness`)."""
        if self._init_schema():
            self.head_witness.reset(Head(0, GENESIS))  # not a witness of an earlier database

    # -- the connection -----------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The ledger's server and database, without credentials (for messages and logs)."""
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def _new_connection(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=self._connect_timeout)

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        """The connection, connected again first if it was lost (outside a transaction: a
        transaction never continues on another connection)."""
        if self._raw.closed and self._tx_depth == 0:
            try:
                self._raw = self._new_connection()
            except psycopg.OperationalError as exc:
                raise _Lost(str(exc)) from exc
            log.warning("ledger.reconnected", ledger=self.where)
        return self._raw

    def _lost(self, exc: BaseException) -> bool:
        """Whether `exc` means the connection is gone (not a refused statement)."""
        return isinstance(exc, psycopg.OperationalError) and self._raw.closed

    def _retrying(self, what: str) -> Retrying:
        policy = self.reconnect

        def logged(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "ledger.connection_lost",
                ledger=self.where,
                during=what,
                attempt=state.attempt_number,
                of=policy.attempts,
                retry_in_s=round(state.upcoming_sleep, 3),
                error=str(error),
            )

        return Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.give_up_after_s),
            wait=wait_exponential(multiplier=policy.first_wait_s, max=policy.max_wait_s),
            retry=retry_if_exception_type(_Lost),
            before_sleep=logged,
            reraise=True,
        )

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, run again (bounded) on a new connection while the connection is lost."""
        with self._lock:
            if self._tx_depth:  # part of a write transaction: that fails as a whole
                return call()
            try:
                for attempt in self._retrying(what):
                    with attempt:
                        try:
                            return call()
                        except psycopg.OperationalError as exc:
                            if self._lost(exc):
                                raise _Lost(str(exc)) from exc
                            raise
            except _Lost as exc:
                raise LedgerConnectionError(
                    f"the Postgres ledger at {self.where} cannot be reached (tried "
                    f"{self.reconnect.attempts} times over at most "
                    f"{self.reconnect.give_up_after_s:g} s to {what}): {exc}"
                ) from exc
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    @property
    def postgres_dsn(self) -> str:
        """The connection string (LangGraph checkpoints go to the same database)."""
        return self.dsn

    def _init_schema(self) -> bool:
        """Check the schema, or create it; True if it was created here."""
        conn = self._raw
        with self._lock, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            }
            if tables and "meta" not in tables and "events" in tables:
                raise NotALedgerError(
                    f"the database has an 'events' table but no coimprove metadata "
                    f"(tables {sorted(tables)[:5]})"
                )
            if "meta" in tables:
                meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("format") != FORMAT:
                    raise NotALedgerError("the database's 'meta' table is not a coimprove ledger's")
                if meta.get("schema") != SCHEMA_VERSION:
                    raise NotALedgerError(
                        f"the database has ledger schema {meta.get('schema')!r}; this coimprove "
                        f"reads schema {SCHEMA_VERSION!r}"
                    )
                return False
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(
                "INSERT INTO meta VALUES ('format', %s), ('schema', %s), ('head', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (FORMAT, SCHEMA_VERSION, GENESIS),
            )
        return True

    def _lock_head(self, conn: psycopg.Connection[Any]) -> _Tx:
        conn.execute("SELECT value FROM meta WHERE key = 'head' FOR UPDATE")
        # a separate statement: under READ COMMITTED it takes a fresh snapshot, taken after
        # the lock was granted, so it sees the events the previous holder committed
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return _Tx(self, (int(row[0]), str(row[1])) if row else (0, GENESIS))

    def _begin(self) -> tuple[AbstractContextManager[Any], _Tx]:
        """BEGIN and lock the head (nothing is written yet, so this may be repeated)."""
        conn = self._conn
        block = conn.transaction()
        block.__enter__()
        try:
            return block, self._lock_head(conn)
        except BaseException as exc:
            with suppress(psycopg.Error):
                block.__exit__(type(exc), exc, exc.__traceback__)
            raise

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """Serialised read-then-append: the head row's lock makes concurrent writers queue.

        A lost connection is taken back before the transaction begins; lost during it, the
        transaction raises `LedgerConnectionError` unless it is known to have committed
        (see the module docstring)."""
        with self._lock:
            if self._tx_depth:  # nested: a savepoint of the open transaction
                with self._raw.transaction():
                    tx = self._lock_head(self._raw)
                    yield tx
                    if tx.appended:
                        self._raw.execute(
                            "UPDATE meta SET value = %s WHERE key = 'head'", (tx._head[1],)
                        )
                return
            block, tx = self._retry("begin a write transaction", self._begin)
            conn, committing = self._raw, False
            try:
                self._tx_depth += 1
                try:
                    try:
                        yield tx
                        if tx.appended:
                            conn.execute(
                                "UPDATE meta SET value = %s WHERE key = 'head'", (tx._head[1],)
                            )
                    except BaseException as exc:
                        block.__exit__(type(exc), exc, exc.__traceback__)  # ROLLBACK
                        raise
                    committing = True
                    block.__exit__(None, None, None)  # COMMIT
                finally:
                    self._tx_depth -= 1
            except psycopg.OperationalError as exc:
                if not conn.closed:
                    raise
                if committing and self._commit_went_through(tx, exc):
                    self.head_witness.advance(Head(*tx._head))
                    return
                raise LedgerConnectionError(
                    f"{self._what(tx)} not recorded: the connection to the Postgres ledger "
                    f"at {self.where} was lost before {'they' if tx.types else 'it'} "
                    f"committed; the transaction was rolled back, nothing of it is in the "
                    f"ledger ({exc})",
                    committed=False,
                ) from exc
            if tx.appended:  # committed: the witness may name it now
                self.head_witness.advance(Head(*tx._head))

    @staticmethod
    def _what(tx: _Tx) -> str:
        if not tx.types:
            return "a transaction that appended nothing was"
        first = tx._head[0] - len(tx.types) + 1
        kinds = ", ".join(dict.fromkeys(tx.types))
        return f"events {first}-{tx._head[0]} ({kinds}) were"

    def _commit_went_through(self, tx: _Tx, exc: BaseException) -> bool:
        """After the connection was lost during COMMIT: whether the commit happened (its last
        event is in the ledger, at its sequence number, with its hash)."""
        if not tx.appended:
            raise LedgerConnectionError(
                f"the connection to the Postgres ledger at {self.where} was lost while a "
                f"transaction that appended no events (only leases or reads) committed; "
                f"whether it did cannot be told from the events ({exc})",
                committed=None,
            ) from exc
        seq, digest = tx._head

        def lookup() -> str | None:
            row = self._conn.execute("SELECT hash FROM events WHERE seq = %s", (seq,)).fetchone()
            return None if row is None else str(row[0])

        try:
            found = self._retry("check whether a commit went through", lookup)
        except LedgerConnectionError as lost:
            raise LedgerConnectionError(
                f"{self._what(tx)} maybe recorded: the connection to the Postgres ledger was "
                f"lost while they committed and could not be had back to check ({lost}); "
                f"`coimprove ledger events` shows whether event {seq} is there",
                committed=None,
            ) from exc
        log.warning(
            "ledger.commit_checked",
            ledger=self.where,
            seq=seq,
            committed=found == digest,
            error=str(exc),
        )
        return found == digest

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
        """Append one event in its own transaction: recorded once, even if the connection is
        lost meanwhile (appended again only if it is known not to be in the ledger)."""
        for attempt in range(1, self.reconnect.attempts + 1):
            try:
                with self.transaction() as tx:
                    return tx.append(
                        type, at=at, run_id=run_id, gate_id=gate_id, actor=actor, data=data
                    )
            except LedgerConnectionError as exc:
                if exc.committed is not False or attempt == self.reconnect.attempts:
                    raise
                log.warning("ledger.append_again", ledger=self.where, type=type, attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @_retried("read events")
    def _select(
        self,
        *,
        run_id: str | None,
        gate_id: str | None,
        types: Sequence[EventType] | None,
        after_seq: int,
    ) -> list[LedgerEvent]:
        where = ["seq > %s"]
        params: list[Any] = [after_seq]
        if run_id is not None:
            where.append("run_id = %s")
            params.append(run_id)
        if gate_id is not None:
            where.append("gate_id = %s")
            params.append(gate_id)
        if types:
            where.append("type = ANY(%s)")
            params.append(list(types))
        query = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [_row_to_event(r) for r in rows]

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

    @_retried("run a query")
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A SQL query (``?`` placeholders, as for SQLite) in a read-only transaction."""
        try:
            with self._lock, self._conn.transaction():
                self._conn.execute("SET TRANSACTION READ ONLY")
                rows = self._conn.execute(to_pyformat(sql), tuple(params)).fetchall()
        except psycopg.Error as exc:
            if self._lost(exc):
                raise
            raise LedgerError(f"ledger query failed: {exc}") from exc
        return [tuple(_plain(v) for v in r) for r in rows]

    @_retried("read the last sequence number")
    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0) if row else 0

    @_retried("verify the chain")
    def verify(self) -> ChainReport:
        """Walk the chain from the genesis hash; report the first event that does not fit,
        including a chain that ends before the head this machine's witness names."""
        witness = self.head_witness.read()  # before the snapshot: it never runs ahead of one
        with self._lock, self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            head = self._conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
            with self._conn.cursor(name="coimprove_verify") as cursor:
                cursor.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq")
                return verify_chain(
                    ((r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in cursor),
                    recorded_head=head[0] if head else None,
                    witness=witness,
                )

    @_retried("take a lease")
    def acquire_lease(
        self, key: str, owner: str, ttl_s: float, *, steal_from: str | None = None
    ) -> bool:
        """Take the lease on `key` if it is free, expired, ours, or held by `steal_from`
        (a holder known to be dead). The TTL runs on the database server's clock, so runners
        on machines whose clocks disagree still agree on when a lease expires."""
        with self._lock:
            row = self._conn.execute(
                f"INSERT INTO leases (key, owner, expires) VALUES (%s, %s, {_NOW} + %s) "
                "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, "
                "expires = EXCLUDED.expires WHERE leases.owner = EXCLUDED.owner "
                f"OR leases.owner = %s OR leases.expires <= {_NOW} RETURNING owner",
                (key, owner, float(ttl_s), steal_from),
            ).fetchone()
        return row is not None

    @_retried("read a lease")
    def lease_holder(self, key: str) -> str | None:
        """Who holds the (unexpired) lease on `key`, if anyone."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT owner FROM leases WHERE key = %s AND expires > {_NOW}", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    @_retried("release a lease")
    def release_lease(self, key: str, owner: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM leases WHERE key = %s AND owner = %s", (key, owner))

    async def durable(self) -> None:
        """A no-op: a commit returns once the server has it on disk (``synchronous_commit``
        on, PostgreSQL's default)."""

    def close(self) -> None:
        with self._lock:
            self._raw.close()
            self.head_witness.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
