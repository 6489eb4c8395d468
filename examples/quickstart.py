"""Quickstart: an agent proposes, a gate pauses, an effect acts — answered by scripted reviewers.

    python examples/quickstart.py [--runs 40] [--db PATH]

Three nodes defined with the public API: `propose` (an agent: here a deterministic fake chat
model suggests a learning rate), `review` (a gate: the run pauses until a reviewer decides),
and `record` (an effect: runs only with an approval of exactly what was shown). Runs are
answered headless on a simulated clock by two scripted reviewers — a careful one and a
rubber stamper — and the oversight report is computed from the ledger.

Some proposals are deliberately bad (a learning rate of 10 or 1000): each proposal carries a
hidden ground-truth label, so you can see who caught them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from coimprove import (
    END,
    START,
    AgentContext,
    Approved,
    GatedState,
    Proposal,
    SqliteLedger,
    Workflow,
    run_headless,
)
from coimprove.metrics import report
from coimprove.reviewers.scripted import ScriptedReviewer
from coimprove.testing import FakeChatModel

# A deterministic stand-in for a model: it cycles through these replies.
model = FakeChatModel(
    responses=[
        '{"title": "Lower the learning rate to 3e-4", "learning_rate": 0.0003}',
        '{"title": "Try a learning rate of 0.01 with warm-up", "learning_rate": 0.01}',
        '{"title": "Crank the learning rate to 10 to converge faster", "learning_rate": 10}',
        '{"title": "Use 1e-3, the Adam default", "learning_rate": 0.001}',
        '{"title": "Learning rate 1000 (typo for 1e-3?)", "learning_rate": 1000}',
    ]
)


class State(GatedState, total=False):
    accepted: list[dict[str, Any]]


workflow = Workflow("quickstart", state=State, policy="default")


@workflow.agent("propose", kind="experiment")
def propose(state: State, ctx: AgentContext) -> Proposal:
    prompt = "Propose one learning rate for the next training run as JSON."
    if ctx.feedback is not None:
        prompt += f" The reviewer said: {ctx.feedback.note}"
    reply = json.loads(str(model.invoke(prompt).content))
    lr = float(reply["learning_rate"])
    return Proposal(
        kind="experiment",
        title=reply["title"],
        body=f"Train the baseline with learning_rate={lr}.",
        payload={"learning_rate": lr},
        author="agent:propose",
        truth="sound" if 1e-5 <= lr <= 0.1 else "flawed",  # hidden from reviewers
    )


workflow.gate("review", proposal_from="propose", on_approve="record")


@workflow.effect("record", gate="review")
def record(state: State, approved: Approved) -> dict[str, Any]:
    entry = {"gate": approved.gate_id, "learning_rate": approved.proposal.payload["learning_rate"]}
    return {"accepted": [*state.get("accepted", []), entry]}


workflow.edge(START, "propose")
workflow.edge("propose", "review")
workflow.edge("record", END)


async def main(runs: int, db: Path) -> dict[str, Any]:
    # Two teams review the same stream of proposals: half the runs each.
    for profile in ("careful", "rubber_stamper"):
        reviewer = ScriptedReviewer.from_profile_name(profile, id=f"{profile}-1", seed=1)
        result = await run_headless(workflow, [reviewer], runs=runs // 2, db=db, arrival_s=600)
        hours = result.sim_seconds / 3600
        print(
            f"{profile}: {len(result.runs)} runs, {result.decisions} decisions, "
            f"{hours:.1f} simulated hours"
        )
    with SqliteLedger(db) as ledger:
        rep = report(ledger).model_dump(mode="json")
        shipped = dict(
            ledger.query(
                "SELECT d.actor, COUNT(*) FROM events d JOIN events o ON o.gate_id = d.gate_id "
                "AND o.type = 'gate.opened' WHERE d.type = 'gate.decided' "
                "AND o.truth = 'flawed' AND d.verdict IN ('approve', 'edit') GROUP BY d.actor"
            )
        )
        flawed = dict(
            ledger.query(
                "SELECT d.actor, COUNT(*) FROM events d JOIN events o ON o.gate_id = d.gate_id "
                "AND o.type = 'gate.opened' WHERE d.type = 'gate.decided' "
                "AND o.truth = 'flawed' GROUP BY d.actor"
            )
        )
    print(f"\nledger: {db}\n  (try: coimprove report --db {db})\n")
    print(f"{'reviewer':<18} decisions  approval  rubber-stamp  dwell p50  flawed approved")
    for reviewer, m in sorted(rep["by_reviewer"].items()):
        print(
            f"{reviewer:<18} {m['decisions']:>9}  {m['approval_rate']:>8.2f}  "
            f"{m['rubber_stamp_rate'] or 0:>12.2f}  {m['dwell_s']['p50']:>8.0f}s  "
            f"{shipped.get(reviewer, 0):>6} of {flawed.get(reviewer, 0)}"
        )
    print(
        f"\noverall: latency p50 {rep['latency_s']['p50']:.0f}s, "
        f"approval rate {rep['approval_rate']:.2f}, "
        f"rubber-stamp rate {rep['rubber_stamp_rate']:.2f}"
    )
    return rep


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="coimprove quickstart")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="coimprove-quickstart-")) / "ledger.db"
    asyncio.run(main(args.runs, db))
