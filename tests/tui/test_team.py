"""A team on one ledger: two `coimprove review` apps in two processes deciding the same
gates, quorum gates among them, on each backend. The ledger verifies afterwards, each gate
settles once, each effect runs once, and the report counts every decision once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from coimprove import Runner
from coimprove.ledger import open_ledger
from coimprove.metrics import report
from tests.tui.helpers import Db
from tests.tui.review_graph import build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SINGLE, QUORUM = 3, 3
"""Runs whose gate one approval settles (both reviewers race for it), and runs whose gate
needs both (policy ``strict``: code needs two reviewers)."""


async def _start_runs(db: Db) -> None:
    async with Runner(db) as runner:  # closed before the reviewers start: no leases held
        for _ in range(SINGLE):
            await runner.start(build("tune"))
        for _ in range(QUORUM):
            await runner.start(build("tune-strict", policy="strict"))


def test_two_review_processes_decide_one_ledger_and_each_decision_counts_once(
    db: Db, tmp_path: Path
) -> None:
    asyncio.run(_start_runs(db))
    effects = tmp_path / "effects.txt"
    env = {**os.environ, "COIMPROVE_TEST_EFFECTS": str(effects)}
    runs = str(SINGLE + QUORUM)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.tui.review_worker", str(db), who, runs],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("alice", "bob")
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    ledger = open_ledger(db)
    try:
        assert ledger.verify().ok
        decided = ledger.events(types=["gate.decided"])
        per_gate = Counter(e.gate_id for e in decided)
        assert Counter((e.gate_id, e.actor) for e in decided).most_common(1)[0][1] == 1
        resolved = Counter(e.gate_id for e in ledger.events(types=["gate.resolved"]))
        assert len(resolved) == SINGLE + QUORUM and set(resolved.values()) == {1}
        by_run = {e.run_id: e.data["policy"] for e in ledger.events(types=["run.started"])}
        gates = {e.gate_id: by_run[e.run_id] for e in ledger.events(types=["gate.opened"])}
        assert sorted(per_gate[g] for g, p in gates.items() if p == "strict") == [2] * QUORUM
        assert sorted(per_gate[g] for g, p in gates.items() if p != "strict") == [1] * SINGLE
        assert len(ledger.events(types=["run.finished"])) == SINGLE + QUORUM
        rep = report(ledger)
    finally:
        ledger.close()
    assert rep.decided == SINGLE + QUORUM and rep.decisions == len(decided)
    actors = Counter(e.actor for e in decided)
    assert {r: m.decisions for r, m in rep.by_reviewer.items()} == dict(actors)
    assert actors["alice"] >= QUORUM and actors["bob"] >= QUORUM  # both decided every quorum gate
    tried = sum(len(r["tried"]) for r in results)
    refused = sum(len(r["refused"]) for r in results)
    assert tried == len(decided) + refused  # every press recorded once, or refused and said
    lines = effects.read_text().splitlines()
    assert len(lines) == SINGLE + QUORUM and len({ln.split()[0] for ln in lines}) == len(lines)
