"""Benchmark `coimprove review` with 5,000 pending gates.

    python -m tests.bench.bench_review [--gates 5000] [--samples 40]

Reports, in one run, the time to first paint of the queue, the latency from a keypress (next
item ``down``, open detail ``d``, approve ``a``) to the screen updated, and the process's peak
memory, each next to its target from issue 6 (first paint <= 1 s, p95 <= 50 ms). A keypress is
an ``events.Key`` posted to the app (the path a terminal key takes: bindings, then the action),
not ``pilot.press``, which has a floor of its own; it is timed until the app's state shows the
result and the next refresh after it has completed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events

from coimprove import Runner, SimClock
from coimprove.ledger import SqliteLedger
from coimprove.tui import ReviewApp
from tests.tui.review_graph import build

START = 1_000_000.0
FIRST_PAINT_S = 1.0
P95_MS = 50.0


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


async def _press(app: ReviewApp, key: str, ready: Callable[[], bool]) -> float:
    """Milliseconds from posting `key` until `ready()` holds and the screen was refreshed."""
    t0 = time.perf_counter()
    app.post_message(events.Key(key, key if len(key) == 1 else None))
    while not ready():  # noqa: ASYNC110 - polling the UI state is the measurement
        await asyncio.sleep(0)
    await _refreshed(app)
    return (time.perf_counter() - t0) * 1000


def _moved_from(app: ReviewApp, gate_id: str | None) -> Callable[[], bool]:
    """Ready once another gate than `gate_id` is the one on screen."""
    return lambda: app.tracker.shown != gate_id


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(n: int, samples: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="coimprove-bench-"))
    db = tmp / "ledger.db"
    await fill(db, n)
    gc.collect()
    base_rss_mb = _rss_mb()
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
            await asyncio.sleep(0.002)
        await _refreshed(app)
        first_paint = time.perf_counter() - t0
        await app.loaded.wait()
        await app.settled()
        all_rows = time.perf_counter() - t0
        assert app.queue.row_count == n, app.queue.row_count
        await pilot.pause()
        nav: list[float] = []
        detail: list[float] = []
        approve: list[float] = []
        back: list[float] = []
        for _ in range(samples):
            # Between keys the app finishes what each key deferred past its frame (a notice,
            # the footer's new keys, the ledger re-read): a person's keys are further apart.
            nav.append(await _press(app, "down", _moved_from(app, app.tracker.shown)))
            await pilot.pause()
            detail.append(await _press(app, "d", lambda: app.detail_open))
            await pilot.pause()
            back.append(await _press(app, "escape", lambda: not app.detail_open))
            await pilot.pause()
            approve.append(await _press(app, "a", _moved_from(app, app.tracker.shown)))
            await app.settled()
            await pilot.pause()
        assert app.queue.row_count == n - samples, app.queue.row_count
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def summary(xs: list[float]) -> dict[str, float]:
        return {"p50_ms": statistics.median(xs), "p95_ms": _p(xs, 0.95), "max_ms": max(xs)}

    return {
        "gates": n,
        "samples": samples,
        "first_paint_s": first_paint,
        "all_rows_s": all_rows,
        "next_item": summary(nav),
        "open_detail": summary(detail),
        "approve": summary(approve),
        "close_detail": summary(back),
        "rss_before_app_mb": base_rss_mb,
        "peak_rss_mb": peak_rss_mb,
    }


def _rss_mb() -> float:
    """Resident memory now (Linux), or the peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(r: dict[str, Any]) -> str:
    def ok(value: float, target: float) -> str:
        return "ok" if value <= target else "MISSED"

    fp = r["first_paint_s"]
    lines = [
        f"coimprove review, {r['gates']} pending gates, {r['samples']} samples per action",
        f"  first paint of the queue  {fp:7.3f} s    target <= {FIRST_PAINT_S:.1f} s   "
        f"{ok(fp, FIRST_PAINT_S)}",
        f"  all rows loaded           {r['all_rows_s']:7.3f} s    (no target)",
    ]
    for name in ("next_item", "open_detail", "approve"):
        s = r[name]
        lines.append(
            f"  {name.replace('_', ' '):<12} p50 {s['p50_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms"
            f"  max {s['max_ms']:6.1f} ms   target p95 <= {P95_MS:.0f} ms   "
            f"{ok(s['p95_ms'], P95_MS)}"
        )
    s = r["close_detail"]
    lines.append(
        f"  {'close detail':<12} p50 {s['p50_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms"
        f"  max {s['max_ms']:6.1f} ms   (no target)"
    )
    lines.append(
        f"  memory: peak RSS {r['peak_rss_mb']:.0f} MB "
        f"(process before the app started: {r['rss_before_app_mb']:.0f} MB)   target: report it"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gates", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    print(report(asyncio.run(bench(args.gates, args.samples))))


if __name__ == "__main__":
    main()
