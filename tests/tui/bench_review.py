"""Benchmark `coimprove review` with 5,000 pending gates (``python -m tests.tui.bench_review``).

Reports the time to first paint of the queue, the latency from an action (next item, open
detail, approve) to the screen being updated, and the process's peak memory. Targets from
issue 6: first paint <= 1 s, p95 latency <= 50 ms. Actions are invoked directly (not through
``pilot.press``, which has a floor of its own) and timed to the next completed refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coimprove import Runner, SimClock
from coimprove.ledger import SqliteLedger
from coimprove.tui import ReviewApp
from coimprove.tui.screens.detail import DetailScreen
from tests.tui.review_graph import build

START = 1_000_000.0


async def fill(db: Path, n: int) -> None:
    """One real paused run, and n-1 copies of its gate under other run ids (ledger only)."""
    async with Runner(db, clock=SimClock(START)) as runner:
        info = await runner.start(build(), run_id="r-benchtemplate")
    with SqliteLedger(db) as ledger:
        (opened,) = ledger.events(gate_id=info.open_gates[0], types=["gate.opened"])
        with ledger.transaction() as tx:
            for i in range(n - 1):
                run_id = f"r-bench{i:07d}"
                gate_id = f"{run_id}.review.1"
                data: dict[str, Any] = copy.deepcopy(opened.data)
                data["request"].update(gate_id=gate_id, run_id=run_id)
                tx.append("gate.opened", at=START + i, run_id=run_id, gate_id=gate_id, data=data)


async def _refreshed(app: ReviewApp) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    app.call_after_refresh(done.set_result, None)
    await done


async def _timed(app: ReviewApp, act: Callable[[], Any], ready: Callable[[], bool]) -> float:
    t0 = time.perf_counter()
    result = act()
    if isinstance(result, Awaitable):
        await result
    while not ready():  # noqa: ASYNC110 - polling the UI state is the measurement
        await asyncio.sleep(0)
    await _refreshed(app)
    return (time.perf_counter() - t0) * 1000


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(n: int, samples: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="coimprove-bench-"))
    db = tmp / "ledger.db"
    await fill(db, n)
    app = ReviewApp(
        db,
        reviewer="alice",
        apply=False,
        guard_s=0,
        rest_s=0,
        poll_s=0,
        stats=False,
        freeze_gc=True,
    )
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.queue.row_count:  # noqa: ASYNC110 - first rows on screen
            await asyncio.sleep(0.005)
        await _refreshed(app)
        first_paint = time.perf_counter() - t0
        while app.queue.row_count < n:  # noqa: ASYNC110 - every row loaded
            await asyncio.sleep(0.005)
        await _refreshed(app)
        all_rows = time.perf_counter() - t0
        await pilot.pause()
        nav, detail, approve = [], [], []
        for _ in range(samples):
            before = app.tracker.shown
            nav.append(
                await _timed(
                    app,
                    app.queue.action_cursor_down,
                    lambda before=before: app.tracker.shown != before,  # type: ignore[misc]
                )
            )
            detail.append(
                await _timed(
                    app, app.action_open_detail, lambda: isinstance(app.screen, DetailScreen)
                )
            )
            app.action_close_detail()
            await _refreshed(app)
            gone = app.tracker.shown
            approve.append(
                await _timed(
                    app,
                    lambda: app.action_decide("approve"),
                    lambda gone=gone: app.tracker.shown != gone,  # type: ignore[misc]
                )
            )
            await app.settled()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def summary(xs: list[float]) -> dict[str, float]:
        return {"p50_ms": statistics.median(xs), "p95_ms": _p(xs, 0.95), "max_ms": max(xs)}

    return {
        "gates": n,
        "first_paint_s": round(first_paint, 3),
        "all_rows_s": round(all_rows, 3),
        "next_item": summary(nav),
        "open_detail": summary(detail),
        "approve": summary(approve),
        "peak_rss_mb": round(rss_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gates", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    result = asyncio.run(bench(args.gates, args.samples))
    for key, value in result.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}={v:.1f}" for k, v in value.items())
        print(f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
