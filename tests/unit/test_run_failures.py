"""Whatever the graph raises ends in a recorded run.failed, and one broken run never stops
`resume` from finishing the others."""

from __future__ import annotations

from coimprove import Decision, Runner
from coimprove.runner import list_runs
from tests.helpers import linear_workflow
from tests.integration.clash_graph import workflow as clash


def _approve(runner: Runner, gate_id: str) -> None:
    gate = runner.gate(gate_id)
    runner.decide(
        gate_id, Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest)
    )


async def test_an_invalid_update_fails_the_run_with_its_reason(runner: Runner) -> None:
    info = await runner.start(clash)
    _approve(runner, info.open_gates[0])
    assert await runner.advance(info.run_id) == [info.run_id]  # no exception escapes
    after = runner.info(info.run_id)
    assert after.state == "failed"
    assert (after.error or "").startswith("InvalidUpdateError: At key 'result'")
    (failed,) = runner.ledger.events(run_id=info.run_id, types=["run.failed"])
    assert "Can receive only one value per step" in failed.data["error"]
    (status,) = list_runs(runner.ledger, info.run_id)
    assert status.state == "failed"
    # the approval was consumed before the failing step: its gate is not resumed again
    assert len(runner.ledger.events(run_id=info.run_id, types=["gate.resumed"])) == 1


async def test_resume_finishes_the_other_runs_when_one_is_broken(runner: Runner) -> None:
    broken = await runner.start(clash)
    healthy = await runner.start(linear_workflow())
    _approve(runner, broken.open_gates[0])  # decided, not yet applied (decide --no-apply)
    _approve(runner, healthy.open_gates[0])
    driven = await runner.resume()
    assert set(driven) == {broken.run_id, healthy.run_id}
    assert runner.info(healthy.run_id).state == "finished"
    assert runner.info(broken.run_id).state == "failed"
    # a retry fails again, recorded again, and still does not raise
    await runner.resume()
    assert len(runner.ledger.events(run_id=broken.run_id, types=["run.failed"])) == 2
    assert runner.info(healthy.run_id).state == "finished"
