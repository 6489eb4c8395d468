"""The head witness: truncation with a rewritten head is caught without an anchor (issue 30).

Tests taking `ledger_backend` run against SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coimprove import SqliteLedger
from coimprove.ledger.chain import UNPROVEN_RECORDED, UNPROVEN_REWRITE
from coimprove.ledger.witness import Head, HeadWitness, NoWitness
from coimprove.metrics import report
from coimprove.protocols import Ledger
from tests.ledgers import LedgerBackend


def _fill(backend: LedgerBackend, n: int = 5) -> Ledger:
    ledger = backend.open()
    for i in range(n):
        ledger.append("gate.viewed", at=float(i), gate_id=f"g{i}", actor="alice", data={"i": i})
    return ledger


def _witness(ledger: Ledger) -> HeadWitness:
    witness: Any = getattr(ledger, "head_witness")  # noqa: B009 (not part of the protocol)
    assert isinstance(witness, HeadWitness)
    return witness


def _truncate_and_rewrite_head(backend: LedgerBackend, keep: int) -> None:
    backend.tamper(f"DELETE FROM events WHERE seq > {keep}")
    backend.tamper(
        f"UPDATE meta SET value = (SELECT hash FROM events WHERE seq = {keep}) WHERE key = 'head'"
    )


def test_deleted_last_events_with_a_rewritten_head_are_caught_by_the_witness(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = _fill(ledger_backend)
    _truncate_and_rewrite_head(ledger_backend, keep=3)
    report_ = ledger_backend.open().verify()
    assert not report_.ok and report_.events == 3 and report_.bad_seq == 4
    assert "events 4 to 5 were deleted from the end" in (report_.problem or "")
    assert report_.witness == 5
    ledger.close()


def test_an_intact_ledger_names_its_witness_and_what_it_cannot_prove(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = _fill(ledger_backend)
    got = ledger.verify()
    assert got.ok and got.witness == 5
    assert got.unproven == (UNPROVEN_REWRITE, UNPROVEN_RECORDED)


def test_an_old_ledger_without_a_witness_verifies_and_says_what_it_cannot_tell(
    ledger_backend: LedgerBackend,
) -> None:
    ledger = _fill(ledger_backend)
    witness = _witness(ledger)
    ledger.close()
    witness.path.unlink()
    reopened = ledger_backend.open()
    got = reopened.verify()
    assert got.ok and got.events == 5 and got.witness is None
    (missing,) = [u for u in got.unproven if "no head witness" in u]
    assert str(witness.path) in missing and "deleted from the end" in missing
    # the next append starts a witness again, from the head it commits
    reopened.append("gate.viewed", at=9.0, actor="alice")
    assert reopened.verify().witness == 6


def test_a_lagging_witness_is_tolerated_and_said(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend, 3)
    witness = _witness(ledger)
    lagging = witness.path.read_bytes()  # names event 3
    for i in range(2):
        ledger.append("gate.viewed", at=10.0 + i, actor="bob")
    witness.path.write_bytes(lagging)  # as if the writer of 4 and 5 died before its witness
    got = ledger_backend.open().verify()
    assert got.ok and got.events == 5 and got.witness == 3
    assert any("no events after event 3 were deleted" in u for u in got.unproven)


def test_a_chain_holding_another_event_where_the_witness_points_is_caught(
    ledger_backend: LedgerBackend, tmp_path: Path
) -> None:
    ledger = _fill(ledger_backend)
    other = SqliteLedger(tmp_path / "other.db")
    for i in range(5):
        other.append("gate.viewed", at=float(i), actor="mallory")
    _witness(ledger).path.write_bytes(other.head_witness.path.read_bytes())
    got = ledger_backend.open().verify()
    assert (
        not got.ok
        and got.bad_seq == 5
        and "not the event the head witness names" in (got.problem or "")
    )


def test_a_torn_witness_is_reported_not_trusted(ledger_backend: LedgerBackend) -> None:
    ledger = _fill(ledger_backend)
    path = _witness(ledger).path
    path.write_bytes(path.read_bytes()[:40])  # a write cut short
    got = ledger_backend.open().verify()
    assert got.ok and got.witness is None
    assert any("not a valid record" in u for u in got.unproven)


def test_a_tampered_recorded_value_changes_no_measure_and_is_named_unproven(
    ledger_backend: LedgerBackend,
) -> None:
    """`recorded` is outside the hash (documented): verify cannot catch an edit of it, so it
    must be what nothing reads, and verify must say so."""
    ledger = ledger_backend.open()
    ledger.append("run.started", at=0.0, run_id="r", data={"graph": "g", "policy": "p"})
    opened = {"proposal_kind": "code", "policy": "p", "has_detail": True, "min_review_s": 3.0}
    ledger.append("gate.opened", at=1.0, run_id="r", gate_id="r.g", data=opened)
    ledger.append("gate.viewed", at=2.0, run_id="r", gate_id="r.g", actor="alice")
    ledger.append("gate.decided", at=9.0, run_id="r", gate_id="r.g", actor="alice",
                  data={"verdict": "approve", "reviewer_kind": "human"})  # fmt: skip
    before, events = report(ledger).model_dump(), ledger.events()
    ledger_backend.tamper("UPDATE events SET recorded = recorded - 86400 * 365")
    after = ledger_backend.open()
    assert report(after).model_dump() == before and after.events() == events
    got = after.verify()
    assert got.ok and UNPROVEN_RECORDED in got.unproven


def test_a_new_ledger_where_an_old_witness_was_left_starts_the_witness_over(
    tmp_path: Path,
) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    for i in range(5):
        ledger.append("gate.viewed", at=float(i), actor="a")
    ledger.close()
    for name in ("l.db", "l.db-wal", "l.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    fresh = SqliteLedger(tmp_path / "l.db")
    fresh.append("gate.viewed", at=1.0, actor="b")
    got = fresh.verify()
    assert got.ok and got.witness == 1


def test_the_witness_only_moves_forward_across_writers(tmp_path: Path) -> None:
    path = tmp_path / "w.head"
    first, second = HeadWitness(path), HeadWitness(path)
    first.advance(Head(5, "a" * 64))
    second.advance(Head(3, "b" * 64))  # a slower writer's older head
    assert HeadWitness(path).read() == Head(5, "a" * 64)
    second.advance(Head(6, "c" * 64))
    assert HeadWitness(path).read() == Head(6, "c" * 64)
    assert isinstance(HeadWitness(tmp_path / "none.head").read(), NoWitness)


def test_in_full_mode_the_witness_moves_only_once_the_commit_is_fsynced(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db", synchronous="full")
    ledger.append("gate.viewed", at=1.0, actor="a")
    assert ledger.head_witness.read() == Head(0, "0" * 64)  # the commit is not on disk yet
    ledger.sync()
    assert ledger.head_witness.read() == Head(1, ledger.events()[-1].hash)
