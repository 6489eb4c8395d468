"""Sandbox latency benchmark: coimprove's hardened DockerSandbox vs bare docker, in one run.

    python -m tests.bench.bench_sandbox [--cold 20] [--warm 200] [--json] [--strict]

- cold: DockerSandbox start (create + start) + exec `true` + close (remove), vs bare
  `docker run --rm IMAGE true` on the same image. Target: median ratio <= 1.2.
- warm: `exec(["true"])` in a running sandbox, vs bare `docker exec CONTAINER true` (the CLI)
  on the same container; the docker SDK's `exec_run` is shown too. Target: p50 ratio <= 1.3.
- experiment: `run_experiment` of a small numpy script (sandbox start, files in, run, metrics
  and result files out, remove): the sandbox share of gate approval -> result recorded.

Runs are interleaved (ours, bare, ours, bare, ...) so drift on the machine hits both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import docker

from coimprove.sandbox.docker import DockerSandbox, reap
from coimprove.sandbox.engine import connect
from coimprove.sandbox.experiment import ExperimentSpec, run_experiment
from coimprove.sandbox.images import build_image

COLD_TARGET = 1.2
WARM_TARGET = 1.3


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) in milliseconds, by nearest rank on sorted samples."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds."""
    return {
        "p50_ms": pct(samples, 50),
        "p95_ms": pct(samples, 95),
        "mean_ms": statistics.fmean(samples) * 1000,
        "n": len(samples),
    }


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


def run_cli(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True)


EXPERIMENT = ExperimentSpec(
    command=["python3", "exp.py"],
    files={
        "exp.py": "import json, numpy as np\n"
        "x = np.random.default_rng(0).normal(size=100_000)\n"
        "json.dump({'mean': float(x.mean()), 'std': float(x.std())},"
        " open('out/metrics.json', 'w'))\n"
    },
    timeout_s=60,
)


async def bench(
    cold_n: int, warm_n: int, exp_n: int, client: docker.DockerClient
) -> dict[str, object]:
    image = build_image("python", client=client)
    tag = image.tag
    reap(client)
    # warm-up: first container on a fresh image/daemon is slower for both sides
    run_cli("run", "--rm", tag, "true")
    box = await DockerSandbox.start("python", run_id="bench", client=client)
    await box.close()

    async def ours_cold() -> None:
        sb = await DockerSandbox.start("python", run_id="bench", client=client)
        r = await sb.exec(["true"])
        await sb.close()
        assert r.ok, r

    async def bare_cold() -> None:
        await asyncio.to_thread(run_cli, "run", "--rm", tag, "true")

    cold_ours: list[float] = []
    cold_bare: list[float] = []
    for _ in range(cold_n):
        cold_ours.append(await timed(ours_cold))
        cold_bare.append(await timed(bare_cold))

    sb = await DockerSandbox.start("python", run_id="bench", client=client)
    try:
        container = client.containers.get(sb.id)

        async def ours_warm() -> None:
            r = await sb.exec(["true"])
            assert r.ok, r

        async def cli_warm() -> None:
            await asyncio.to_thread(run_cli, "exec", "-u", "1000:1000", sb.id, "true")

        async def sdk_warm() -> None:
            res = await asyncio.to_thread(container.exec_run, ["true"], user="1000:1000")
            assert res.exit_code == 0

        for fn in (ours_warm, cli_warm, sdk_warm):  # warm-up
            await fn()
        warm_ours: list[float] = []
        warm_cli: list[float] = []
        warm_sdk: list[float] = []
        for _ in range(warm_n):
            warm_ours.append(await timed(ours_warm))
            warm_cli.append(await timed(cli_warm))
            warm_sdk.append(await timed(sdk_warm))
    finally:
        await sb.close()

    async def experiment() -> None:
        result = await run_experiment(EXPERIMENT, run_id="bench", client=client)
        assert result.ok and result.metrics, result

    exp_samples = [await timed(experiment) for _ in range(exp_n)]

    cold = {"coimprove": summary(cold_ours), "docker run --rm": summary(cold_bare)}
    warm = {
        "coimprove": summary(warm_ours),
        "docker exec (CLI)": summary(warm_cli),
        "docker SDK exec_run": summary(warm_sdk),
    }
    return {
        "image": tag,
        "cold": cold,
        "warm": warm,
        "experiment": {"run_experiment (numpy script)": summary(exp_samples)},
        "ratios": {
            "cold_p50": cold["coimprove"]["p50_ms"] / cold["docker run --rm"]["p50_ms"],
            "warm_p50_vs_cli": warm["coimprove"]["p50_ms"] / warm["docker exec (CLI)"]["p50_ms"],
            "warm_p95_vs_cli": warm["coimprove"]["p95_ms"] / warm["docker exec (CLI)"]["p95_ms"],
            "warm_p50_vs_sdk": warm["coimprove"]["p50_ms"] / warm["docker SDK exec_run"]["p50_ms"],
        },
    }


def render(report: dict[str, object]) -> str:
    lines = [f"image: {report['image']}"]
    for phase in ("cold", "warm", "experiment"):
        rows = report[phase]
        assert isinstance(rows, dict)
        lines.append(f"\n{phase}:")
        lines.append(f"  {'':30} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9} {'n':>5}")
        for name, s in rows.items():
            lines.append(
                f"  {name:30} {s['p50_ms']:9.1f} {s['p95_ms']:9.1f} {s['mean_ms']:9.1f} "
                f"{int(s['n']):5d}"
            )
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    cold_ok = ratios["cold_p50"] <= COLD_TARGET
    warm_ok = ratios["warm_p50_vs_cli"] <= WARM_TARGET
    lines.append("\nratios (coimprove / bare):")
    lines.append(
        f"  cold p50 vs docker run --rm : {ratios['cold_p50']:.2f}x "
        f"(target <= {COLD_TARGET}x: {'met' if cold_ok else 'MISSED'})"
    )
    lines.append(
        f"  warm p50 vs docker exec     : {ratios['warm_p50_vs_cli']:.2f}x "
        f"(target <= {WARM_TARGET}x: {'met' if warm_ok else 'MISSED'})"
    )
    lines.append(f"  warm p95 vs docker exec     : {ratios['warm_p95_vs_cli']:.2f}x")
    lines.append(f"  warm p50 vs SDK exec_run    : {ratios['warm_p50_vs_sdk']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cold", type=int, default=20, help="cold iterations per side")
    parser.add_argument("--warm", type=int, default=200, help="warm iterations per side")
    parser.add_argument("--experiment", type=int, default=10, help="experiment iterations")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    report = asyncio.run(bench(args.cold, args.warm, args.experiment, connect()))
    print(json.dumps(report, indent=2) if args.json else render(report))
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    missed = ratios["cold_p50"] > COLD_TARGET or ratios["warm_p50_vs_cli"] > WARM_TARGET
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
