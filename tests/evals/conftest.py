"""Shared pieces for the panel tests: a planted release and a grader that needs no Docker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from coimprove.evals import EvalTask, PanelItem, Release
from tests.sandbox.conftest import docker_client, python_image  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "graphs" / "data" / "stable_reflectivity" / "task.yaml"
SHIPPED = ROOT / "graphs" / "data" / "stable_reflectivity" / "releases" / "stable_reflectivity"
LABELS = {"a": ("yes", "no"), "b": ("increase", "decrease", "unchanged")}


def planted_items(n: int) -> list[PanelItem]:
    """`n` items over two subtasks, gold labels spread over the options."""
    out = []
    for k in range(n):
        sub = "a" if k % 2 == 0 else "b"
        options = LABELS[sub]
        out.append(
            PanelItem(
                ref=f"i{k:04d}",
                subtask=sub,
                prompt=f"Case {k}. Answer " + " or ".join(f'"{o}"' for o in options) + ".",
                options=options,
                label=options[(k // 2) % len(options)],
            )
        )
    return out


def planted_release(n: int) -> Release:
    return Release(
        path=f"<planted {n}>", name="planted", version="v0", items=tuple(planted_items(n))
    )


def planted_task() -> EvalTask:
    return EvalTask(
        name="planted", path="<planted>", labels=LABELS, grader="g.py", grader_source=""
    )


class ExactMatchGrader:
    """Scores a response 1 when it is exactly the gold label (the unit tests' grader; the
    sandboxed task grader has its own tests). Records that it was called."""

    def __init__(self) -> None:
        self.calls = 0

    async def score(
        self,
        task: EvalTask,
        items: Sequence[PanelItem],
        responses: Mapping[str, Sequence[str]],
    ) -> dict[str, list[int]]:
        self.calls += 1
        return {
            name: [int(r == i.label) for i, r in zip(items, got, strict=True)]
            for name, got in responses.items()
        }
