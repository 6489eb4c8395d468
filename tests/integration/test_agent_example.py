"""examples/agent_tools.py from the shell: a LangChain agent's file write waits for a person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "agent_tools.py")


def cli(tmp_path: Path, *args: str) -> Any:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "COIMPROVE_DB": str(tmp_path / "ledger.db"),
        "COIMPROVE_AGENT_WORKSPACE": str(tmp_path / "workspace"),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "coimprove", *args, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_example_writes_its_file_only_after_approval_and_report_shows_the_gate(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "workspace" / "summary.md"
    (run,) = cli(tmp_path, "run", EXAMPLE)
    assert run["state"] == "waiting" and not summary.exists()
    (gate,) = cli(tmp_path, "pending")
    assert gate["kind"] == "tool:write_report" and gate["gate_id"].endswith(".tools.1")
    shown = cli(tmp_path, "show", gate["gate_id"])
    assert shown["proposal"]["payload"]["path"] == "summary.md"
    decided = cli(
        tmp_path, "decide", gate["gate_id"], "approve", "--as", "alice", "--digest", gate["digest"]
    )
    assert decided["outcome"] == "approve" and decided["run_state"] == "finished"
    assert summary.read_text() == "Validation loss: mean 0.520, sd 0.064.\n"
    rep = cli(tmp_path, "report")
    assert rep["gates"] == 1 and rep["decided"] == 1
    assert list(rep["by_proposal_kind"]) == ["tool:write_report"]
    assert cli(tmp_path, "pending") == []


def test_the_example_under_headless_reviewers_and_a_reject(tmp_path: Path) -> None:
    runs = cli(tmp_path, "run", EXAMPLE, "--reviewer", "careful", "--runs", "2")
    assert [r["state"] for r in runs] == ["finished", "finished"]
    (run,) = cli(tmp_path, "run", EXAMPLE)
    (gate,) = cli(tmp_path, "pending")
    summary = tmp_path / "workspace" / "summary.md"
    summary.unlink(missing_ok=True)  # the headless runs wrote it (approved)
    cli(
        tmp_path,
        "decide",
        gate["gate_id"],
        "reject",
        "--as",
        "alice",
        "--digest",
        gate["digest"],
        "--note",
        "not into the shared folder",
    )
    assert not summary.exists()
    (status,) = cli(tmp_path, "status", run["run_id"])
    assert status["state"] == "finished"
    assert cli(tmp_path, "report")["gates"] == 3
