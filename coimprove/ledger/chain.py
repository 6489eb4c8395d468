"""Hash-chain verification, shared by every ledger backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coimprove.errors import LedgerError
from coimprove.model import canonical_json, event_hash, not_json_message
from coimprove.protocols import ChainReport

GENESIS = "0" * 64
"""The `prev_hash` of the first event."""

Row = tuple[int, str, str | None, str | None, str | None, float, str, str, str]
"""seq, type, run_id, gate_id, actor, at, data_json, prev_hash, hash."""


def event_data_json(type_: str, data: dict[str, Any] | None) -> str:
    """The canonical JSON an event's data is stored (and hashed) as; `LedgerError` naming the
    event type and the field if the data has no JSON form (NaN, an infinity, a cycle)."""
    try:
        return canonical_json(data or {})
    except ValueError as exc:
        raise LedgerError(
            not_json_message(f"a {type_} event was not recorded: its data", data or {}, exc)
        ) from None


def verify_chain(rows: Iterable[Row], *, recorded_head: str | None) -> ChainReport:
    """Check sequence continuity, each event's own hash and its link to the previous one.

    A deleted last event is caught by comparing the chain's end with the head hash the ledger
    stores beside it (`recorded_head`); anchoring that head outside the ledger
    (`coimprove ledger head`) also catches a ledger rewritten end to end.
    """
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for seq, type_, run_id, gate_id, actor, at, data_json, prev, digest in rows:
        if seq != expected_seq:
            return ChainReport(
                False, count, prev_hash, f"event {expected_seq} is missing (next is {seq})", seq
            )
        if prev != prev_hash:
            return ChainReport(
                False, count, prev_hash, f"event {seq} does not link to event {seq - 1}", seq
            )
        if event_hash(prev, seq, type_, run_id, gate_id, actor, at, data_json) != digest:
            return ChainReport(False, count, prev_hash, f"event {seq} was altered", seq)
        prev_hash, expected_seq, count = digest, seq + 1, count + 1
    if recorded_head is not None and recorded_head != prev_hash:
        return ChainReport(
            False, count, prev_hash, f"events after {count} were deleted (head does not match)"
        )
    return ChainReport(True, count, prev_hash)
