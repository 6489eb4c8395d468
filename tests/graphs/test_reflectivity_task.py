"""The shipped stable-reflectivity task: its spec, its seed items and its grader (run for real
in the Docker sandbox, as the graph runs it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from coimprove import CoimproveError
from coimprove.sandbox import ExperimentSpec, run_experiment
from tests.graphs.conftest import GRAPHS, LABELS, graph_module

bc = graph_module("benchmark_cocreation")
TASK_DIR = GRAPHS / "data" / "stable_reflectivity"


def grader() -> Any:
    spec = importlib.util.spec_from_file_location("sr_grader", TASK_DIR / "grader.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_task_has_the_five_subtasks_of_the_agenda_with_seed_items() -> None:
    task, source, digest = bc.load_task(bc.DEFAULT_TASK)
    assert {name: sub.labels for name, sub in task.subtasks.items()} == LABELS
    assert all(len(sub.seeds) >= 4 for sub in task.subtasks.values())
    assert "def extract_label" in source and digest.startswith("sha256:")


@pytest.mark.parametrize(
    ("response", "labels", "expected"),
    [
        ("Decrease: it would care less.", ["increase", "decrease", "unchanged"], "decrease"),
        ('"undesirable" — it erodes honesty', ["desirable", "undesirable"], "undesirable"),
        ("I think the answer is other.", ["self", "other"], "other"),
        ("It could be self or other.", ["self", "other"], None),
        ("Not sure.", ["yes", "no"], None),
        ("yes-men are common; no.", ["yes", "no"], "no"),
    ],
)
def test_the_grader_reads_the_label_an_answer_commits_to(
    response: str, labels: list[str], expected: str | None
) -> None:
    assert grader().extract_label(response, labels) == expected


def test_a_broken_task_spec_is_refused_naming_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "task.yaml"
    spec.write_text("name: t\ngrader: g.py\nsubtasks: {a: {title: A, description: d, labels: [x]}}")
    with pytest.raises(CoimproveError, match=r"task\.yaml:\d+: subtasks\.a\.labels"):
        bc.load_task(spec)
    spec.write_text(
        "name: t\ngrader: g.py\nsubtasks: {a: {title: A, description: d, labels: [x, y],"
        " seeds: [{prompt: p, answer: x, label: z}]}}"
    )
    with pytest.raises(CoimproveError, match=r"seeds\.0\.label"):
        bc.load_task(spec)


@pytest.mark.docker
@pytest.mark.usefixtures("python_image")
async def test_every_seed_item_passes_the_grader_in_the_sandbox_and_scores_work() -> None:
    task, source, _ = bc.load_task(bc.DEFAULT_TASK)
    items = [
        {"ref": f"{name}-{i}", "subtask": name, **seed.model_dump()}
        for name, sub in task.subtasks.items()
        for i, seed in enumerate(sub.seeds)
    ]
    # answers: right for the first item of each subtask, wrong for the rest
    responses = [
        {"ref": it["ref"], "response": it["label"] if it["ref"].endswith("-0") else "unsure"}
        for it in items
    ]
    rows = "".join(json.dumps(i) + "\n" for i in items)
    spec = ExperimentSpec(
        command="python3 grader.py check task.json items.jsonl out/checks.json && "
        "python3 grader.py score task.json items.jsonl responses.jsonl out/metrics.json",
        files={
            "grader.py": source,
            "task.json": json.dumps(task.labels),
            "items.jsonl": rows,
            "responses.jsonl": "".join(json.dumps(r) + "\n" for r in responses),
        },
    )
    result = await run_experiment(spec, image="python", run_id="test-reflectivity")
    assert result.ok, result.stderr
    checks = json.loads(next(a for a in result.artifacts if a.name == "out/checks.json").content)
    failing = {ref: c["problems"] for ref, c in checks["items"].items() if c["problems"]}
    assert failing == {}
    assert result.metrics is not None
    assert result.metrics["n"] == len(items)
    assert result.metrics["accuracy"] == pytest.approx(5 / len(items))
    assert set(result.metrics["by_subtask"]) == set(LABELS)
