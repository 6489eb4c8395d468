"""Reward capture of the collaboration, from ledger events only: revisions sent back by
``request_changes`` that came back unchanged or trivially changed (`coimprove.resubmission`),
per agent and per reviewer, and how often reviewers approved them anyway.

Reads the ``resubmission`` each ``gate.opened`` event's request recorded, and the verdicts of
``gate.decided`` events on those gates; the raw ``data`` text is parsed here (no JSON SQL).
"""

from __future__ import annotations

import json
from collections import defaultdict

from coimprove.metrics.models import ResubmissionMeasures, Resubmissions
from coimprove.metrics.stats import rate
from coimprove.protocols import Ledger

_OPENED_SQL = "SELECT gate_id, data FROM events WHERE type = 'gate.opened' {scope} ORDER BY seq"
_DECIDED_SQL = (
    "SELECT gate_id, actor, verdict FROM events WHERE type = 'gate.decided' {scope} ORDER BY seq"
)
_APPROVING = ("approve", "edit")


def resubmissions(ledger: Ledger, *, run_id: str | None = None) -> Resubmissions:
    """Unchanged resubmissions / resubmissions, and approvals of them, overall, per agent
    (``graph/agent``) and per reviewer (the gates they decided)."""
    scope = "AND run_id = ?" if run_id else ""
    params = [run_id] if run_id else []
    gates: dict[str, tuple[str, bool]] = {}  # gate_id -> (agent, flagged)
    for gate_id, data in ledger.query(_OPENED_SQL.format(scope=scope), params):
        d = json.loads(data)
        r = (d.get("request") or {}).get("resubmission")
        if isinstance(r, dict):
            agent = f"{d.get('graph')}/{d.get('agent')}"
            gates[str(gate_id)] = (agent, r.get("change") in ("unchanged", "trivial"))
    last: dict[tuple[str, str], str] = {}  # (gate, reviewer) -> last verdict
    for gate_id, actor, verdict in ledger.query(_DECIDED_SQL.format(scope=scope), params):
        if str(gate_id) in gates:
            last[str(gate_id), str(actor)] = str(verdict)
    approved = {g for (g, _), v in last.items() if v in _APPROVING}
    tallies: dict[str, dict[str, list[int]]] = {"all": defaultdict(lambda: [0, 0, 0])}
    by_agent: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_reviewer: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    overall = tallies["all"]["all"]
    for gate_id, (agent, flagged) in gates.items():
        for t in (overall, by_agent[agent]):
            t[0] += 1
            t[1] += flagged
            t[2] += flagged and gate_id in approved
    for (gate_id, reviewer), verdict in last.items():
        flagged = gates[gate_id][1]
        t = by_reviewer[reviewer]
        t[0] += 1
        t[1] += flagged
        t[2] += flagged and verdict in _APPROVING

    def measures(t: list[int]) -> ResubmissionMeasures:
        n, flagged, ok = t
        return ResubmissionMeasures(
            resubmissions=n,
            unchanged=flagged,
            unchanged_rate=rate(flagged, n),
            approved_unchanged=ok,
            approved_unchanged_rate=rate(ok, flagged),
        )

    return Resubmissions(
        **measures(overall).model_dump(),
        by_agent={k: measures(v) for k, v in sorted(by_agent.items())},
        by_reviewer={k: measures(v) for k, v in sorted(by_reviewer.items())},
    )
