"""`coimprove decide` and `resume` when the run they resume fails."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import cli, data

CLASH = "tests/integration/clash_graph.py:workflow"


def test_decide_exits_3_when_the_run_it_resumed_fails_and_resume_goes_on(
    tmp_path: Path,
) -> None:
    env = {"COIMPROVE_DB": str(tmp_path / "ledger.db")}
    (run,) = data(cli("run", CLASH, "--json", env=env))
    (gate,) = data(cli("pending", "--json", env=env))
    args = ["decide", gate["gate_id"], "approve", "--as", "alice", "--digest", gate["digest"]]
    result = cli(*args, env=env)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert not any(line.startswith("Traceback") for line in result.stderr.splitlines())
    assert "run is failed" in result.stdout and "InvalidUpdateError" in result.stderr
    (status,) = data(cli("status", run["run_id"], "--json", env=env))
    assert status["state"] == "failed" and "InvalidUpdateError" in status["error"]
    resumed = cli("resume", env=env)
    assert not any(line.startswith("Traceback") for line in resumed.stderr.splitlines())
    assert f"{run['run_id']} failed" in resumed.stdout
