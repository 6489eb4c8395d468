"""Ledger conformance: every test taking `ledger_backend` runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from coimprove import LedgerError, NotALedgerError, SqliteLedger
from coimprove.ledger import ledger_kind, open_ledger, sqlite_path
from coimprove.protocols import Ledger
from tests.ledgers import LedgerBackend

ROOT = Path(__file__).resolve().parents[2]


def _fill(backend: LedgerBackend, n: int = 5) -> Ledger:
    ledger = backend.open()
    for i in range(n):
        ledger.append("gate.viewed", at=float(i), gate_id=f"g{i}", actor="alice", data={"i": i})
    return ledger


# -- the hash chain -----------------------------------------------------------------------------


def test_an_untouched_ledger_verifies(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend)
    report = ledger.verify()
    assert report.ok and report.events == 5
    assert report.head == ledger.events()[-1].hash


def test_events_round_trip_exactly(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    data = {"b": [1, 2.5, None, True], "a": "é ünïcode", "nested": {"x": {"y": "z"}}}
    written = ledger.append("gate.decided", at=0.1 + 0.2, run_id="r", gate_id="r.g.1", data=data)
    (read,) = ledger.events()
    assert read == written and read.at == 0.1 + 0.2 and read.data == data
    other = ledger_backend.open()  # another connection sees the same chain
    assert other.events() == [written] and other.last_seq() == 1
    assert other.verify().ok


def test_events_filter_by_run_gate_type_and_seq(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    for i in range(6):
        ledger.append(
            "gate.viewed" if i % 2 else "gate.opened",
            at=float(i),
            run_id=f"r{i % 3}",
            gate_id=f"g{i}",
        )
    assert [e.seq for e in ledger.events(run_id="r1")] == [2, 5]
    assert [e.seq for e in ledger.events(gate_id="g3")] == [4]
    assert [e.seq for e in ledger.events(types=["gate.viewed"])] == [2, 4, 6]
    assert [e.seq for e in ledger.events(types=["gate.viewed"], after_seq=2)] == [4, 6]
    assert ledger.last_seq() == 6


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [float("-inf")]])
def test_data_json_cannot_hold_is_refused_naming_the_field_and_nothing_is_written(
    ledger_backend: LedgerBackend, bad: object
) -> None:
    ledger = _fill(ledger_backend, 2)
    with pytest.raises(LedgerError, match=r"effect\.finished event was not recorded.*'update'"):
        ledger.append("effect.finished", at=3.0, gate_id="g", data={"ok": 1, "update": bad})

    def two_in_one_transaction() -> None:
        with ledger.transaction() as tx:
            tx.append("gate.viewed", at=4.0, gate_id="g", actor="alice")
            tx.append("gate.viewed", at=5.0, gate_id="g", actor="alice", data={"x": bad})

    with pytest.raises(LedgerError, match=r"gate\.viewed event was not recorded"):
        two_in_one_transaction()
    report = ledger.verify()
    assert report.ok and report.events == 2
    assert ledger.append("gate.viewed", at=6.0, gate_id="g", actor="alice").seq == 3


def test_an_edited_event_is_detected_and_named(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend)
    ledger_backend.tamper("UPDATE events SET data = '{\"i\":99}' WHERE seq = 3")
    report = ledger.verify()
    assert not report.ok and report.bad_seq == 3 and "altered" in (report.problem or "")


def test_an_edited_event_with_recomputed_hash_breaks_the_next_link(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = _fill(ledger_backend)
    ledger_backend.tamper("UPDATE events SET hash = 'f' || substr(hash, 2) WHERE seq = 2")
    report = ledger.verify()
    assert not report.ok and report.bad_seq == 2


def test_a_deleted_middle_event_is_detected(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend)
    ledger_backend.tamper("DELETE FROM events WHERE seq = 2")
    report = ledger.verify()
    assert not report.ok and "missing" in (report.problem or "")


def test_a_deleted_last_event_is_detected_by_the_head(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend)
    ledger_backend.tamper("DELETE FROM events WHERE seq = 5")
    report = ledger.verify()
    assert not report.ok and "deleted" in (report.problem or "")


def test_concurrent_appenders_in_several_processes_keep_one_chain(
    ledger_backend: LedgerBackend,
) -> None:
    ledger_backend.open().close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ledger_writer", ledger_backend.url, f"w{w}", "100"],
            cwd=ROOT,
            env=env,
        )
        for w in range(3)
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0, 0]
    ledger = ledger_backend.open()
    report = ledger.verify()
    assert report.ok and report.events == 300
    per_writer = {
        f"w{w}": [e.data["i"] for e in ledger.events() if e.actor == f"w{w}"] for w in range(3)
    }
    assert all(seq == list(range(100)) for seq in per_writer.values())


def test_a_transaction_reads_a_stable_ledger_and_commits_together(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = ledger_backend.open()
    with ledger.transaction() as tx:
        tx.append("gate.opened", at=0.0, gate_id="g")
        tx.append("gate.viewed", at=1.0, gate_id="g")
        assert [e.type for e in tx.events(gate_id="g")] == ["gate.opened", "gate.viewed"]

    def crash() -> None:
        with ledger.transaction() as tx:
            tx.append("gate.decided", at=2.0, gate_id="g")
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        crash()
    assert [e.type for e in ledger_backend.open().events()] == ["gate.opened", "gate.viewed"]
    assert ledger.verify().ok


# -- leases -------------------------------------------------------------------------------------


def test_a_lease_is_exclusive_until_it_expires(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    assert ledger.acquire_lease("run", "a", ttl_s=60)
    assert not ledger.acquire_lease("run", "b", ttl_s=60)
    assert not ledger_backend.open().acquire_lease("run", "b", ttl_s=60)  # from elsewhere too
    assert ledger.acquire_lease("run", "a", ttl_s=60)  # renewal
    ledger.release_lease("run", "a")
    assert ledger.lease_holder("run") is None
    assert ledger.acquire_lease("run", "b", ttl_s=0.0)
    assert ledger.acquire_lease("run", "c", ttl_s=60)  # b's lease had expired


def test_a_lease_can_be_taken_from_a_named_dead_holder(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    assert ledger.acquire_lease("run", "dead", ttl_s=60)
    assert ledger.lease_holder("run") == "dead"
    assert not ledger.acquire_lease("run", "me", ttl_s=60, steal_from="someone-else")
    assert ledger.acquire_lease("run", "me", ttl_s=60, steal_from="dead")
    assert ledger.lease_holder("run") == "me"


def test_a_lease_taken_inside_a_transaction_commits_and_rolls_back_with_it(
    ledger_backend: LedgerBackend,
) -> None:
    """`Runner.start` appends ``run.started`` and takes the run's lease in one transaction."""
    ledger = ledger_backend.open()

    def start(run: str, *, crash: bool) -> None:
        with ledger.transaction() as tx:
            tx.append("run.started", at=1.0, run_id=run)
            assert ledger.acquire_lease(run, "a", ttl_s=60)
            if crash:
                raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        start("lost", crash=True)
    start("kept", crash=False)
    other = ledger_backend.open()  # another process sees both or neither
    assert other.lease_holder("lost") is None and not other.events(run_id="lost")
    assert other.lease_holder("kept") == "a" and len(other.events(run_id="kept")) == 1
    assert not other.acquire_lease("kept", "b", ttl_s=60)
    assert ledger.verify().ok


def test_releasing_someone_elses_lease_changes_nothing(ledger_backend: LedgerBackend) -> None:
    ledger = ledger_backend.open()
    assert ledger.acquire_lease("run", "a", ttl_s=60)
    ledger.release_lease("run", "b")
    assert ledger.lease_holder("run") == "a"


# -- query ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM events",
        "SELECT 1; DELETE FROM events",
        "  select 1 from events; DELETE FROM events",
        "WITH doomed AS (SELECT seq FROM events) DELETE FROM events",
        "-- a comment first\nDELETE FROM events",
    ],
)
def test_query_is_read_only(ledger_backend: LedgerBackend, sql: str) -> None:
    ledger = _fill(ledger_backend)
    with pytest.raises(LedgerError):
        ledger.query(sql)
    assert ledger.verify().events == 5
    assert ledger.query("  select count(*) from events") == [(5,)]


def test_query_takes_question_mark_parameters_and_reads_generated_columns(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = ledger_backend.open()
    ledger.append(
        "gate.opened",
        at=1.0,
        gate_id="g",
        data={
            "hidden": {"canary": True, "truth": "flawed"},
            "has_detail": False,
            "min_review_s": 12.5,
            "proposal_kind": "code",
            "deadline": 99.0,
        },
    )
    ledger.append(
        "gate.decided",
        at=2.0,
        gate_id="g",
        actor="ann",
        data={"verdict": "reject", "reviewer_kind": "human"},
    )
    ledger.append("model.called", at=3.0, data={"total_tokens": 7, "latency_s": 0.25})
    rows = ledger.query(
        "SELECT canary, truth, has_detail, min_review_s, proposal_kind, deadline "
        "FROM events WHERE type = ? AND gate_id = ?",
        ["gate.opened", "g"],
    )
    assert rows == [(1, "flawed", 0, 12.5, "code", 99.0)]
    assert ledger.query("SELECT verdict, reviewer_kind FROM events WHERE seq = ?", [2]) == [
        ("reject", "human")
    ]
    assert ledger.query(
        "SELECT SUM(tokens), SUM(latency_s), COUNT(tokens), 7 % 4 FROM events "
        "WHERE type = 'model.called'"
    ) == [(7, 0.25, 1, 3)]
    # a field of the wrong type never stops an append (PostgreSQL reads it as NULL)
    ledger.append("model.called", at=4.0, data={"total_tokens": "many", "hidden": []})
    assert ledger.verify().ok
    with pytest.raises(LedgerError):
        ledger.query("SELECT nope FROM events")


# -- opening ------------------------------------------------------------------------------------


def test_a_ledger_opens_from_a_path_or_url(tmp_path: Path) -> None:
    assert ledger_kind("runs/ledger.db") == "sqlite"
    assert ledger_kind("sqlite:///runs/ledger.db") == "sqlite"
    assert ledger_kind("postgresql://me@db.internal/coimprove") == "postgres"
    assert ledger_kind("postgres://me@db.internal/coimprove") == "postgres"
    assert sqlite_path("sqlite:///runs/l.db") == Path("runs/l.db")
    assert sqlite_path("sqlite:////abs/l.db") == Path("/abs/l.db")
    with pytest.raises(LedgerError, match="unsupported ledger URL"):
        ledger_kind("mysql://me@db/coimprove")
    # a libpq keyword string is not silently taken for an SQLite file of that name
    with pytest.raises(LedgerError, match="libpq keyword string"):
        open_ledger("user=me dbname=coimprove host=127.0.0.1 port=5432")
    assert ledger_kind("my ledger=1.db") == "sqlite"  # a path with '=' in it is still a path
    ledger = open_ledger(f"sqlite:///{tmp_path / 'u.db'}")
    assert isinstance(ledger, SqliteLedger) and ledger.path == tmp_path / "u.db"


def test_an_sqlite_text_file_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(NotALedgerError, match="not a coimprove ledger"):
        SqliteLedger(path)


def test_another_database_is_not_a_ledger(ledger_backend: LedgerBackend) -> None:
    if ledger_backend.kind == "sqlite":
        with sqlite3.connect(ledger_backend.url) as raw:
            raw.execute("CREATE TABLE users (id INTEGER)")
        with pytest.raises(NotALedgerError, match="users"):
            ledger_backend.open()
    else:
        ledger_backend.tamper("CREATE TABLE events (id INTEGER)")
        with pytest.raises(NotALedgerError, match="no coimprove metadata"):
            ledger_backend.open()


def test_a_ledger_of_another_schema_version_is_refused(ledger_backend: LedgerBackend) -> None:
    ledger_backend.open().close()
    ledger_backend.tamper("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(NotALedgerError, match="schema '99'"):
        ledger_backend.open()


def test_a_directory_is_not_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(NotALedgerError, match="directory"):
        SqliteLedger(tmp_path)


def test_an_unreachable_postgres_ledger_fails_clearly() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(LedgerError, match="cannot connect to the Postgres ledger"):
        open_ledger("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_stored_events_are_what_model_construct_builds() -> None:
    """`LedgerEvent.stored` sets pydantic's fields itself (for speed): it must stay equivalent."""
    from coimprove.model import LedgerEvent

    fields = dict(
        seq=3,
        type="gate.opened",
        run_id="r-1",
        gate_id=None,
        actor="alice",
        at=1.5,
        data={"a": [1, {"b": None}]},
        prev_hash="0" * 64,
        hash="1" * 64,
    )
    fast, slow = LedgerEvent.stored(**fields), LedgerEvent.model_construct(**fields)  # type: ignore[arg-type]
    assert fast == slow
    assert fast.model_dump() == slow.model_dump() == fields
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_copy(update={"seq": 4}).seq == 4
    assert LedgerEvent.model_validate(fast.model_dump()) == fast
    with pytest.raises(ValidationError):  # still frozen
        fast.seq = 5  # type: ignore[misc]


# -- durability ---------------------------------------------------------------------------------


async def test_durable_returns_on_every_backend(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend, 2)
    await ledger.durable()
    assert isinstance(ledger, Ledger) and ledger.last_seq() == 2
    ledger.close()


class _Fsyncs:
    """Stands in for `os.fsync`: records which file each fsync was of and on what thread, then
    really fsyncs. `hold` makes the first one wait until released (to queue others behind it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hold: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.held = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        real = os.fsync

        def fsync(fd: int) -> None:
            self.held.set()
            self.release.wait(10)
            self.calls.append((os.readlink(f"/proc/self/fd/{fd}"), threading.get_ident()))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def of(self, suffix: str) -> int:
        return sum(path.endswith(suffix) for path, _ in self.calls)


def test_a_new_sqlite_ledger_is_normal_and_never_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _Fsyncs(monkeypatch)
    with SqliteLedger(tmp_path / "l.db") as ledger:
        assert ledger.synchronous == "normal"
        ledger.append("gate.viewed", at=1.0, gate_id="g", actor="alice")
        asyncio.run(ledger.durable())
        ledger.sync()
    assert fsyncs.calls == []


def test_full_durability_is_recorded_and_every_later_opener_follows_it(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    SqliteLedger(path).close()
    with SqliteLedger(path, synchronous="full") as ledger:
        assert ledger.synchronous == "full"
        ledger.append("gate.viewed", at=1.0, gate_id="g", actor="alice")
    with SqliteLedger(path) as ledger:  # a later process, not asking, follows the file
        assert ledger.synchronous == "full"
    assert open_ledger(f"sqlite:///{path}").synchronous == "full"  # type: ignore[attr-defined]
    SqliteLedger(path, synchronous="normal").close()
    with SqliteLedger(path) as ledger:  # the setting is meta data, off the hash chain
        assert ledger.synchronous == "normal"
        assert ledger.verify().ok and ledger.verify().events == 1


async def test_full_durability_fsyncs_off_the_event_loop_once_per_new_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _Fsyncs(monkeypatch)
    path = tmp_path / "l.db"
    with SqliteLedger(path, synchronous="full") as ledger:
        ledger.append("gate.viewed", at=1.0, gate_id="g", actor="alice")
        await ledger.durable()
        assert fsyncs.of("l.db-wal") == 1
        assert all(thread != threading.get_ident() for _, thread in fsyncs.calls)
        await ledger.durable()  # nothing new: no fsync
        assert fsyncs.of("l.db-wal") == 1
        with SqliteLedger(path) as other:  # another process's commit to the same file counts
            other.append("gate.viewed", at=2.0, gate_id="g", actor="bob")
        calls = len(fsyncs.calls)  # (closing `other` fsyncs its own commit)
        await ledger.durable()
        assert len(fsyncs.calls) > calls
        with ledger.transaction() as tx:
            tx.append("gate.viewed", at=3.0, gate_id="g", actor="carol")
        calls = fsyncs.of("l.db-wal")
    assert fsyncs.of("l.db-wal") > calls and fsyncs.of("l.db") == 0  # close fsyncs the tail


async def test_concurrent_waiters_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _Fsyncs(monkeypatch, hold=True)
    with SqliteLedger(tmp_path / "l.db", synchronous="full") as ledger:

        async def record(i: int) -> None:
            ledger.append("gate.viewed", at=float(i), gate_id=f"g{i}", actor="alice")
            await ledger.durable()

        first = asyncio.create_task(record(0))
        assert await asyncio.to_thread(fsyncs.held.wait, 10)  # the first fsync is held
        rest = [asyncio.create_task(record(i)) for i in range(1, 20)]
        await asyncio.sleep(0.05)  # every other waiter queues behind it
        fsyncs.release.set()
        await asyncio.gather(first, *rest)
        # the first covered its own commit; the next covered the other 19; the rest found
        # their commits covered
        assert fsyncs.of("l.db-wal") == 2


def test_an_unknown_durability_is_refused_and_the_ledger_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    SqliteLedger(path).close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="'off' is not a ledger durability; use one of normal"):
        SqliteLedger(path, synchronous="off")  # type: ignore[arg-type]
    assert path.read_bytes() == before
    with SqliteLedger(path) as ledger:
        assert ledger.synchronous == "normal"


def test_a_corrupt_recorded_durability_names_the_meta_key(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    SqliteLedger(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO meta VALUES ('synchronous', 'sometimes')")
    with pytest.raises(NotALedgerError, match=r"durability 'sometimes'.*meta key 'synchronous'"):
        SqliteLedger(path)


def test_durability_on_a_ledger_locked_by_another_writer_fails_clearly_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    SqliteLedger(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process mid-append, past our busy timeout
    try:
        with pytest.raises(LedgerError, match=r"cannot record durability 'full'.*locked"):
            SqliteLedger(path, synchronous="full", busy_timeout_s=0.05)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with SqliteLedger(path) as ledger:
        assert ledger.synchronous == "normal"
