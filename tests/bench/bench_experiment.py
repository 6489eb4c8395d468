"""End to end: gate approval -> experiment result recorded, for the built-in python experiment.

    python -m tests.bench.bench_experiment [--n 10]

Measures, in one run, (a) the whole path a reviewer's approval takes — decision recorded,
run resumed, effect checked against the ledger, fresh sandbox, exactly the approved commit's
files copied in, numpy training run, metrics and artifacts back, `experiment.recorded`
written — and (b) a bare `run_experiment` of the same spec and commit, so the ratio is the
cost of the gate machinery on top of the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from coimprove import Decision, Runner, SimClock
from coimprove.sandbox import ExperimentSpec, GitWorkspace, build_image, connect, run_experiment
from tests.sandbox.test_experiment_effect import _workflow


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(n: int) -> dict[str, float]:
    build_image("python", client=connect())
    gated: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = GitWorkspace.create(Path(tmp) / "ws", run_id="bench", files={"README": b"x\n"})
        async with Runner(Path(tmp) / "l.db", clock=SimClock()) as runner:
            for i in range(n + 1):
                info = await runner.start(_workflow(ws, lr=0.1 + i * 1e-3))
                gate = runner.gate(info.open_gates[0])
                t0 = time.perf_counter()
                runner.decide(
                    gate.gate_id,
                    Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest),
                )
                await runner.advance(info.run_id)
                elapsed = time.perf_counter() - t0
                assert runner.ledger.events(gate_id=gate.gate_id, types=["experiment.recorded"])
                spec = ExperimentSpec.model_validate(gate.proposal.payload)
                t1 = time.perf_counter()
                result = await run_experiment(spec, workspace=ws, commit=gate.proposal.commit)
                bare_s = time.perf_counter() - t1
                assert result.metrics is not None
                if i:  # the first round warms caches
                    gated.append(elapsed * 1000)
                    bare.append(bare_s * 1000)
    g50, b50 = statistics.median(gated), statistics.median(bare)
    print(f"approval -> experiment result recorded ({n} runs, numpy training in the sandbox)")
    print(f"  through the gate : p50 {g50:7.1f} ms  p95 {_pct(gated, 95):7.1f} ms")
    print(f"  bare run_experiment: p50 {b50:7.1f} ms  p95 {_pct(bare, 95):7.1f} ms")
    print(f"  ratio (gate path / bare sandbox run): {g50 / b50:.2f}x")
    return {"gated_p50_ms": g50, "bare_p50_ms": b50, "ratio": g50 / b50}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    asyncio.run(main(parser.parse_args().n))
