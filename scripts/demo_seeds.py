"""Run the demo once per seed, as `coimprove demo --seed N` does, and print what each showed.

    python scripts/demo_seeds.py --model fake --seeds 10          # quick (sandbox real)
    python scripts/demo_seeds.py --model local --seeds 10         # the demo's own settings
    python scripts/demo_seeds.py --model local --seeds 10 --runs 1 --steps research_cycle

Per seed: each reviewer's rubber-stamp and canary catch figures (do the careful and the
rubber-stamping reviewer differ?), each cycle's approved method against the baseline, and the
distinct proposal titles per run. At the end: the share of cycles whose approved method beat
the baseline (with a Wilson interval), and whether any run showed one title on every gate.
Needs Docker and the ``python`` sandbox image (``coimprove sandbox build python``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from coimprove import SqliteLedger
from coimprove.demo import STEPS, DemoSettings, run_demo
from coimprove.demo_findings import research_finding, reviewer_oversight
from coimprove.metrics import report as build_report
from coimprove.metrics.stats import wilson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fake")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--runs", type=int, default=3, help="research_cycle runs per demo (the demo's: 3)"
    )
    parser.add_argument(
        "--steps",
        choices=["all", "research_cycle"],
        default="all",
        help="all: every step of the demo (its own settings); research_cycle: that step only",
    )
    args = parser.parse_args()
    steps = [s for s in STEPS if args.steps == "all" or s.graph == "research_cycle"]
    root = Path(tempfile.mkdtemp(prefix="coimprove-demo-seeds-"))
    cycles = beat = differ = 0
    one_title_runs = 0
    times: list[float] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        # seeds of different demos must not overlap: demo seed s runs cycles s*runs ...
        settings = DemoSettings(
            model=args.model, out=root / f"seed-{seed}", runs=args.runs, seed=seed * args.runs
        )
        started = time.monotonic()
        run_demo(settings, console=Console(file=io.StringIO(), width=120), steps=steps)
        seconds = time.monotonic() - started
        times.append(seconds)
        with SqliteLedger(settings.db) as ledger:
            rows = {r.reviewer: r for r in reviewer_oversight(build_report(ledger))}
            run_ids = [
                e.run_id
                for e in ledger.events(types=["run.started"])
                if e.run_id and e.data.get("graph") == "research_cycle"
            ]
            finding = research_finding(ledger, run_ids)
            titles = {
                rid: [
                    e.data["request"]["proposal"]["title"]
                    for e in ledger.events(run_id=rid, types=["gate.opened"])
                ]
                for rid in run_ids
            }
        careful, stamper = rows.get("careful-1"), rows.get("rubber_stamper-2")
        figures = " | ".join(
            f"{r.reviewer}: stamped {r.rubber_stamps}/{r.approvals}, caught {r.caught}/{r.canaries}"
            for r in rows.values()
        )
        differs = bool(
            careful
            and stamper
            and careful.catch_rate is not None
            and stamper.catch_rate is not None
            and careful.catch_rate != stamper.catch_rate
            and careful.rubber_stamp_rate != stamper.rubber_stamp_rate
        )
        differ += differs
        cycles += len(finding.cycles)
        beat += finding.beat
        distinct = [len(set(t)) for t in titles.values()]
        one_title_runs += sum(1 for t in titles.values() if len(t) > 1 and len(set(t)) == 1)
        methods = ", ".join(
            f"{c.method} {c.held_out_accuracy:.3f} vs {c.baseline_held_out_accuracy:.3f}"
            for c in finding.cycles
        )
        print(
            f"seed {seed} ({seconds:.0f}s): {figures} -> differ={differs}; cycles: "
            f"{methods or 'none ran an experiment'}; distinct titles/gates per run: "
            + ", ".join(f"{d}/{len(t)}" for d, t in zip(distinct, titles.values(), strict=True)),
            flush=True,
        )
    ci = wilson(beat, cycles)
    ci_text = f" [95% CI {ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    print(
        f"\n{differ}/{args.seeds} demos: careful and rubber-stamper figures differ\n"
        f"{beat}/{cycles} cycles: approved method beat the baseline{ci_text}\n"
        f"{one_title_runs} run(s) showed one title on every gate\n"
        f"demo time: median {statistics.median(times):.0f} s, longest {max(times):.0f} s\n"
        f"ledgers under {root}"
    )


if __name__ == "__main__":
    main()
