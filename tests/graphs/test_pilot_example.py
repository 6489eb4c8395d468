"""examples/benchmark_pilot.py runs the three arms side by side and keeps their oversight apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs.conftest import GRAPHS


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.usefixtures("python_image")
def test_the_pilot_example_compares_the_three_arms(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/benchmark_pilot.py", "--runs", "1", "--out", str(tmp_path)],
        cwd=GRAPHS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(GRAPHS.parent)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:4]}
    assert set(rows) == {"human_ai", "ai_only", "human_only"}
    assert "{'model':" in rows["ai_only"] and "scripted" not in rows["ai_only"]
    assert "model" not in rows["human_ai"] and "model" not in rows["human_only"]
    for arm in rows:
        assert (tmp_path / f"{arm}.db").is_file()
    assert list((tmp_path / "datasets" / "stable_reflectivity").glob("*/items.jsonl"))
