"""What a panel scores: a task (label sets and grader) and a release (items with gold labels).

`load_task` reads a task spec YAML (as ``benchmark_cocreation`` ships them: ``subtasks.<name>.
labels`` and a ``grader`` script beside it); `load_release` reads a release folder
(``items.jsonl`` + ``manifest.json``, checked against each other by `coimprove.datasheet`) and
checks every item against the task: a known subtask, and a gold label that is one of its options.
Every refusal is an `EvalError` naming the file, the item and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coimprove._yaml import load_yaml_data
from coimprove.datasheet import DatasheetError, read_release, task_labels
from coimprove.errors import CoimproveError


class EvalError(CoimproveError):
    """A panel cannot score a release: bad task, bad release, a failing member or grader."""


class EvalTask(BaseModel):
    """The parts of a task spec a panel needs: options per subtask and the grader's source."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    labels: dict[str, tuple[str, ...]] = Field(description="subtask -> its options, in order")
    grader: str = Field(description="the grader script's file name, relative to the spec")
    grader_source: str


class PanelItem(BaseModel):
    """One release item as the panel sees it. Model answerers read `prompt` and `options`
    only; scripted answerers may read `label` (that is how their skill is known)."""

    model_config = ConfigDict(frozen=True)

    ref: str = Field(min_length=1)
    subtask: str
    prompt: str
    options: tuple[str, ...] = Field(min_length=2)
    label: str


class Release(BaseModel):
    """A release folder's items, checked against a task."""

    model_config = ConfigDict(frozen=True)

    path: str
    name: str
    version: str
    items: tuple[PanelItem, ...] = Field(min_length=1)
    manifest: dict[str, Any] = Field(default_factory=dict)


def load_task(path: str | os.PathLike[str]) -> EvalTask:
    """The task spec at `path` (label sets and grader), or an `EvalError` naming the field."""
    file = Path(path)
    try:
        labels = task_labels(file)
    except DatasheetError as exc:
        raise EvalError(str(exc)) from exc
    data, _ = load_yaml_data(file, error=EvalError)
    grader = data.get("grader") if isinstance(data, dict) else None
    if not isinstance(grader, str) or not grader:
        raise EvalError(f"task spec {file}: @grader: missing (the grader script's file name)")
    try:
        source = (file.parent / grader).read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"task spec {file}: @grader: {grader!r} cannot be read: {exc}") from exc
    for name, options in labels.items():
        if len(set(options)) != len(options):
            raise EvalError(f"task spec {file}: @subtasks.{name}.labels: repeated option")
    return EvalTask(
        name=str(data.get("name") or file.stem),
        path=str(file),
        labels={k: tuple(v) for k, v in labels.items()},
        grader=grader,
        grader_source=source,
    )


def load_release(folder: str | os.PathLike[str], task: EvalTask) -> Release:
    """The release in `folder`, every item checked against `task` (clear errors, line named)."""
    root = Path(folder)
    try:
        rows, manifest, _ = read_release(root)
    except DatasheetError as exc:
        raise EvalError(str(exc)) from exc
    where = root / "items.jsonl"
    items: list[PanelItem] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, 1):
        ref = str(row["id"])
        options = task.labels.get(str(row["subtask"]))
        if options is None:
            raise EvalError(
                f"{where}:{n}: item {ref}: @subtask: {row['subtask']!r} is not a subtask of task "
                f"{task.name} ({task.path}; it has {sorted(task.labels)})"
            )
        if row["label"] not in options:
            raise EvalError(
                f"{where}:{n}: item {ref}: @label: the gold label {row['label']!r} is not one of "
                f"the options {list(options)} of subtask {row['subtask']}"
            )
        if ref in seen:
            raise EvalError(f"{where}:{n}: item {ref}: @id: repeated")
        seen.add(ref)
        items.append(
            PanelItem(
                ref=ref,
                subtask=str(row["subtask"]),
                prompt=str(row["prompt"]),
                options=options,
                label=str(row["label"]),
            )
        )
    return Release(
        path=str(root),
        name=str(manifest.get("name") or root.parent.name),
        version=str(manifest["version"]),
        items=tuple(items),
        manifest=manifest,
    )
