"""`Runner.advance(run_id)` on its fast path: what the lease holder knows must not hide a timeout
or a decision."""

from __future__ import annotations

from pathlib import Path

from coimprove import Decision, Runner
from tests.helpers import linear_workflow


async def test_the_lease_holder_still_expires_a_gate_once_its_deadline_passes(
    runner: Runner, tmp_path: Path
) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text("name: fast\ndefaults:\n  timeout_s: 60\n  on_timeout: reject\n")
    info = await runner.start(linear_workflow(pairs=2), policy=str(policy))
    clock = runner.clock
    clock.advance(59)  # type: ignore[attr-defined]
    await runner.advance(info.run_id)  # the runner opened the gate and knows its deadline
    assert runner.info(info.run_id).state == "waiting"
    clock.advance(2)  # type: ignore[attr-defined]
    await runner.advance(info.run_id)
    (timed_out,) = runner.ledger.events(run_id=info.run_id, types=["gate.timed_out"])
    assert timed_out.gate_id == info.open_gates[0]
    assert runner.info(info.run_id).state == "finished"  # rejected: the path ends


async def test_a_decision_recorded_by_another_runner_is_applied_by_the_lease_holder(
    runner: Runner, tmp_path: Path
) -> None:
    workflow = linear_workflow(pairs=2)
    info = await runner.start(workflow)
    where = getattr(runner.ledger, "postgres_dsn", None) or tmp_path / "ledger.db"
    async with Runner(where, clock=runner.clock) as other:  # e.g. the CLI
        (gate_id,) = info.open_gates
        gate = other.gate(gate_id)
        other.decide(
            gate_id, Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest)
        )
    assert await runner.advance(info.run_id) == [info.run_id]
    after = runner.info(info.run_id)
    assert after.state == "waiting" and after.open_gates != info.open_gates
    assert len(runner.ledger.events(gate_id=gate_id, types=["gate.resumed"])) == 1
