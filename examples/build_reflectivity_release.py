"""Build a stable-reflectivity release with the template pipeline, headless, and its datasheet.

    python examples/build_reflectivity_release.py [--model local] [--per-subtask 300]
        [--model-share 1.0] [--batch-size 50] [--out graphs/data/stable_reflectivity/releases]

Runs the built-in `benchmark_cocreation` graph (arm human_ai, template drafting) until every
subtask has ``--per-subtask`` admitted items, then publishes the release under ``--out`` and writes
its DATASHEET.md (`coimprove.datasheet`). The gates are answered by a scripted stand-in that
approves every batch and the release (id ``scripted-approve-all``): no person reviewed the items,
and the datasheet says so. Items that fail a check are never admitted, whatever the gate says.
Needs Docker (`coimprove sandbox build python`). Prints the admission figures and the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from coimprove import Runner, load_workflow, run_headless
from coimprove.datasheet import write_datasheet
from coimprove.testing import Verdicts

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "graphs" / "data" / "stable_reflectivity" / "task.yaml"


async def main(args: argparse.Namespace) -> None:
    workflow = load_workflow("benchmark_cocreation")
    subtasks = 5
    inputs = {
        "arm": "human_ai",
        "drafting": "template",
        "model": args.model,
        "model_share": args.model_share,
        "target_items": args.per_subtask * subtasks,
        "target_per_subtask": args.per_subtask,
        "batch_size": args.batch_size,
        "max_batches": 3 * args.per_subtask * subtasks // args.batch_size,
        "out_dir": str(args.out),
    }
    db = args.db
    reviewer = Verdicts(["approve"], id="scripted-approve-all", kind="scripted")
    started = time.monotonic()
    result = await run_headless(workflow, [reviewer], runs=1, inputs=inputs, db=db)
    wall = time.monotonic() - started
    async with Runner(db) as runner:
        state = await runner.state(result.run_ids[0])
    outcomes = state.get("outcomes") or []
    admitted = sum(1 for o in outcomes if o["admitted"])
    published = state.get("published")
    if not published:
        raise SystemExit(f"nothing was published; run {result.run_ids[0]} in {db}")
    sheet = await asyncio.to_thread(write_datasheet, published["path"], task=TASK)
    text = await asyncio.to_thread(Path(published["path"], "items.jsonl").read_text)
    rows = [json.loads(x) for x in text.splitlines()]
    scen = Counter(r["provenance"]["scenario"] for r in rows)
    calls = sum(r["provenance"]["tries"] for r in rows)
    print(f"release {published['path']} version {published['version']}: {len(rows)} items")
    print(f"drafted {len(outcomes)}, admitted {admitted} ({100 * admitted / len(outcomes):.1f}%)")
    print(f"scenario lines: {dict(scen)}; model calls behind admitted items: {calls}")
    print(f"wall {wall:.0f} s, {len(outcomes) / wall:.2f} drafted items/s")
    print(f"datasheet {sheet}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="build a stable-reflectivity release")
    parser.add_argument("--model", default="local")
    parser.add_argument("--per-subtask", type=int, default=300)
    parser.add_argument("--model-share", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "graphs" / "data" / "stable_reflectivity" / "releases"
    )
    parser.add_argument("--db", type=Path, default=Path(".coimprove") / "release-build.db")
    asyncio.run(main(parser.parse_args()))
