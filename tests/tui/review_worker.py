"""One reviewer's `coimprove review` app in a process of its own, driven by the pilot: it
approves every gate it may decide until every run on the ledger has finished.

``python -m tests.tui.review_worker <ledger> <reviewer> <runs>``; prints one JSON line (what
it decided and what it was refused), exit status 1 if the runs did not finish in time.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from coimprove.tui import ReviewApp
from tests.tui.helpers import refresh, settle
from tests.tui.review_graph import build

ROUNDS = 2000
"""How many looks at the queue before giving up (not a timing assumption: each look waits
for the app to settle)."""


def _finished(app: ReviewApp) -> int:
    assert app._reader is not None
    return int(app._reader.query("SELECT COUNT(*) FROM events WHERE type = 'run.finished'")[0][0])


async def review(db: str, reviewer: str, runs: int) -> dict[str, Any]:
    app = ReviewApp(
        db,
        reviewer=reviewer,
        workflows=[build("tune"), build("tune-strict", policy="strict")],
        guard_s=0.0,
        rest_s=0.0,
        poll_s=0.0,
        stats=False,
        feedback=False,
    )
    refused: list[str] = []
    app.notify = _recording(app.notify, refused)  # type: ignore[method-assign]
    tried: list[str] = []
    done = False
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        for _ in range(ROUNDS):
            await refresh(pilot)
            if _finished(app) >= runs:
                done = True
                break
            table = app.queue
            shown = [str(key.value) for key in table.rows]  # the rows, in screen order
            mine = [k for k in shown if k not in tried and app.may_decide(table.records[k])]
            if not mine:
                await asyncio.sleep(0.1)  # the other reviewer, or a resume, is on it
                continue
            gate_id = mine[0]
            table.mark_user_move()
            table.move_cursor(row=shown.index(gate_id))
            await settle(pilot)
            if app.tracker.shown != gate_id:
                continue
            tried.append(gate_id)
            await pilot.press("a")
            await settle(pilot)
        await settle(pilot)
    return {"reviewer": reviewer, "tried": tried, "refused": refused, "finished": done}


def _recording(notify: Any, refused: list[str]) -> Any:
    def record(message: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("title") == "not recorded":
            refused.append(message)
        return notify(message, *args, **kwargs)

    return record


def main() -> None:
    db, reviewer, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = asyncio.run(review(db, reviewer, runs))
    print(json.dumps(result))
    sys.exit(0 if result["finished"] else 1)


if __name__ == "__main__":
    main()
