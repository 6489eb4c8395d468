"""Per-gate cost of coimprove vs raw LangGraph on the same graph and checkpointer.

    python -m tests.bench.bench_gates [--runs 40] [--rounds 20] [--ledger-synchronous full]

Both sides run the same shape: per run, 4 pairs of agent -> gate (interrupt) -> effect, with
`AsyncSqliteSaver` and `durability="sync"`, many runs concurrently in one event loop. Raw
LangGraph resumes each interrupt with `Command(resume={id: value})`; on the coimprove side the
reviewer asks the runner for the run's open gates (`Runner.open_gates`, what a reviewer sees),
and coimprove records the decision in its hash-chained SQLite ledger, validates it against the
policy, resumes by id under a lease, and runs the effect with started/finished records.
Rounds alternate sides and the median is reported, for wall-clock time and for the process's
CPU time (all threads), with a bootstrap 95% interval of the median ratio over the rounds
(single rounds on a shared machine spread by tens of percent; more rounds narrow it). The
interval covers the spread between the rounds of one run, not the machine's drift between
runs: two 20-round runs here, half an hour apart and with the same gate path, gave 1.15-1.31
and 1.03-1.20. The target (coimprove <= 1.2x raw) is on the per-gate cost in wall-clock time,
what a run of gates takes. The CPU ratio beside it is higher: coimprove adds about as many CPU
as wall milliseconds per gate, but raw's CPU time is the smaller base, as its wall time also
holds the event loop's waits on the checkpointer thread (its SQLite work and file syncs).
Each side's round starts with a full garbage collection, so neither pays for the other's
garbage (a full collection of this process takes 80-140 ms, about 0.6 ms per gate of a round
it lands in).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from coimprove import Decision, Proposal, Runner, SimClock
from coimprove.ledger import SqliteLedger, Synchronous
from coimprove.ledger.sqlite import SYNCHRONOUS
from tests.helpers import linear_workflow

PAIRS = 4


class RawState(TypedDict, total=False):
    proposals: dict[str, Any]
    approvals: dict[str, Any]
    done: dict[str, Any]


def _raw_graph() -> StateGraph[Any, Any, Any, Any]:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(RawState)
    prev = START
    for i in range(PAIRS):

        async def agent(state: RawState, i: int = i) -> dict[str, Any]:
            # the same proposal record coimprove keeps, so both sides checkpoint the same data
            proposal = Proposal(
                kind="idea",
                title=f"idea {i} v1",
                author=f"agent:propose{i}",
                payload={"lr": 0.1, "step": i},
            ).model_dump(mode="json")
            return {"proposals": {**state.get("proposals", {}), str(i): proposal}}

        async def gate(state: RawState, i: int = i) -> dict[str, Any]:
            decision = interrupt({"gate": i, "proposal": state["proposals"][str(i)]})
            if decision["verdict"] != "approve":
                raise RuntimeError("rejected")
            return {"approvals": {**state.get("approvals", {}), str(i): decision}}

        async def effect(state: RawState, i: int = i) -> dict[str, Any]:
            return {"done": {**state.get("done", {}), str(i): state["proposals"][str(i)]}}

        builder.add_node(f"propose{i}", agent)
        builder.add_node(f"review{i}", gate)
        builder.add_node(f"apply{i}", effect)
        builder.add_edge(prev, f"propose{i}")
        builder.add_edge(f"propose{i}", f"review{i}")
        builder.add_edge(f"review{i}", f"apply{i}")
        prev = f"apply{i}"
    builder.add_edge(prev, END)
    return builder


async def raw_round(folder: Path, runs: int) -> tuple[float, float]:
    conn = await aiosqlite.connect(folder / "raw.checkpoints.db")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    graph = _raw_graph().compile(checkpointer=saver)

    async def one(n: int) -> None:
        cfg: Any = {"configurable": {"thread_id": f"raw-{n}"}}
        result = await graph.ainvoke({}, cfg, durability="sync")
        for _ in range(PAIRS):
            (pending,) = result["__interrupt__"]
            result = await graph.ainvoke(
                Command(resume={pending.id: {"verdict": "approve", "reviewer": "alice"}}),
                cfg,
                durability="sync",
            )
        assert len(result["done"]) == PAIRS

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(n) for n in range(runs)))
    elapsed = (time.perf_counter() - start, time.process_time() - cpu)
    await conn.close()
    return elapsed


class _TimedConnection:
    """Wraps one of the ledger's SQLite connections: counts statements and commits (an INSERT
    outside a transaction commits by itself) and times them."""

    def __init__(self, conn: sqlite3.Connection, tally: dict[str, float]) -> None:
        self._conn, self._tally = conn, tally

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        commits = sql == "COMMIT" or (sql.startswith("INSERT") and not self._conn.in_transaction)
        start = time.perf_counter()
        try:
            return self._conn.execute(sql, parameters)
        finally:
            self._tally["seconds"] += time.perf_counter() - start
            self._tally["statements"] += 1
            self._tally["commits"] += commits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def coimprove_round(
    folder: Path,
    runs: int,
    tally: dict[str, float] | None = None,
    *,
    synchronous: Synchronous = "normal",
) -> tuple[float, float]:
    workflow = linear_workflow("bench", pairs=PAIRS)
    with SqliteLedger(folder / "ledger.db", synchronous=synchronous) as ledger:
        if tally is not None:  # the breakdown: time every statement on both ledger connections
            reader = ledger._read_only()  # SELECTs run on the writer; anything else here
            ledger._conn = _TimedConnection(ledger._conn, tally)  # type: ignore[assignment]
            ledger._reader = _TimedConnection(reader, tally)  # type: ignore[assignment]
        async with Runner(ledger=ledger, clock=SimClock()) as runner:

            async def one() -> str:
                info = await runner.start(workflow)
                for _ in range(PAIRS):
                    (gate,) = runner.open_gates(info.run_id)
                    runner.decide(
                        gate.gate_id,
                        Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest),
                    )
                    await runner.advance(info.run_id)
                return info.run_id

            start, cpu = time.perf_counter(), time.process_time()
            run_ids = await asyncio.gather(*(one() for _ in range(runs)))
            elapsed = (time.perf_counter() - start, time.process_time() - cpu)
            timed = dict(tally or {})  # the breakdown covers the timed cycle, not the checks
            # checked after the clock stops (raw's check only reads the result it holds): every
            # run finished, and the chain is intact
            assert {r.run_id for r in runner.runs() if r.state == "finished"} >= set(run_ids)
            assert runner.ledger.verify().ok
        if tally is not None:
            tally.update(timed)
    return elapsed


async def main(runs: int, rounds: int, synchronous: Synchronous = "normal") -> dict[str, float]:
    raw: list[tuple[float, float]] = []
    ours_round = functools.partial(coimprove_round, synchronous=synchronous)
    ours: list[tuple[float, float]] = []
    gates = runs * PAIRS
    with tempfile.TemporaryDirectory() as tmp:
        for side, fn in (("warm-raw", raw_round), ("warm-coimprove", ours_round)):
            (Path(tmp) / side).mkdir()
            await fn(Path(tmp) / side, 2)
        for r in range(rounds):  # paired rounds, alternating which side goes first
            order = [("raw", raw, raw_round), ("coimprove", ours, ours_round)]
            for side, bucket, fn in order if r % 2 == 0 else order[::-1]:
                folder = Path(tmp) / f"{side}-{r}"
                folder.mkdir()
                gc.collect()  # each side starts from the same collector state, not the other's
                wall, cpu = await fn(folder, runs)
                bucket.append((wall / gates * 1000, cpu / gates * 1000))
    out: dict[str, float] = {}
    print(
        f"gate cycle (agent -> gate -> interrupt -> decision -> resume -> effect), "
        f"{runs} concurrent runs x {PAIRS} gates, {rounds} paired rounds (medians); "
        f"ledger durability {synchronous}"
    )
    for k, what in enumerate(("wall", "cpu")):
        ratios = [o[k] / r[k] for o, r in zip(ours, raw, strict=True)]
        raw_ms = statistics.median(r[k] for r in raw)
        our_ms = statistics.median(o[k] for o in ours)
        ratio = statistics.median(ratios)
        print(f"  {what:4} raw LangGraph + AsyncSqliteSaver : {raw_ms:7.2f} ms/gate")
        print(f"  {what:4} coimprove (ledger, policy, lease): {our_ms:7.2f} ms/gate")
        low, high = median_interval(ratios)
        label = "target <= 1.20x" if what == "wall" else "extra work, all threads"
        print(
            f"  {what:4} ratio coimprove / raw            : {ratio:7.2f}x   ({label}; "
            f"95% interval of the median {low:.2f}-{high:.2f}; "
            f"per round {min(ratios):.2f}-{max(ratios):.2f})"
        )
        out.update(
            {
                f"{what}_raw_ms": raw_ms,
                f"{what}_coimprove_ms": our_ms,
                f"{what}_ratio": ratio,
                f"{what}_ratio_low": low,
                f"{what}_ratio_high": high,
            }
        )
    # Where the difference goes: one more round per side (not in the figures above), timing the
    # garbage collector on both (one process, so the same heap plus what each side keeps) and
    # every ledger statement on coimprove's. The rest of the difference is the engine's Python
    # (policy, gate requests, approval checks, decisions, its state channels in LangGraph).
    tally = {"seconds": 0.0, "statements": 0.0, "commits": 0.0}
    collecting = {"raw": 0.0, "coimprove": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for side in collecting:
            folder = Path(tmp) / side
            folder.mkdir()
            gc.collect()
            with _collector_timed(collecting, side):
                if side == "raw":
                    await raw_round(folder, runs)
                else:
                    await ours_round(folder, runs, tally)
    sql_ms = tally["seconds"] / gates * 1000
    gc_ms = {side: seconds / gates * 1000 for side, seconds in collecting.items()}
    gap_ms = out["wall_coimprove_ms"] - out["wall_raw_ms"]
    print(
        f"  of the {gap_ms:+.2f} ms/gate wall difference: ledger SQLite "
        f"{tally['statements'] / gates:.1f} statements, {tally['commits'] / gates:.2f} commits, "
        f"{sql_ms:.2f} ms; garbage collection {gc_ms['coimprove']:.2f} ms "
        f"(raw {gc_ms['raw']:.2f} ms)"
    )
    out.update(
        {
            "ledger_sql_ms": sql_ms,
            "ledger_commits": tally["commits"] / gates,
            "gc_raw_ms": gc_ms["raw"],
            "gc_coimprove_ms": gc_ms["coimprove"],
        }
    )
    return out


def median_interval(values: list[float], *, resamples: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of `values` (seeded: the same rounds give the
    same interval). On a shared machine single rounds spread widely; this says how far the
    median of this many rounds can be trusted to sit on one side of the target."""
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


@contextlib.contextmanager
def _collector_timed(totals: dict[str, float], side: str) -> Iterator[None]:
    """Adds the time the garbage collector runs inside the block to ``totals[side]``."""
    started: list[float] = []

    def on_collect(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            totals[side] += time.perf_counter() - started.pop()

    gc.callbacks.append(on_collect)
    try:
        yield
    finally:
        gc.callbacks.remove(on_collect)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--ledger-synchronous",
        choices=SYNCHRONOUS,
        default="normal",
        help="the ledger's durability (full: every commit fsynced, as the checkpoints are)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds, args.ledger_synchronous))
