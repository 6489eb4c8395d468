"""`coimprove demo` from a shell: real sandbox, the graph's scripted model, scripted reviewers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import git
import pytest

from coimprove import SqliteLedger
from coimprove.demo import STEPS, DemoSettings, start_step
from coimprove.sandbox.images import BuiltImage
from tests.graphs.conftest import docker_client, python_image

__all__ = ["docker_client", "python_image"]

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = {
    "problem_identification",
    "method_innovation",
    "experiment_design",
    "execution",
    "error_analysis",
    "scientific_communication",
}

pytestmark = pytest.mark.docker


def test_the_demo_runs_from_the_shell_and_reports_by_category(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        ["coimprove", "demo", "--model", "fake", "--out", str(out), "--runs", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"sandbox image python: {python_image.tag}" in text
    assert "oversight by collaboration category" in text
    assert f"ledger:       {out / 'ledger.db'}" in text

    # scripted reviewers decide with seeded randomness per gate id (run ids are fresh), so a
    # run may end at any gate; what holds for every outcome is checked here
    report = json.loads((out / "report.json").read_text())
    assert "problem_identification" in report["by_category"]
    assert set(report["by_category"]) <= CATEGORIES
    for category in report["by_category"]:
        assert category in text
    assert report["pending"] == 0 and report["gates"] >= 2
    with SqliteLedger(out / "ledger.db") as ledger:
        assert ledger.verify().ok
        runs = ledger.events(types=["run.started"])
        finished = ledger.events(types=["run.finished"])
        recorded = ledger.events(types=["experiment.recorded"])
        merged = ledger.events(types=["effect.finished"])
    assert len(runs) == 2 and len(finished) == 2
    assert all(r.data["metrics"] for r in recorded)  # the sandbox really ran
    for event in merged:
        if event.data["effect"] == "merge_code":
            workspace = out / "workspaces" / str(event.run_id)
            assert f"git workspace: {workspace}" in text
            assert event.data["update"]["merged_code"]["commit"] in git.Repo(workspace).git.log()


async def test_interactive_runs_start_and_wait_at_the_first_gate_for_a_person(
    tmp_path: Path,
) -> None:
    settings = DemoSettings(model="fake", out=tmp_path, interactive=True)
    (info,) = await start_step(STEPS[0], settings)
    assert info.state == "waiting"
    assert info.open_gates == (f"{info.run_id}.idea_gate.1",)
