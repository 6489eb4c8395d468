"""examples/benchmark_pilot.py builds a release per arm and seed, scores each with the panel and
prints the arm table with intervals (people are scripted stand-ins, and the output says so)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs.conftest import GRAPHS


def pilot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "examples/benchmark_pilot.py", "--model", "fake", *args],
        cwd=GRAPHS.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(GRAPHS.parent)},
    )


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.usefixtures("python_image")
def test_the_pilot_prints_the_arm_table_with_intervals(tmp_path: Path) -> None:
    common = ["--items", "10", "--resamples", "100"]
    done = pilot("--seeds", "1", *common, "--out", str(tmp_path / "s0"))
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "NO PERSON TOOK PART" in out and "SCRIPTED STAND-IN" in out
    rows = {
        line.split("|")[1].strip(): line
        for line in out.splitlines()
        if re.match(r"\| (human\+AI|AI-only|human-only) \|", line)
    }
    assert set(rows) == {"human+AI", "AI-only", "human-only"}
    for line in rows.values():  # every measure has its interval
        assert len(re.findall(r"\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]", line)) >= 4
    assert "Share of model-drafted items admitted" in out
    for arm in ("human_ai", "ai_only", "human_only"):
        assert (tmp_path / "s0" / "scores" / f"{arm}-s0.json").is_file()
    assert (tmp_path / "s0" / "report.md").read_text().startswith("# Benchmark co-creation pilot")
    assert (tmp_path / "s0" / "pilot.png").stat().st_size > 10_000
    # a second seed run apart, then both tabled together
    done = pilot("--seeds", "1", "--seed-start", "1", *common, "--out", str(tmp_path / "s1"))
    assert done.returncode == 0, done.stderr[-2000:]
    both = pilot(
        "--collect", str(tmp_path / "s0"), str(tmp_path / "s1"), *common, "--out", str(tmp_path)
    )
    assert both.returncode == 0, both.stderr[-2000:]
    assert "2 seeds" in both.stdout
    for arm in ("human_ai", "human_only"):  # each seed drew other template slots
        refs = [
            json.loads((tmp_path / f"s{k}" / "scores" / f"{arm}-s{k}.json").read_text())["refs"]
            for k in (0, 1)
        ]
        assert not set(refs[0]) & set(refs[1])
    assert re.search(r"\| human-only \| 2 \| 10 \|", both.stdout)


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.usefixtures("python_image")
def test_a_seed_builds_the_same_releases_every_time(tmp_path: Path) -> None:
    """The stand-ins draw their numbers per gate id, and the pilot fixes its run ids, so the
    same seed admits the same items in every arm (with random run ids it did not)."""
    common = ["--seeds", "1", "--seed-start", "1", "--items", "10", "--resamples", "50"]
    for k in (0, 1):
        done = pilot(*common, "--out", str(tmp_path / f"t{k}"))
        assert done.returncode == 0, done.stderr[-2000:]
    for arm in ("human_ai", "ai_only", "human_only"):
        scores = [
            json.loads((tmp_path / f"t{k}" / "scores" / f"{arm}-s1.json").read_text())
            for k in (0, 1)
        ]
        assert scores[0]["refs"] == scores[1]["refs"]
        assert scores[0]["refs"]  # a release was published

