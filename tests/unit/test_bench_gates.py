"""The gate benchmark itself: both sides complete the same cycle, and the ledger breakdown counts
what the engine really writes (so the figures the README points to cannot silently rot)."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.bench import bench_gates


async def test_both_sides_finish_every_run_and_the_breakdown_sees_the_ledgers_commits() -> None:
    out = await bench_gates.main(runs=2, rounds=1)
    assert out["wall_raw_ms"] > 0 and out["wall_coimprove_ms"] > 0
    assert out["cpu_ratio"] > 0
    assert out["wall_ratio_low"] <= out["wall_ratio"] <= out["wall_ratio_high"]
    # per gate: the decision, effect.started, effect.finished and the step record commit; each
    # run's run.started, lease and first step record add a share of one each
    assert 4 <= out["ledger_commits"] < 6
    assert out["ledger_sql_ms"] > 0


async def test_the_timed_connection_counts_an_insert_outside_a_transaction_as_a_commit(
    tmp_path: Path,
) -> None:
    tally = {"seconds": 0.0, "statements": 0.0, "commits": 0.0}
    await bench_gates.coimprove_round(tmp_path, 1, tally)
    assert tally["statements"] > tally["commits"] >= 4 * bench_gates.PAIRS


async def test_a_full_durability_round_finishes_every_run(tmp_path: Path) -> None:
    wall, cpu = await bench_gates.coimprove_round(tmp_path, 2, synchronous="full")
    assert wall > 0 and cpu > 0


def test_the_collector_timer_adds_collections_inside_its_block_only() -> None:
    totals = {"side": 0.0}
    with bench_gates._collector_timed(totals, "side"):
        gc.collect()
    inside = totals["side"]
    gc.collect()
    assert inside > 0 and totals["side"] == inside


def test_the_median_interval_holds_the_median_and_narrows_as_rounds_agree() -> None:
    spread = [0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.6]
    low, high = bench_gates.median_interval(spread)
    assert low <= 1.2 <= high and (low, high) == bench_gates.median_interval(spread)
    agreeing = [1.18, 1.19, 1.2, 1.2, 1.21, 1.22, 1.2]
    a_low, a_high = bench_gates.median_interval(agreeing)
    assert a_high - a_low < high - low
    assert bench_gates.median_interval([1.1] * 5) == (1.1, 1.1)
