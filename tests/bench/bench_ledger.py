"""The ledger backends side by side: appends, a report over 20 000 decisions, a headless sweep.

    python -m tests.bench.bench_ledger [--appends 2000] [--runs 40]

SQLite (a WAL file) and PostgreSQL (a throwaway local cluster from Debian's binaries, or
$COIMPROVE_TEST_PG_DSN) run the same work in one process, one after the other; the table
gives seconds on each and the Postgres/SQLite ratio. Appends are one transaction each (as the
runner records events) and then one transaction for all (as a decision's events commit).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from coimprove.headless import run_headless
from coimprove.ledger import open_ledger
from coimprove.metrics import report
from coimprove.protocols import Ledger
from coimprove.reviewers.scripted import ScriptedReviewer
from tests.helpers import linear_workflow
from tests.ledgers import make_backend
from tests.postgres import throwaway_server


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _appends(ledger: Ledger, n: int) -> float:
    return _timed(
        lambda: [
            ledger.append("gate.viewed", at=float(i), actor="a", data={"i": i}) for i in range(n)
        ]
    )


def _batch(ledger: Ledger, n: int) -> float:
    def go() -> None:
        with ledger.transaction() as tx:
            for i in range(n):
                tx.append("gate.viewed", at=float(i), actor="b", data={"i": i})

    return _timed(go)


def _fill_decisions(ledger: Ledger, runs: int = 100, gates: int = 200) -> None:
    verdicts = ["approve", "approve", "edit", "reject", "request_changes", "escalate"]
    with ledger.transaction() as tx:
        t = 0.0
        for r in range(runs):
            run = f"r{r}"
            tx.append("run.started", at=t, run_id=run, data={"graph": "g", "policy": "p"})
            for k in range(gates):
                gid, n = f"{run}.g.{k}", r * gates + k
                opened = {
                    "proposal_kind": "code",
                    "policy": "p",
                    "has_detail": n % 2 == 0,
                    "min_review_s": 3.0,
                    "hidden": {"canary": n % 10 == 0, "truth": "sound"},
                }
                tx.append("gate.opened", at=t, run_id=run, gate_id=gid, data=opened)
                who = f"rev{n % 5}"
                tx.append("gate.viewed", at=t + 1, run_id=run, gate_id=gid, actor=who, data={})
                t += 1 + n % 11
                v = verdicts[n % 6]
                tx.append("gate.decided", at=t, run_id=run, gate_id=gid, actor=who,
                          data={"verdict": v, "reviewer_kind": "human"})  # fmt: skip
                tx.append("gate.resolved", at=t, run_id=run, gate_id=gid, data={"outcome": v})
            tx.append("run.finished", at=t + 1, run_id=run, data={})


async def _sweep(db: str, runs: int) -> float:
    start = time.perf_counter()
    await run_headless(
        linear_workflow("bench", policy="canary", pairs=2),
        [ScriptedReviewer("careful", id="c-1", seed=1)],
        runs=runs,
        db=db,
        seed=1,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    with throwaway_server() as server, tempfile.TemporaryDirectory() as tmp:
        dbs: dict[str, Callable[[str], str]] = {
            "sqlite": lambda name: str(Path(tmp) / f"{name}.db"),
            "postgres": lambda name: make_backend("postgres", server.create_database()).url,
        }
        for kind, make in dbs.items():
            ledger = open_ledger(make("appends"))
            rows.setdefault(f"{args.appends} appends, one transaction each", {})[kind] = _appends(
                ledger, args.appends
            )
            rows.setdefault(f"{args.appends} appends in one transaction", {})[kind] = _batch(
                ledger, args.appends
            )
            rows.setdefault("verify the chain (2x appends)", {})[kind] = _timed(ledger.verify)
            ledger.close()
            ledger = open_ledger(make("report"))
            _fill_decisions(ledger)
            rows.setdefault("report() over 20 000 decisions", {})[kind] = _timed(
                lambda: report(ledger)  # noqa: B023
            )
            ledger.close()
            rows.setdefault(f"headless sweep, {args.runs} runs x 2 gates", {})[kind] = asyncio.run(
                _sweep(make("sweep"), args.runs)
            )
    print(f"{'':44} {'sqlite s':>10} {'postgres s':>11} {'pg/sqlite':>10}")
    for name, got in rows.items():
        ratio = got["postgres"] / got["sqlite"]
        print(f"{name:44} {got['sqlite']:10.3f} {got['postgres']:11.3f} {ratio:10.2f}")


if __name__ == "__main__":
    main()
