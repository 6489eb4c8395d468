from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from coimprove import NotALedgerError, SqliteLedger


def _fill(path: Path, n: int = 5) -> SqliteLedger:
    ledger = SqliteLedger(path)
    for i in range(n):
        ledger.append("gate.viewed", at=float(i), gate_id=f"g{i}", actor="alice", data={"i": i})
    return ledger


def test_an_untouched_ledger_verifies(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db")
    report = ledger.verify()
    assert report.ok and report.events == 5


def test_an_edited_event_is_detected_and_named(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db")
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("UPDATE events SET data = '{\"i\":99}' WHERE seq = 3")
    report = ledger.verify()
    assert not report.ok and report.bad_seq == 3 and "altered" in (report.problem or "")


def test_an_edited_event_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db")
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("UPDATE events SET hash = 'f' || substr(hash, 2) WHERE seq = 2")
    report = ledger.verify()
    assert not report.ok and report.bad_seq == 2


def test_a_deleted_middle_event_is_detected(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db")
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("DELETE FROM events WHERE seq = 2")
    report = ledger.verify()
    assert not report.ok and "missing" in (report.problem or "")


def test_a_deleted_last_event_is_detected_by_the_head(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db")
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("DELETE FROM events WHERE seq = 5")
    report = ledger.verify()
    assert not report.ok and "deleted" in (report.problem or "")


def test_a_text_file_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(NotALedgerError, match="not a coimprove ledger"):
        SqliteLedger(path)


def test_another_sqlite_database_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(NotALedgerError, match="users"):
        SqliteLedger(path)


def test_a_directory_is_not_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(NotALedgerError, match="directory"):
        SqliteLedger(tmp_path)


def test_concurrent_writers_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    SqliteLedger(path).close()

    def write(w: int) -> None:
        ledger = SqliteLedger(path)
        for i in range(150):
            ledger.append("gate.viewed", at=float(i), actor=f"w{w}", data={"i": i})
        ledger.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = SqliteLedger(path).verify()
    assert report.ok and report.events == 600


def test_a_lease_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert ledger.acquire_lease("run", "a", ttl_s=60)
    assert not ledger.acquire_lease("run", "b", ttl_s=60)
    assert ledger.acquire_lease("run", "a", ttl_s=60)  # renewal
    ledger.release_lease("run", "a")
    assert ledger.acquire_lease("run", "b", ttl_s=0.0)
    assert ledger.acquire_lease("run", "c", ttl_s=60)  # b's lease had expired


def test_query_is_read_only(tmp_path: Path) -> None:
    from coimprove import LedgerError

    ledger = _fill(tmp_path / "l.db")
    with pytest.raises(LedgerError):
        ledger.query("DELETE FROM events")
    assert ledger.verify().events == 5


def test_a_lease_can_be_taken_from_a_named_dead_holder(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert ledger.acquire_lease("run", "dead", ttl_s=60)
    assert ledger.lease_holder("run") == "dead"
    assert not ledger.acquire_lease("run", "me", ttl_s=60, steal_from="someone-else")
    assert ledger.acquire_lease("run", "me", ttl_s=60, steal_from="dead")
    assert ledger.lease_holder("run") == "me"
