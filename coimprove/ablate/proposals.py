"""One row per agent proposal of a cell, read from its ledger: what it was, how it ended and
what it cost.

A *proposal* is a non-canary proposal an agent made (an escalation re-opens the same proposal
at another gate, so its gates are pooled; a revision after request_changes is a new proposal:
a new step). Per proposal:

* ``truth`` — the hidden label when it was proposed; ``shipped_truth`` — the label of what
  shipped, as the effect recorded it (``shipped_truth`` in its ``effect.finished`` update, e.g.
  after an edit repaired it), else ``truth`` when it was approved, None when it did not ship;
* ``outcome`` — how its last gate resolved (approve, edit, reject, request_changes, timeout…),
  None while open; ``effect_failed`` — an effect of its gate failed;
* ``agent_model_s`` — seconds of the agent's model calls that produced it (``model.called``
  events of its run with no gate, between the previous gate opening and its own);
* ``reviewer_model_s`` — seconds of model reviewers' calls on its gates (``model.called`` with
  its gate id); ``reviewer_s`` — reviewers' dwell on its gates (simulated seconds: the time a
  person, or a model's ``think_s``, spent on it).

The columns feed `coimprove.ablate.costs` (dead ends as cost) and `coimprove.ablate.edits`
(do edits improve outcomes).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coimprove.metrics.sql import DECISION_ROW_COLUMNS, decision_rows_query
from coimprove.protocols import Ledger

__all__ = ["ProposalColumns", "proposal_columns"]

_EVENTS_SQL = (
    "SELECT seq, type, run_id, gate_id, data FROM events WHERE type IN ('gate.opened', "
    "'gate.resolved', 'model.called', 'effect.finished', 'effect.failed') ORDER BY seq"
)


class ProposalColumns(BaseModel):
    """One entry per proposal, in the order they were proposed (columns, to keep JSON small)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: list[str] = Field(default_factory=list)
    truth: list[str | None] = Field(default_factory=list)
    shipped_truth: list[str | None] = Field(default_factory=list)
    outcome: list[str | None] = Field(default_factory=list)
    effect_failed: list[int] = Field(default_factory=list)
    agent_model_s: list[float] = Field(default_factory=list)
    reviewer_model_s: list[float] = Field(default_factory=list)
    reviewer_s: list[float] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.truth)


def _latency(data: dict[str, Any]) -> float:
    value = data.get("latency_s")
    return float(value) if isinstance(value, int | float) else 0.0


def proposal_columns(ledger: Ledger) -> ProposalColumns:
    """Read every proposal of the ledger (see the module docstring)."""
    rows: dict[str, dict[str, Any]] = {}  # proposal id -> row, in proposing order
    gate_to_proposal: dict[str, str] = {}
    pending_agent_s: dict[str, float] = {}  # run -> agent model seconds not yet attributed
    for _seq, type_, run_id, gate_id, raw in ledger.query(_EVENTS_SQL):
        data = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        if type_ == "model.called":
            if gate_id:
                pid = gate_to_proposal.get(gate_id)
                if pid is not None:
                    rows[pid]["reviewer_model_s"] += _latency(data)
            elif run_id:
                pending_agent_s[run_id] = pending_agent_s.get(run_id, 0.0) + _latency(data)
            continue
        if type_ == "gate.opened":
            hidden = data.get("hidden") or {}
            if hidden.get("canary"):
                pending_agent_s.pop(str(run_id), None)  # the canary stands in for a proposal
                continue
            request = data.get("request") or {}
            pid = str((request.get("proposal") or {}).get("id") or gate_id)
            gate_to_proposal[str(gate_id)] = pid
            row = rows.get(pid)
            if row is None:
                rows[pid] = {
                    "run": str(run_id),
                    "truth": hidden.get("truth"),
                    "shipped_truth": None,
                    "outcome": None,
                    "effect_failed": 0,
                    "agent_model_s": pending_agent_s.pop(str(run_id), 0.0),
                    "reviewer_model_s": 0.0,
                    "reviewer_s": 0.0,
                }
            continue
        pid = gate_to_proposal.get(str(gate_id))
        if pid is None:
            continue
        row = rows[pid]
        if type_ == "gate.resolved":
            row["outcome"] = data.get("outcome")
            if row["outcome"] in ("approve", "edit") and row["shipped_truth"] is None:
                row["shipped_truth"] = row["truth"]
        elif type_ == "effect.finished":
            shipped = (data.get("update") or {}).get("shipped_truth")
            if shipped is not None:
                row["shipped_truth"] = shipped
        elif type_ == "effect.failed":
            row["effect_failed"] = 1
    for values in ledger.query(*decision_rows_query()):
        decision = dict(zip(DECISION_ROW_COLUMNS, values, strict=True))
        pid = gate_to_proposal.get(str(decision["gate_id"]))
        if pid is not None:
            rows[pid]["reviewer_s"] += max(float(decision["dwell_s"] or 0.0), 0.0)
    out: dict[str, list[Any]] = {name: [] for name in ProposalColumns.model_fields}
    for row in rows.values():
        for name, column in out.items():
            value = row[name]
            column.append(round(value, 6) if isinstance(value, float) else value)
    return ProposalColumns.model_validate(out)
