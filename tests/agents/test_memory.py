"""Agent memory of review: past notes are recalled from the ledger for similar new tasks, put in
the agent's prompt, and recorded on the proposal; off unless the run turns it on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coimprove import Proposal, Runner, SimClock, SqliteLedger
from coimprove.agents import FakeChatModel, IdeaAgent
from coimprove.embeddings import Vectors
from coimprove.headless import HeadlessSession
from coimprove.memory import MemoryConfig, ReviewMemory, WordLlamaEmbedder
from coimprove.protocols import LedgerWriter
from coimprove.testing import Verdicts
from tests.agents.conftest import FAST, one_agent_workflow, reply


class Book:
    """Writes gate.opened / gate.decided events the way gates and the runner do."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.w = writer

    def decided(
        self,
        gate_id: str,
        verdict: str,
        *,
        title: str,
        note: str = "",
        agent: str = "propose",
        kind: str = "experiment",
        graph: str = "g",
        canary: bool = False,
        payload: dict[str, Any] | None = None,
        edited: dict[str, Any] | None = None,
        at: float = 0.0,
    ) -> int:
        run = gate_id.split(".")[0]
        proposal = {"kind": kind, "title": title, "body": "", "payload": payload or {}}
        self.w.append(
            "gate.opened",
            at=at,
            run_id=run,
            gate_id=gate_id,
            data={
                "agent": agent,
                "graph": graph,
                "gate": "review",
                "proposal_kind": kind,
                "hidden": {"canary": canary},
                "request": {"proposal": proposal},
            },
        )
        data: dict[str, Any] = {
            "verdict": verdict,
            "reviewer_kind": "human",
            "decision": {"verdict": verdict, "note": note},
        }
        if edited is not None:
            data["edited_proposal"] = {**proposal, "payload": edited}
        return self.w.append(
            "gate.decided", at=at + 1, run_id=run, gate_id=gate_id, actor="alice", data=data
        ).seq


class Words:
    """A deterministic bag-of-words embedder (a stand-in for WordLlama in ranking tests)."""

    name = "words"
    vocab = ("learning", "rate", "baseline", "split", "test", "eval", "examples", "seed")

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = [[t.lower().count(w) for w in self.vocab] for t in texts]
        out = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.db")


def test_exact_recall_gives_same_agent_notes_newest_first(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        old = b.decided("r1.review.1", "request_changes", title="lr 10", note="too high", at=0)
        b.decided("r2.review.1", "approve", title="lr 1e-3", at=10)  # approvals: not by default
        b.decided("r3.review.1", "reject", title="canary", note="bad", canary=True, at=20)
        other = b.decided("r4.review.1", "reject", title="x", note="other agent", agent="b", at=30)
        new = b.decided("r5.review.1", "request_changes", title="lr 5", note="still high", at=40)
        b.decided("r6.review.1", "request_changes", title="idea", note="other kind", kind="idea")
    memory = ReviewMemory(ledger, MemoryConfig(match="exact", k=5))
    notes = memory.recall(graph="g", agent="propose", kind="experiment")
    assert [n.id for n in notes] == [
        f"r5.review.1@{new}",
        f"r1.review.1@{old}",
        f"r4.review.1@{other}",  # same kind, another agent: after the agent's own notes
    ]
    assert notes[0].note == "still high" and notes[0].verdict == "request_changes"
    scoped = ReviewMemory(ledger, MemoryConfig(match="exact", scope="agent"))
    assert [n.note for n in scoped.recall(graph="g", agent="propose", kind="experiment")] == [
        "still high",
        "too high",
    ]
    assert memory.recall(graph="g", agent="propose", kind="experiment", k=1)[0].seq == new
    excluded = memory.recall(
        graph="g", agent="propose", kind="experiment", exclude_gates=["r5.review.1"]
    )
    assert f"r5.review.1@{new}" not in [n.id for n in excluded]


def test_edits_are_recalled_with_what_changed(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        Book(tx).decided(
            "r1.review.1",
            "edit",
            title="lr sweep",
            payload={"lr": 10, "steps": 100},
            edited={"lr": 0.001, "steps": 100},
        )
    (note,) = ReviewMemory(ledger, MemoryConfig(match="exact")).recall(
        graph="g", agent="propose", kind="experiment"
    )
    assert note.edits == {"lr": (10, 0.001)}
    assert "changed lr: 10 -> 0.001" in note.render()


def test_memory_reads_new_decisions_incrementally(ledger: SqliteLedger) -> None:
    memory = ReviewMemory(ledger, MemoryConfig(match="exact"))
    assert memory.recall(graph="g", agent="propose", kind="experiment") == []
    with ledger.transaction() as tx:
        Book(tx).decided("r1.review.1", "reject", title="t", note="later")
    assert [n.note for n in memory.recall(graph="g", agent="propose", kind="experiment")] == [
        "later"
    ]


def test_embedding_recall_ranks_the_most_similar_task_first(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        b.decided("r1.review.1", "reject", title="learning rate 10", note="learning rate", at=0)
        split = b.decided("r2.review.1", "reject", title="tuned on test split", note="test", at=1)
        b.decided("r3.review.1", "reject", title="no baseline", note="add a baseline", at=2)
    memory = ReviewMemory(ledger, MemoryConfig(k=2), embedder=Words())
    notes = memory.recall(
        graph="g", agent="propose", kind="experiment", text="prepare the test split"
    )
    assert notes[0].seq == split
    assert len(notes) == 2


def test_wordllama_recall_prefers_the_same_topic(ledger: SqliteLedger) -> None:
    with ledger.transaction() as tx:
        b = Book(tx)
        lr = b.decided(
            "r1.review.1",
            "request_changes",
            title="Raise the learning rate of the optimiser to 10",
            note="that learning rate will diverge; stay below 0.1",
        )
        b.decided(
            "r2.review.1",
            "request_changes",
            title="Report accuracy on 12 evaluation examples",
            note="twelve examples cannot separate the methods; use at least a hundred",
        )
    memory = ReviewMemory(ledger, MemoryConfig(k=1), embedder=WordLlamaEmbedder())
    (note,) = memory.recall(
        graph="g",
        agent="propose",
        kind="experiment",
        text="Tune the optimiser learning rate for fine-tuning",
    )
    assert note.seq == lr


def test_memory_config_is_validated() -> None:
    with pytest.raises(ValueError, match="k"):
        MemoryConfig(k=0)
    with pytest.raises(ValueError, match="scope"):
        MemoryConfig(scope="everyone")  # type: ignore[arg-type]


async def _two_runs(tmp_path: Path, memory: MemoryConfig | None) -> tuple[FakeChatModel, Path]:
    """Run 1 is sent back once with a note, then approved; run 2 starts afterwards."""
    model = FakeChatModel(responses=[reply("idea")])
    wf = one_agent_workflow("wf-memory", IdeaAgent(model, retry=FAST))
    db = tmp_path / "ledger.db"
    reviewer = Verdicts(["request_changes", "approve"], note="cite the baseline you compare to")
    async with Runner(db, clock=SimClock(), memory=memory) as runner:
        session = HeadlessSession(runner, [reviewer])
        await runner.start(wf, {"topic": "dead ends"})
        await session.run()
        await runner.start(wf, {"topic": "dead ends"})
        await session.run()
    return model, db


async def test_the_agent_prompt_carries_recalled_notes_and_the_proposal_records_them(
    tmp_path: Path,
) -> None:
    model, db = await _two_runs(tmp_path, MemoryConfig(match="exact"))
    prompts = [str(call[1].content) for call in model.calls]
    assert len(prompts) == 3  # run 1: first pass and revision; run 2: first pass
    assert "Notes from past reviews" not in prompts[0]  # nothing decided yet
    assert "Notes from past reviews" not in prompts[1]  # its own note comes as feedback
    assert "Notes from past reviews" in prompts[2]
    assert "cite the baseline you compare to" in prompts[2]
    with SqliteLedger(db) as ledger:
        opened = ledger.events(types=["gate.opened"])
        started = ledger.events(types=["run.started"])
        decided = ledger.events(types=["gate.decided"])
    recalled = [Proposal.model_validate(o.data["request"]["proposal"]).recalled for o in opened]
    first_decision = decided[0]
    assert recalled == [(), (), (f"{first_decision.gate_id}@{first_decision.seq}",)]
    assert started[0].data["memory"]["match"] == "exact"
    # provenance is outside the digest: the same content with or without it binds the same
    p = Proposal.model_validate(opened[2].data["request"]["proposal"])
    assert p.digest == p.model_copy(update={"recalled": ()}).digest


async def test_memory_is_off_unless_the_run_turns_it_on(tmp_path: Path) -> None:
    model, db = await _two_runs(tmp_path, None)
    assert all("Notes from past reviews" not in str(c[1].content) for c in model.calls)
    with SqliteLedger(db) as ledger:
        assert all(e.data["memory"] is None for e in ledger.events(types=["run.started"]))
        assert all(
            not e.data["request"]["proposal"].get("recalled")
            for e in ledger.events(types=["gate.opened"])
        )


async def test_a_plain_agent_function_can_recall(tmp_path: Path) -> None:
    from coimprove import END, START, Approved, Workflow

    seen: list[list[str]] = []
    wf = Workflow("wf-plain")

    @wf.agent("propose", kind="idea")
    def propose(state: dict[str, Any], ctx: Any) -> Proposal:
        seen.append([n.note for n in ctx.recall("anything")])
        return Proposal(kind="idea", title="t", author="agent:propose")

    wf.gate("review", proposal_from="propose", on_approve="apply")

    def apply(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        return {}

    wf.effect("apply", apply, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    reviewer = Verdicts(["reject", "approve"], note="no")
    async with Runner(
        tmp_path / "l.db", clock=SimClock(), memory=MemoryConfig(match="exact")
    ) as runner:
        session = HeadlessSession(runner, [reviewer])
        await runner.start(wf)
        await session.run()
        await runner.start(wf, memory=MemoryConfig(enabled=False))  # per run: off
        await session.run()
        await runner.start(wf)
        await session.run()
    assert seen == [[], [], ["no"]]
    with SqliteLedger(tmp_path / "l.db") as ledger:
        memory = [e.data["memory"] for e in ledger.events(types=["run.started"])]
    assert [m["enabled"] for m in memory] == [True, False, True]
    assert json.dumps(memory)  # recorded as plain JSON


async def test_a_resumed_run_keeps_the_memory_setting_it_started_with(tmp_path: Path) -> None:
    from coimprove import Decision

    model = FakeChatModel(responses=[reply("idea")])
    wf = one_agent_workflow("wf-resume", IdeaAgent(model, retry=FAST))
    db = tmp_path / "l.db"
    async with Runner(db, clock=SimClock(), memory=MemoryConfig(match="exact")) as runner:
        session = HeadlessSession(runner, [Verdicts(["reject"], note="a past note")])
        await runner.start(wf, {"topic": "t"})
        await session.run()
        info = await runner.start(wf, {"topic": "t"})  # pauses at its gate
    (gate_id,) = info.open_gates
    async with Runner(db, clock=SimClock()) as other:  # another process, memory off by default
        other.register(wf)
        digest = other.gate(gate_id).proposal.digest
        other.decide(
            gate_id,
            Decision(verdict="request_changes", reviewer="bob", digest=digest, note="again"),
        )
        await other.advance()
    revision_prompt = str(model.calls[-1][1].content)
    assert "Reviewer's note: again" in revision_prompt
    assert "a past note" in revision_prompt  # recalled: the run's own setting was used
