"""A 10,000-gate sweep: wall time, and the speed-up from 1 to 2 worker processes.

    python -m tests.bench.bench_ablate [--gates 10000] [--cells 20]

The sweep is the synthetic graph with the fake model, scripted reviewers (careful, rubber
stamper, fatigued, autonomous) and canaries, on a simulated clock — the same sweep twice, with
1 and then 2 local worker processes, each into a fresh folder, in one run. Targets: a 10,000-gate
sweep in <= 60 s, and >= 1.7x from 1 to 2 workers. Also printed: the workers' CPU time per gate
(independent of how busy the machine is) and the load average before each sweep, since other
work on a shared machine slows every wall-clock figure.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path

from coimprove.ablate.executors import LocalExecutor
from coimprove.ablate.spec import SweepSpec
from coimprove.ablate.sweep import SweepOutcome, run_sweep

PANELS = [
    {"name": "careful", "profile": "careful"},
    {"name": "stamper", "profile": "rubber_stamper"},
    {"name": "fatigued", "profile": "fatigued"},
    {"name": "autonomous", "profile": "autonomous"},
]
GATES_PER_RUN = 5
#: measured gates per run of this spec (deterministic); sizes the sweep
GATES_PER_RUN_OBSERVED = 6.2


def bench_spec(gates: int, cells: int) -> SweepSpec:
    seeds = max(cells // len(PANELS), 1)
    runs = math.ceil(gates / (GATES_PER_RUN_OBSERVED * seeds * len(PANELS)))
    return SweepSpec.model_validate(
        {
            "name": "bench",
            "policies": [{"ref": "default", "label": "canary", "set": {"canary_rate": 0.2}}],
            "reviewers": PANELS,
            "seeds": seeds,
            "runs_per_cell": runs,
            "gates_per_run": GATES_PER_RUN,
            "arrival_s": 1200,
        }
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(spec: SweepSpec, workers: int, folder: Path) -> tuple[float, float, SweepOutcome, float]:
    """Wall time, worker CPU time (reaped children), the outcome and the load before."""
    load = os.getloadavg()[0]
    executor = LocalExecutor(workers)
    cpu = _children_cpu()
    began = time.perf_counter()
    try:
        outcome = run_sweep(spec, folder, executor=executor, progress=False, report=False)
    finally:
        executor.close()  # joins the workers, so their CPU time is counted below
    wall = time.perf_counter() - began
    if not outcome.ok:
        raise SystemExit(f"bench sweep failed: {outcome.failed[0].error}")
    return wall, _children_cpu() - cpu, outcome, load


def main(gates: int, cells: int) -> dict[str, float]:
    spec = bench_spec(gates, cells)
    with tempfile.TemporaryDirectory(prefix="bench-ablate-") as tmp:
        w1, cpu1, o1, load1 = one(spec, 1, Path(tmp) / "w1")
        w2, cpu2, o2, load2 = one(spec, 2, Path(tmp) / "w2")
    decided = sum(r.decisions for r in o2.results)
    assert decided == sum(r.decisions for r in o1.results)  # the same sweep both times
    print(
        f"sweep: {len(spec.cells())} cells, {decided:,} gates decided "
        f"(fake model, scripted reviewers, simulated clock)"
    )
    print(f"  1 worker : {w1:7.1f} s   ({decided / w1:6.0f} gates/s; load avg before {load1:.1f})")
    print(f"  2 workers: {w2:7.1f} s   ({decided / w2:6.0f} gates/s; load avg before {load2:.1f})")
    print(f"  wall time for the sweep on 2 workers: {w2:.1f} s   (target <= 60 s)")
    print(f"  speed-up 1 -> 2 workers             : {w1 / w2:.2f}x  (target >= 1.7x)")
    print(
        f"  worker CPU time                     : {cpu1 / decided * 1000:.2f} ms/gate (1 worker), "
        f"{cpu2 / decided * 1000:.2f} ms/gate (2 workers)"
    )
    idle = cpu2 / 2
    print(
        f"  => on {os.cpu_count()} idle CPUs the 2-worker sweep would need about {idle:.0f} s of "
        "wall time (its CPU time / 2); wall figures above include waiting for CPUs that other "
        "processes held"
    )
    return {"gates": decided, "wall_1": w1, "wall_2": w2, "speedup": w1 / w2, "cpu_2": cpu2}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=10_000)
    parser.add_argument("--cells", type=int, default=20)
    args = parser.parse_args()
    main(args.gates, args.cells)
