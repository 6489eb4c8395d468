"""The SQLite ledger's append path: a remembered head, the head trigger, rollbacks."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coimprove import SqliteLedger
from coimprove.model import event_hash


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


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            ("0" * 64, 1, "run.started", "r-1", None, None, 1000.0, '{"graph":"g"}'),
            "54db360e14d8a21f36e605501e9d9a5ed53632f5cb10993a9885a0ca87f67e4f",
        ),
        (
            (
                "ab" * 32,
                42,
                "gate.decided",
                "r-1",
                "r-1.review.1",
                "alice",
                1.5e9,
                '{"verdict":"approve","note":"é ;:-"}',
            ),
            "7ad5de8f76b6dade24b9df381f82a5513ba9995e80fd0a7d390f5c0ea16e2a33",
        ),
        (
            ("ab" * 32, 7, "model.called", None, None, "agent:x", 0.1, "{}"),
            "507a1d85abb93cb81c8cb030d385462f4f4485cf779a39aa30d623368de9454e",
        ),
    ],
)
def test_the_event_hash_encoding_never_changes(fields: tuple[Any, ...], expected: str) -> None:
    # ledgers written by earlier versions must keep verifying: these are known answers
    assert event_hash(*fields) == expected
