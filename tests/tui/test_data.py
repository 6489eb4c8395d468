"""The TUI's first load (open gates by SQL, their events in chunks) agrees with a full read."""

from __future__ import annotations

from typing import Any

from coimprove import Decision, Runner
from coimprove.gates import GateRecord, load_gate
from coimprove.tui.data import GateIndex, load_detail
from tests.tui.review_graph import build


class EventsOnly:
    """A reader without ``query``: the index falls back to reading every gate event."""

    def __init__(self, runner: Runner) -> None:
        self.events = runner.ledger.events


def _shape(records: tuple[GateRecord, ...]) -> list[tuple[Any, ...]]:
    return [
        (r.gate_id, r.status, r.proposal.digest, r.request.round, len(r.decisions)) for r in records
    ]


async def _decide(runner: Runner, gate_id: str, verdict: str, note: str = "") -> None:
    digest = load_gate(runner.ledger, gate_id).proposal.digest
    decision = Decision(verdict=verdict, reviewer="alice", digest=digest, note=note)
    runner.decide(gate_id, decision)


async def test_first_load_reads_the_open_gates_only_and_matches_a_full_read(
    runner: Runner,
) -> None:
    infos = [await runner.start(build(f"wf{i}")) for i in range(5)]
    await _decide(runner, infos[1].open_gates[0], "approve")  # resolved: not in the queue
    await _decide(runner, infos[2].open_gates[0], "escalate", "needs a lead")  # reopened
    await runner.advance(infos[1].run_id)

    fast, full = GateIndex(), GateIndex()
    chunks = list(fast.refresh_chunks(runner.ledger, size=2))
    reference = full.refresh(EventsOnly(runner))
    assert len(chunks) > 1 and all(not d.changed and not d.closed for d in chunks)
    opened = tuple(r for d in chunks for r in d.opened)
    assert _shape(opened) == _shape(reference.opened)
    assert infos[1].open_gates[0] not in {r.gate_id for r in opened}
    assert full.seq <= fast.seq == runner.ledger.events()[-1].seq  # the head it read up to

    # later changes arrive incrementally, the same way on both
    await _decide(runner, infos[0].open_gates[0], "reject")
    later, later_ref = fast.refresh(runner.ledger), full.refresh(EventsOnly(runner))
    assert _shape(later.closed) == _shape(later_ref.closed)
    assert [r.gate_id for r in later.closed] == [infos[0].open_gates[0]]


async def test_first_load_of_an_empty_ledger_is_empty(runner: Runner) -> None:
    index = GateIndex()
    assert not index.refresh(runner.ledger)
    assert index.seq == 0


async def test_the_queue_holds_light_records_bound_to_the_same_digest(runner: Runner) -> None:
    info = await runner.start(build(), policy="strict")
    gate_id = info.open_gates[0]
    (queued,) = GateIndex().refresh(runner.ledger).opened
    full = load_gate(runner.ledger, gate_id)
    assert full.proposal.artifacts[0].content  # the diff, inline in the ledger
    assert all(a.content is None for a in queued.proposal.artifacts)  # not held by the queue
    assert set(queued.opened.data) == {"interrupt_id"}
    # the digest a decision binds to is the full proposal's, recomputed from the light one
    recomputed = queued.proposal.model_copy(update={"title": queued.proposal.title})
    assert queued.proposal.digest == recomputed.digest == full.proposal.digest
    # an edit recorded elsewhere: the queue follows the edited proposal and its new digest
    decision = Decision(
        verdict="edit",
        reviewer="bob",
        digest=full.proposal.digest,
        edited_payload={"lr": 0.02, "epochs": 3},
    )
    runner.decide(gate_id, decision)
    (edited,) = GateIndex().refresh(runner.ledger).opened  # quorum 2: still open
    assert edited.proposal.payload == {"lr": 0.02, "epochs": 3}
    assert edited.proposal.digest == load_gate(runner.ledger, gate_id).proposal.digest
    assert load_detail(runner.ledger, edited).record.proposal.artifacts[0].content
