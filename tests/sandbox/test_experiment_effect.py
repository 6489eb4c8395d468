"""A code proposal is a commit; the gate shows its diff; the approved commit runs in a sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from coimprove import END, START, Decision, GatedState, Runner, SimClock, Workflow
from coimprove.experiments import code_proposal, experiment_effect, merge_effect
from coimprove.sandbox import GitWorkspace
from coimprove.sandbox.images import BuiltImage

TRAIN = """\
import json, os
import numpy as np
rng = np.random.default_rng(0)
x = rng.normal(size=(200, 3)); w = np.array([1.0, -2.0, 0.5]); y = x @ w
lr = float(os.environ.get("LR", "{lr}"))
theta = np.zeros(3)
for _ in range(200):
    theta -= lr * (x.T @ (x @ theta - y)) / len(y)
os.makedirs("out", exist_ok=True)
json.dump({{"mse": float(np.mean((x @ theta - y) ** 2)), "lr": lr}}, open("out/metrics.json", "w"))
"""


class ExpState(GatedState, total=False):
    experiment: dict[str, Any]
    merged: dict[str, Any]


def _workflow(ws: GitWorkspace, lr: float) -> Workflow:
    wf = Workflow(f"exp-{lr}", state=ExpState)

    @wf.agent("coder", kind="code")
    def coder(state: Any) -> Any:
        proposal = code_proposal(
            ws,
            title=f"gradient descent, lr={lr}",
            author="agent:coder",
            files={"train.py": TRAIN.format(lr=lr)},
            payload={
                "command": "python3 train.py",
                "timeout_s": 60,
                "expected_outcome": "mse below 0.01",
            },
            kind="experiment",
        )
        return proposal

    wf.gate("review", proposal_from="coder", on_approve="run")
    wf.effect("run", experiment_effect(workspace=ws), gate="review", idempotent=True)
    wf.effect("merge", merge_effect(ws), gate="review")
    wf.edge(START, "coder")
    wf.edge("coder", "review")
    wf.edge("run", "merge")
    wf.edge("merge", END)
    return wf


@pytest.fixture
def ws(tmp_path: Path) -> GitWorkspace:
    return GitWorkspace.create(tmp_path / "ws", run_id="exp", files={"README": b"toy\n"})


async def test_an_approved_commit_runs_in_the_sandbox_and_its_metrics_are_recorded(
    tmp_path: Path,
    ws: GitWorkspace,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    async with Runner(tmp_path / "l.db", clock=SimClock()) as runner:
        info = await runner.start(_workflow(ws, lr=0.1))
        gate = runner.gate(info.open_gates[0])
        diff = gate.proposal.artifacts[0]
        assert diff.name == "changes.diff" and "+lr = float" in (diff.content or "")
        assert gate.proposal.commit is not None and not ws.is_merged(gate.proposal.commit)
        runner.decide(
            gate.gate_id, Decision(verdict="approve", reviewer="alice", digest=gate.proposal.digest)
        )
        await runner.advance()
        assert runner.info(info.run_id).state == "finished", runner.info(info.run_id).error
        state = await runner.state(info.run_id)
        (recorded,) = runner.ledger.events(types=["experiment.recorded"])
    result = state["experiment"]
    assert result == recorded.data
    assert result["commit"] == gate.proposal.commit  # exactly the approved commit ran
    assert result["exit_code"] == 0 and result["ended_by"] == "exit"
    assert result["metrics"]["lr"] == 0.1 and result["metrics"]["mse"] < 0.01
    assert result["resources"]["cpu_s"] > 0 and result["resources"]["peak_memory_bytes"] > 0
    assert result["resources"]["oom_kills"] == 0
    assert any(
        a["name"].endswith("metrics.json") and a["digest"].startswith("sha256:")
        for a in result["artifacts"]
    )
    assert ws.is_merged(gate.proposal.commit)


async def test_a_rejected_commit_stays_on_record_and_never_runs(
    tmp_path: Path,
    ws: GitWorkspace,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    async with Runner(tmp_path / "l.db", clock=SimClock()) as runner:
        info = await runner.start(_workflow(ws, lr=1000.0))
        gate = runner.gate(info.open_gates[0])
        runner.decide(
            gate.gate_id,
            Decision(
                verdict="reject", reviewer="alice", digest=gate.proposal.digest, note="lr 1000"
            ),
        )
        await runner.advance()
        assert runner.info(info.run_id).state == "finished"
        assert not runner.ledger.events(types=["experiment.recorded"])
    assert gate.proposal.commit in ws.proposals().values()
    assert not ws.is_merged(gate.proposal.commit)


async def test_an_invalid_experiment_spec_fails_loudly(
    tmp_path: Path,
    ws: GitWorkspace,
    docker_client: docker.DockerClient,
    python_image: BuiltImage,
) -> None:
    wf = _workflow(ws, lr=0.1)
    async with Runner(tmp_path / "l.db", clock=SimClock()) as runner:
        info = await runner.start(wf)
        gate = runner.gate(info.open_gates[0])
        runner.decide(
            gate.gate_id,
            Decision(
                verdict="edit",
                reviewer="alice",
                digest=gate.proposal.digest,
                edited_payload={"command": "python3 train.py", "timeout_s": -5},
            ),
        )
        await runner.advance()
        run = runner.info(info.run_id)
    assert run.state == "failed"
    assert "not a valid experiment spec (timeout_s" in (run.error or "")
