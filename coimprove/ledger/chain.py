"""Hash-chain verification, shared by every ledger backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coimprove.errors import LedgerError
from coimprove.ledger.witness import Head, NoWitness
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


UNPROVEN_REWRITE = (
    "that the ledger was not rewritten end to end (every hash recomputed, its stored head and "
    "head witness too): only a head recorded elsewhere proves that (`coimprove ledger head` "
    "now, `coimprove ledger verify --anchor HASH` later)"
)
UNPROVEN_RECORDED = (
    "the `recorded` column (the wall-clock time each row was written): storage metadata kept "
    "outside the hash, so a chain replayed or migrated to another store keeps its hashes; no "
    "measure or decision reads it (event time is `at`, which is hashed)"
)


def verify_chain(
    rows: Iterable[Row],
    *,
    recorded_head: str | None,
    witness: Head | NoWitness | None = None,
) -> ChainReport:
    """Check sequence continuity, each event's own hash and its link to the previous one.

    A deleted last event is caught by comparing the chain's end with the head hash the ledger
    stores beside it (`recorded_head`); events deleted *and* that head rewritten, by the head
    `witness` kept outside the tables (`coimprove.ledger.witness`): the event it names must
    still be on the chain with its hash. Anchoring a head outside the ledger
    (`coimprove ledger head`) also catches a ledger rewritten end to end. The report lists
    what this check could not prove (`ChainReport.unproven`).
    """
    named = witness if isinstance(witness, Head) else None
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
        if named is not None and seq == named.seq and digest != named.hash:
            return ChainReport(
                False,
                count,
                prev_hash,
                f"event {seq} is not the event the head witness names (hash {named.hash[:16]}…): "
                f"the chain was rewritten from event {seq} or earlier (or the ledger was "
                "replaced by another one; then remove its head witness)",
                seq,
                witness=named.seq,
            )
        prev_hash, expected_seq, count = digest, seq + 1, count + 1
    if recorded_head is not None and recorded_head != prev_hash:
        return ChainReport(
            False, count, prev_hash, f"events after {count} were deleted (head does not match)"
        )
    if named is not None and named.seq > count:
        return ChainReport(
            False,
            count,
            prev_hash,
            f"events {count + 1} to {named.seq} were deleted from the end: the head witness names "
            f"event {named.seq} (hash {named.hash[:16]}…), the chain ends at event {count} and "
            "its stored head was rewritten to match (or the ledger was restored from an older "
            "copy; then remove its head witness)",
            count + 1,
            witness=named.seq,
        )
    unproven = [UNPROVEN_REWRITE]
    if isinstance(witness, NoWitness):
        unproven.append(
            "that no events were deleted from the end with the stored head rewritten to match: "
            + witness.reason
        )
    elif named is not None and named.seq < count:
        unproven.append(
            f"that no events after event {named.seq} were deleted from the end with the stored "
            f"head rewritten to match: the head witness names event {named.seq} (it lags when "
            "another machine appended later, or a writer stopped between commit and witness)"
        )
    unproven.append(UNPROVEN_RECORDED)
    return ChainReport(
        True, count, prev_hash, witness=named.seq if named else None, unproven=tuple(unproven)
    )
