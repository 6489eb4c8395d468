"""The role and reviewer prompts ship inside the wheel (they are package data)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import coimprove.agents

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = sorted(p.name for p in (Path(coimprove.agents.__file__).parent / "prompts").glob("*.md"))


def test_every_prompt_file_is_in_the_package() -> None:
    assert {
        "idea.md",
        "benchmark_item.md",
        "code.md",
        "experiment.md",
        "execution_analysis.md",
        "error_analysis.md",
        "safety_critique.md",
        "writeup.md",
        "reviewer.md",
    } <= set(PROMPTS)


@pytest.mark.slow
def test_the_wheel_carries_the_prompts(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("coimprove-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PROMPTS:
        assert f"coimprove/agents/prompts/{name}" in names, name
