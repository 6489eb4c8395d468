"""The built-in graphs by name from the shell: a person answers each gate with `coimprove
decide`, every command in a new process (the run is reloaded from the ledger each time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.graphs.conftest import read_json
from tests.graphs.test_benchmark_cocreation import HUMAN_ITEMS
from tests.integration.test_cli import cli, data


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.usefixtures("python_image")
def test_a_person_co_creates_a_dataset_from_the_shell(tmp_path: Path) -> None:
    env = {"COIMPROVE_DB": str(tmp_path / "ledger.db")}
    inputs = {
        "arm": "human_only",
        "items": HUMAN_ITEMS[:1],
        "author": "erin",
        "out_dir": str(tmp_path / "ds"),
    }
    (tmp_path / "in.json").write_text(json.dumps(inputs))
    (run,) = data(
        cli("run", "benchmark_cocreation", "--input", f"@{tmp_path / 'in.json'}", "--json", env=env)
    )
    assert run["state"] == "waiting" and run["policy"] == "benchmark_pilot"
    for expected in ("benchmark_batch", "dataset_release"):
        (gate,) = data(cli("pending", "--json", env=env))
        shown = data(cli("show", gate["gate_id"], "--as", "dana", "--json", env=env))
        assert shown["proposal"]["kind"] == expected
        if expected == "benchmark_batch":  # erin wrote these items: she may not accept them
            refused = cli(
                "decide",
                gate["gate_id"],
                "approve",
                "--as",
                "erin",
                "--digest",
                gate["digest"],
                env=env,
            )
            assert refused.returncode != 0
            assert "separation of duties" in refused.stderr + refused.stdout
        decided = data(
            cli(
                "decide",
                gate["gate_id"],
                "approve",
                "--as",
                "dana",
                "--digest",
                gate["digest"],
                "--json",
                env=env,
            )
        )
        assert decided["outcome"] == "approve"
    assert decided["run_state"] == "finished"
    (folder,) = [p for p in (tmp_path / "ds" / "stable_reflectivity").iterdir() if p.is_dir()]
    manifest = read_json(folder / "manifest.json")
    assert manifest["items"] == 1 and manifest["approval"]["reviewers"] == ["dana"]
    assert os.path.getsize(folder / "items.jsonl") == manifest["files"]["items.jsonl"]["bytes"]
