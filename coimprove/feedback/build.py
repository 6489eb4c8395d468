"""Reviewer feedback built from the ledger: what is knowable about a decision after the fact.

Three kinds (`FeedbackItem.kind`), each from events already in the ledger:

- ``canary``: the gate was a planted flaw, revealed when it resolved (``canary.revealed``);
  caught (reject / request changes) is right, anything else a miss — a lesson.
- ``outcome``: what became of an approval — the gate's effect finished or failed
  (``effect.finished`` / ``effect.failed``, with the ``experiment.recorded`` result when there
  is one). With ``include_truth`` (headless studies, where proposals carry a hidden label) the
  item also says whether the approved proposal was sound; approving a flawed one is a lesson.
- ``peers``: how the other reviewers of a quorum gate decided it.

`FeedbackBuilder` reads incrementally and never builds the same (reviewer, gate, kind) twice,
counting what earlier sessions already showed (``feedback.shown`` events), so a front end can
call it after every decision. `record_feedback` writes what was shown to the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from coimprove.model import FeedbackItem, LedgerEvent, Verdict
from coimprove.protocols import Ledger

_STOPPING = ("reject", "request_changes")
_VERB = {
    "approve": "approved",
    "edit": "edited and approved",
    "reject": "rejected",
    "request_changes": "sent back",
    "escalate": "escalated",
}

_TRIGGERS_SQL = """
SELECT seq, type, gate_id, run_id, data FROM events
WHERE seq > ? AND gate_id IS NOT NULL
  AND type IN ('canary.revealed', 'gate.resolved', 'effect.finished', 'effect.failed')
ORDER BY seq
"""
_DECISIONS_SQL = """
SELECT actor, verdict, reviewer_kind FROM events
WHERE gate_id = ? AND type = 'gate.decided' ORDER BY seq
"""
_GATE_SQL = """
SELECT o.truth, o.canary, o.data,
       (SELECT e.data FROM events e WHERE e.gate_id = o.gate_id
          AND e.type = 'experiment.recorded' ORDER BY e.seq DESC LIMIT 1)
FROM events o WHERE o.gate_id = ? AND o.type = 'gate.opened'
"""
_SHOWN_SQL = "SELECT actor, gate_id, data FROM events WHERE type = 'feedback.shown'"


def _title(opened: dict[str, Any]) -> str:
    proposal = (opened.get("request") or {}).get("proposal") or {}
    return str(proposal.get("title") or opened.get("gate") or "?")


def _experiment(data: dict[str, Any] | None) -> dict[str, Any]:
    if not data:
        return {}
    keep = ("status", "exit_code", "metrics", "timed_out", "oom_killed", "error")
    return {k: data[k] for k in keep if k in data}


@dataclass
class FeedbackBuilder:
    """Incremental feedback from `ledger` (see the module docstring).

    `reviewers` limits the items to those reviewers (None: everyone who decided).
    """

    ledger: Ledger
    include_truth: bool = False
    reviewers: frozenset[str] | None = None
    after_seq: int = 0
    _done: set[tuple[str, str, str]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        for actor, gate_id, data in self.ledger.query(_SHOWN_SQL):
            self._done.add((str(actor), str(gate_id), str(json.loads(data).get("kind"))))

    def new(self) -> list[FeedbackItem]:
        """Items made knowable by events since the last call, oldest first."""
        items: list[FeedbackItem] = []
        for seq, type_, gate_id, run_id, data in self.ledger.query(_TRIGGERS_SQL, [self.after_seq]):
            self.after_seq = max(self.after_seq, int(seq))
            items += self._items(int(seq), str(type_), str(gate_id), run_id, json.loads(data))
        return items

    def _wanted(self, reviewer: str, gate_id: str, kind: str) -> bool:
        if self.reviewers is not None and reviewer not in self.reviewers:
            return False
        key = (reviewer, gate_id, kind)
        if key in self._done:
            return False
        self._done.add(key)
        return True

    def _items(
        self, seq: int, type_: str, gate_id: str, run_id: str | None, data: dict[str, Any]
    ) -> list[FeedbackItem]:
        decisions: list[tuple[str, Verdict, str | None]] = [
            (str(a), v, k) for a, v, k in self.ledger.query(_DECISIONS_SQL, [gate_id])
        ]
        if not decisions:
            return []
        common = {"gate_id": gate_id, "run_id": run_id, "source_seq": seq}
        if type_ == "canary.revealed":
            return self._canary(decisions, data, common)
        if type_ == "gate.resolved":
            return self._peers(decisions, data, common)
        return self._outcome(decisions, type_, data, common)

    def _canary(
        self,
        decisions: list[tuple[str, Verdict, str | None]],
        data: dict[str, Any],
        common: dict[str, Any],
    ) -> list[FeedbackItem]:
        mutation = data.get("mutation") or "a planted flaw"
        out = []
        for reviewer, verdict, _ in decisions:
            if verdict == "escalate" or not self._wanted(reviewer, common["gate_id"], "canary"):
                continue
            caught = verdict in _STOPPING
            text = (
                f"{common['gate_id']} was a canary: a deliberately flawed proposal "
                f"({mutation}). You {_VERB[verdict]} it — "
                + (
                    "caught."
                    if caught
                    else "a miss: it should have been rejected or sent back. Next time look "
                    f"for {mutation}."
                )
            )
            out.append(
                FeedbackItem(
                    kind="canary",
                    reviewer=reviewer,
                    verdict=verdict,
                    correct=caught,
                    lesson=not caught,
                    detail={"mutation": mutation, "verdicts": data.get("verdicts") or []},
                    explanation=text,
                    **common,
                )
            )
        return out

    def _peers(
        self,
        decisions: list[tuple[str, Verdict, str | None]],
        data: dict[str, Any],
        common: dict[str, Any],
    ) -> list[FeedbackItem]:
        if len({r for r, _, _ in decisions}) < 2:
            return []
        out = []
        for reviewer, verdict, _ in decisions:
            if not self._wanted(reviewer, common["gate_id"], "peers"):
                continue
            others = {r: v for r, v, _ in decisions if r != reviewer}
            agreed = all((v in _STOPPING) == (verdict in _STOPPING) for v in others.values())
            listing = ", ".join(f"{r} {_VERB[v]}" for r, v in others.items())
            out.append(
                FeedbackItem(
                    kind="peers",
                    reviewer=reviewer,
                    verdict=verdict,
                    detail={"others": others, "outcome": data.get("outcome"), "agreed": agreed},
                    explanation=f"On {common['gate_id']} you {_VERB[verdict]} it; {listing}. "
                    f"The gate resolved {data.get('outcome')}.",
                    **common,
                )
            )
        return out

    def _outcome(
        self,
        decisions: list[tuple[str, Verdict, str | None]],
        type_: str,
        data: dict[str, Any],
        common: dict[str, Any],
    ) -> list[FeedbackItem]:
        rows = self.ledger.query(_GATE_SQL, [common["gate_id"]])
        if not rows:
            return []
        truth, canary, opened_json, experiment_json = rows[0]
        if canary:
            return []  # a canary's effect never runs; its reveal is the feedback
        opened = json.loads(opened_json)
        experiment = _experiment(json.loads(experiment_json) if experiment_json else None)
        failed = type_ == "effect.failed"
        out = []
        for reviewer, verdict, _ in decisions:
            if verdict not in ("approve", "edit"):
                continue
            if not self._wanted(reviewer, common["gate_id"], "outcome"):
                continue
            correct = None
            if self.include_truth and truth in ("sound", "flawed", "dead_end"):
                correct = truth == "sound"
            what = f"effect {data.get('effect')!r} " + (
                f"failed ({data.get('error')})" if failed else "finished"
            )
            text = f"What you {_VERB[verdict]} at {common['gate_id']} ({_title(opened)!r}) ran: "
            text += what + (f"; result {experiment}" if experiment else "") + "."
            if correct is False:
                text += f" It has since turned out {truth}: approving it was a miss."
            elif correct:
                text += " It has since turned out sound."
            out.append(
                FeedbackItem(
                    kind="outcome",
                    reviewer=reviewer,
                    verdict=verdict,
                    correct=correct,
                    lesson=correct is False,
                    detail={
                        "effect": data.get("effect"),
                        "status": "failed" if failed else "finished",
                        "experiment": experiment,
                        **({"truth": truth} if correct is not None else {}),
                    },
                    explanation=text,
                    **common,
                )
            )
        return out


def feedback_for(
    ledger: Ledger,
    reviewer: str | None = None,
    *,
    include_truth: bool = False,
    unseen: bool = True,
) -> list[FeedbackItem]:
    """Everything knowable about `reviewer`'s decisions (everyone's when None).

    With `unseen` (the default) items already shown (``feedback.shown``) are left out: what a
    review front end should show next. The TUI's training mode shows each item's
    `explanation`, which spells out every miss.
    """
    builder = FeedbackBuilder(
        ledger,
        include_truth=include_truth,
        reviewers=None if reviewer is None else frozenset({reviewer}),
    )
    if not unseen:
        builder._done.clear()
    return builder.new()


def record_feedback(
    ledger: Ledger, items: Iterable[FeedbackItem], *, at: float
) -> list[LedgerEvent]:
    """Record that each item was shown to its reviewer (``feedback.shown``), in one transaction."""
    out = []
    with ledger.transaction() as tx:
        for item in items:
            data = item.model_dump(mode="json", exclude={"reviewer", "gate_id", "run_id"})
            out.append(
                tx.append(
                    "feedback.shown",
                    at=at,
                    run_id=item.run_id,
                    gate_id=item.gate_id,
                    actor=item.reviewer,
                    data=data,
                )
            )
    return out
