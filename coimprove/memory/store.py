"""`ReviewMemory`: past review notes read from the ledger, recalled for an agent's new task.

The ledger already holds everything memory needs (``gate.decided`` with its note and edited
payload, ``gate.opened`` with the proposal), so memory is a read-only view over it: nothing is
stored twice and nothing can disagree with the record. Notes are loaded incrementally by event
sequence and their embeddings cached in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coimprove._log import get_logger
from coimprove.embeddings import Embedder, Vectors, resolve_embedder
from coimprove.memory.notes import MemoryConfig, ReviewNote
from coimprove.protocols import Ledger

log = get_logger("coimprove.memory")

_NOTES_SQL = """
SELECT d.seq, d.gate_id, d.run_id, d.actor, d.reviewer_kind, d.verdict, d.at, d.data, o.data
FROM events d JOIN events o ON o.gate_id = d.gate_id AND o.type = 'gate.opened'
WHERE d.type = 'gate.decided' AND d.seq > ? AND COALESCE(o.canary, 0) = 0
ORDER BY d.seq
"""


def _edits(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = sorted(set(before) | set(after))
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}


def note_from_rows(row: Sequence[Any]) -> ReviewNote:
    """A `ReviewNote` from one row of the notes query (decision event joined with its gate)."""
    seq, gate_id, run_id, actor, reviewer_kind, verdict, at, d_json, o_json = row
    decided, opened = json.loads(d_json), json.loads(o_json)
    decision = decided.get("decision") or {}
    request = opened.get("request") or {}
    proposal = request.get("proposal") or {}
    edits: dict[str, tuple[Any, Any]] = {}
    if verdict == "edit" and isinstance(decided.get("edited_proposal"), dict):
        edits = _edits(
            proposal.get("payload") or {}, decided["edited_proposal"].get("payload") or {}
        )
    return ReviewNote(
        id=f"{gate_id}@{seq}",
        seq=seq,
        gate_id=gate_id,
        run_id=run_id,
        graph=opened.get("graph"),
        gate=opened.get("gate"),
        agent=opened.get("agent"),
        kind=str(opened.get("proposal_kind") or proposal.get("kind") or "?"),
        title=str(proposal.get("title") or "(untitled)"),
        body=str(proposal.get("body") or ""),
        verdict=verdict,
        reviewer=actor or "?",
        reviewer_kind=reviewer_kind,
        note=str(decision.get("note") or ""),
        edits=edits,
        at=float(at),
    )


@dataclass
class ReviewMemory:
    """Past review notes from `ledger`, recalled per `config` (see `MemoryConfig`)."""

    ledger: Ledger
    config: MemoryConfig = field(default_factory=MemoryConfig)
    embedder: Embedder | None = None
    _notes: list[ReviewNote] = field(default_factory=list, init=False)
    _vectors: dict[int, Vectors] = field(default_factory=dict, init=False)
    _seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.embedder is None and self.config.match == "embedding":
            self.embedder = resolve_embedder(self.config.embedder)

    def refresh(self) -> list[ReviewNote]:
        """Read decisions recorded since the last look; return every note held."""
        for row in self.ledger.query(_NOTES_SQL, [self._seen]):
            self._seen = max(self._seen, int(row[0]))
            if row[5] in self.config.verdicts:
                self._notes.append(note_from_rows(row))
        return list(self._notes)

    def recall(
        self,
        *,
        graph: str | None,
        agent: str | None,
        kind: str | None,
        text: str = "",
        exclude_gates: Iterable[str] = (),
        k: int | None = None,
    ) -> list[ReviewNote]:
        """The notes most relevant to an agent's task, best first (at most `k`)."""
        cfg = self.config
        limit = cfg.k if k is None else k
        self.refresh()
        excluded = set(exclude_gates)
        candidates = [
            n
            for n in self._notes
            if n.gate_id not in excluded
            and (kind is None or n.kind == kind)
            and (cfg.scope == "kind" or (n.graph == graph and n.agent == agent))
        ]
        if not candidates or limit <= 0:
            return []
        if cfg.match == "exact" or not text.strip() or self.embedder is None:
            ranked = sorted(
                candidates, key=lambda n: (n.graph == graph and n.agent == agent, n.seq)
            )
            return ranked[::-1][:limit]
        scores = self._similarities(text, candidates)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], -candidates[i].seq))
        return [candidates[i] for i in order if scores[i] >= cfg.min_similarity][:limit]

    def _similarities(self, text: str, notes: list[ReviewNote]) -> list[float]:
        assert self.embedder is not None
        missing = [n for n in notes if n.seq not in self._vectors]
        if missing:
            vectors = self.embedder.embed([n.text() for n in missing])
            for note, vec in zip(missing, vectors, strict=True):
                self._vectors[note.seq] = vec
        query = self.embedder.embed([text])[0]
        matrix = np.stack([self._vectors[n.seq] for n in notes])
        return [float(x) for x in matrix @ query]


@dataclass
class Recall:
    """One agent call's access to memory: what it recalls is remembered, so the proposal can
    record which notes it was given (`Proposal.recalled`)."""

    memory: ReviewMemory
    graph: str | None
    agent: str
    kind: str | None
    exclude_gates: tuple[str, ...] = ()
    given: list[ReviewNote] = field(default_factory=list)

    def __call__(self, text: str = "", *, k: int | None = None) -> list[ReviewNote]:
        """Notes relevant to `text` (the agent's task); recorded as given to this agent."""
        notes = self.memory.recall(
            graph=self.graph,
            agent=self.agent,
            kind=self.kind,
            text=text,
            exclude_gates=self.exclude_gates,
            k=k,
        )
        known = {n.id for n in self.given}
        self.given.extend(n for n in notes if n.id not in known)
        log.debug("memory.recalled", agent=self.agent, notes=[n.id for n in notes])
        return notes

    @property
    def max_note_chars(self) -> int:
        return self.memory.config.max_note_chars
