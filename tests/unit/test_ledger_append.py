"""The SQLite ledger's append path: a remembered head, the head trigger, rollbacks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coimprove import SqliteLedger


def _fill(path: Path, n: int) -> SqliteLedger:
    ledger = SqliteLedger(path)
    for i in range(n):
        ledger.append("gate.viewed", at=float(i), gate_id=f"g{i}", actor="alice", data={"i": i})
    return ledger


def test_a_writer_whose_remembered_head_went_stale_appends_at_the_end(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path / "l.db"), SqliteLedger(tmp_path / "l.db")
    first.append("gate.viewed", at=1.0, actor="a")  # first remembers head 1
    second.append("gate.viewed", at=2.0, actor="b")
    second.append("gate.viewed", at=3.0, actor="b")
    event = first.append("gate.viewed", at=4.0, actor="a")  # seq 2 is taken: re-read, retry
    with first.transaction() as tx:
        second.close()
        tx.append("gate.viewed", at=5.0, actor="a")
    assert event.seq == 4
    report = first.verify()
    assert report.ok and report.events == 5


def test_a_rolled_back_transaction_leaves_no_trace_in_the_chain(tmp_path: Path) -> None:
    ledger = _fill(tmp_path / "l.db", 2)

    def append_then_fail() -> None:
        with ledger.transaction() as tx:
            tx.append("gate.viewed", at=9.0, actor="x")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert ledger.append("gate.viewed", at=3.0, actor="alice").seq == 3
    report = ledger.verify()
    assert report.ok and report.events == 3


def test_an_older_ledger_gets_the_head_trigger_and_still_catches_a_deleted_tail(
    tmp_path: Path,
) -> None:
    _fill(tmp_path / "l.db", 2).close()
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("DROP TRIGGER events_head")
    ledger = SqliteLedger(tmp_path / "l.db")
    assert ledger.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == [
        ("events_head",)
    ]
    ledger.append("gate.viewed", at=3.0, actor="alice")
    assert ledger.verify().ok
    with sqlite3.connect(tmp_path / "l.db") as raw:
        raw.execute("DELETE FROM events WHERE seq = 3")
    report = ledger.verify()
    assert not report.ok and "deleted" in (report.problem or "")
