"""A process the crash tests start and kill.

    python -m tests.integration.crash_worker DB (start N | decide | finish) [--crash POINT]

start N:  start N runs (they pause at their first gate).
decide:   approve every open gate and apply the decisions.
finish:   recover (`Runner.resume`), re-approve blocked effects, approve and apply until every
          run is finished.
POINT (SIGKILL this process there): after_decide, after_effect_finished,
before_mark_resumed, before_open_gates, in_effect (set by the graph itself).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from coimprove import Decision, Runner, load_workflow

GRAPH = os.environ.get("COIMPROVE_TEST_GRAPH", "tests/integration/crash_graph.py:workflow")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(runner: Runner, point: str) -> None:
    if point == "after_effect_finished":
        original = runner.ledger.append

        def append(type: str, **kw: Any) -> Any:
            event = original(type, **kw)  # type: ignore[arg-type]
            if type == "effect.finished":
                _die()
            return event

        runner.ledger.append = append  # type: ignore[method-assign]
    elif point == "before_mark_resumed":
        runner._resumed = lambda *a, **k: _die()  # type: ignore[method-assign]
    elif point == "before_open_gates":
        runner._open_gates = lambda *a, **k: _die()  # type: ignore[method-assign]


async def _approve_all(runner: Runner, point: str) -> None:
    for gate in runner.open_gates():
        runner.decide(
            gate.gate_id, Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest)
        )
        if point == "after_decide":
            _die()
    await runner.advance()


async def main(argv: list[str]) -> None:
    db, mode = argv[0], argv[1]
    point = argv[argv.index("--crash") + 1] if "--crash" in argv else ""
    async with Runner(db, lease_ttl_s=0.5) as runner:
        runner.register(load_workflow(GRAPH))
        _arm(runner, point)
        if mode == "start":
            for _ in range(int(argv[2])):
                await runner.start(load_workflow(GRAPH))
        elif mode == "decide":
            await _approve_all(runner, point)
        elif mode == "finish":
            for _ in range(20):
                await runner.resume()
                for info in runner.runs():
                    if info.state == "blocked":
                        key = (info.error or "").split("--reapprove ")[1].split()[0]
                        runner.reapprove(key, "lead-bob", note="checked: safe to re-run")
                await _approve_all(runner, point)
                if all(i.state == "finished" for i in runner.runs()):
                    return
            raise SystemExit(f"runs did not finish: {runner.runs()}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
