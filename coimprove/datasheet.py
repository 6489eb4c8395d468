"""Datasheets of dataset releases: every figure computed from the release's own files.

    python -m coimprove.datasheet RELEASE_DIR [--task TASK.yaml] [--panel-scores SCORES.json]

reads ``RELEASE_DIR/items.jsonl`` and ``manifest.json`` (as ``benchmark_cocreation`` publishes
them), checks them (the manifest's version and digest match the items; with ``--task``, every
gold label is one of its subtask's labels) and writes ``RELEASE_DIR/DATASHEET.md``: how the items
were made (template-derived parts said plainly), what was checked, counts and label distribution
per subtask, drafting figures (model-written vs template scenario lines, tries), and known limits.
Panel scores are a slot: give ``--panel-scores`` a JSON file (see `PanelScores`) and the sheet
shows them; without it the section says they are not measured yet. Bad input raises
`DatasheetError` naming the file and line; nothing is written then.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coimprove._yaml import load_yaml_data
from coimprove.datasets import content_version
from coimprove.errors import CoimproveError

DATASHEET_FILE = "DATASHEET.md"


class DatasheetError(CoimproveError):
    """A release cannot be described (missing or inconsistent files, bad labels)."""


class PanelMember(BaseModel):
    """One panel member's score on the release (written by the panel's code)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    accuracy: float = Field(ge=0, le=1)
    ci95: tuple[float, float] | None = None
    n: int | None = Field(None, ge=0)
    by_subtask: dict[str, float] = Field(default_factory=dict)


class PanelScores(BaseModel):
    """The ``--panel-scores`` file: members' scores, and how they were measured."""

    model_config = ConfigDict(extra="allow")

    release_version: str = Field(description="the version the scores were measured on")
    method: str = ""
    members: list[PanelMember] = Field(min_length=1)


def read_release(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The release's rows, manifest and items text (checked against each other)."""
    items_path, manifest_path = folder / "items.jsonl", folder / "manifest.json"
    for path in (items_path, manifest_path):
        if not path.is_file():
            raise DatasheetError(f"release {folder}: {path.name} is missing")
    text = items_path.read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasheetError(f"{items_path}:{n}: not JSON: {exc}") from exc
        missing = [k for k in ("id", "subtask", "prompt", "answer", "label") if k not in row]
        if not isinstance(row, dict) or missing:
            raise DatasheetError(f"{items_path}:{n}: an item needs the fields {missing}")
        rows.append(row)
    if not rows:
        raise DatasheetError(f"release {folder}: items.jsonl holds no items (an empty release)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasheetError(f"{manifest_path}: not JSON: {exc}") from exc
    version = content_version(text)
    if manifest.get("version") != version:
        raise DatasheetError(
            f"{manifest_path}: version {manifest.get('version')!r} does not match the items "
            f"(content version {version})"
        )
    digest = (manifest.get("files") or {}).get("items.jsonl", {}).get("sha256")
    if digest != hashlib.sha256(text.encode()).hexdigest():
        raise DatasheetError(f"{manifest_path}: files.items.jsonl.sha256 does not match the items")
    return rows, manifest, text


def task_labels(path: Path) -> dict[str, list[str]]:
    """Subtask -> labels of a task spec YAML (clear errors for a missing label set)."""
    data, _ = load_yaml_data(path, error=DatasheetError)  # bounded; file:line errors
    subtasks = (data or {}).get("subtasks") if isinstance(data, dict) else None
    if not isinstance(subtasks, dict) or not subtasks:
        raise DatasheetError(f"task spec {path}: @subtasks: no subtasks")
    out = {}
    for name, sub in subtasks.items():
        labels = (sub or {}).get("labels") if isinstance(sub, dict) else None
        if not isinstance(labels, list) or len(labels) < 2:
            raise DatasheetError(f"task spec {path}: @subtasks.{name}.labels: missing label set")
        out[str(name)] = [str(x) for x in labels]
    return out


def check_labels(rows: list[dict[str, Any]], labels: dict[str, list[str]], where: Path) -> None:
    """Every row's subtask is the task's and its gold label one of that subtask's labels."""
    for n, row in enumerate(sorted(rows, key=lambda r: str(r["id"])), 1):
        allowed = labels.get(row["subtask"])
        if allowed is None:
            raise DatasheetError(
                f"{where}:{n}: item {row['id']}: unknown subtask {row['subtask']!r}"
            )
        if row["label"] not in allowed:
            raise DatasheetError(
                f"{where}:{n}: item {row['id']}: gold label {row['label']!r} is not one of "
                f"{allowed}"
            )


def _pct(k: int, n: int) -> str:
    return f"{k} ({100 * k / n:.1f}%)" if n else "0"


def _prov(row: dict[str, Any]) -> dict[str, Any]:
    prov = row.get("provenance")
    return prov if isinstance(prov, dict) else {}


def render(
    rows: list[dict[str, Any]],
    manifest: dict[str, Any],
    *,
    panel: PanelScores | None = None,
) -> str:
    """The datasheet's Markdown (every number counted from `rows` and `manifest`)."""
    n = len(rows)
    subtasks = sorted({r["subtask"] for r in rows})
    by_sub = {s: [r for r in rows if r["subtask"] == s] for s in subtasks}
    method = Counter(_prov(r).get("method", "unrecorded") for r in rows)
    scen = Counter(_prov(r).get("scenario", "unrecorded") for r in rows)
    tries = Counter(_prov(r).get("tries") for r in rows if _prov(r).get("method") == "template")
    edited = sum(1 for r in rows if _prov(r).get("reviewer_edit"))
    agree = Counter((r.get("checks") or {}).get("label_check", "unrecorded") for r in rows)
    templates = Counter(_prov(r).get("template", "none") for r in rows)
    slot_ok = sum(1 for r in rows if _prov(r).get("template_label") in (None, r["label"]))
    source = Counter((r.get("source") or {}).get("review", "unrecorded") for r in rows)
    reviewers = Counter(
        reviewer for r in rows for reviewer in (r.get("source") or {}).get("reviewers", [])
    )
    drafting = manifest.get("drafting") or {}
    checks = manifest.get("checks") or {}
    task = manifest.get("task") or {}
    lines = [
        f"# Datasheet: {manifest.get('name')} `{manifest.get('version')}`",
        "",
        "_Generated by `python -m coimprove.datasheet` from this folder's items.jsonl and "
        "manifest.json; every figure below is counted from them. Do not edit by hand._",
        "",
        f"{n} items in {len(subtasks)} subtasks; task {task.get('name')} v{task.get('version')} "
        f"(`{str(task.get('digest', ''))[:19]}…`), arm {manifest.get('arm')}.",
        "",
        "## How the items were made",
        "",
        f"- Drafting method: {', '.join(f'{k} {_pct(v, n)}' for k, v in sorted(method.items()))}.",
        f"- **Template-derived parts.** For `template` items the facts, the question, the "
        f"options, the gold label, the reference answer and the rationale are all filled in from "
        f"slot lexicons by the task's templates ({drafting.get('templates')}); the gold label is "
        f"a function of the slots. Items whose recorded template label equals the gold label: "
        f"{_pct(slot_ok, n)}.",
        f"- The only model-written text is the scenario line that opens a prompt (a user's "
        f"request about a topic; context only, it never decides the label). Drafting model: "
        f"{drafting.get('model')}; model share asked: {drafting.get('model_share')}; at most "
        f"{drafting.get('max_tries')} tries per item.",
        "- Scenario line written by: "
        + ", ".join(f"{k} {_pct(v, n)}" for k, v in sorted(scen.items()))
        + " (`template` = a fixed line, used when the model's share did not cover the item or "
        "no try gave a usable line).",
        "- Tries per templated item: "
        + (
            ", ".join(f"{k}: {v}" for k, v in sorted(tries.items(), key=lambda kv: kv[0] or 0))
            or "none"
        )
        + ".",
        "- Paraphrases by the model: "
        f"{sum(1 for r in rows if _prov(r).get('paraphrase'))} "
        + (
            "(none are made by this pipeline)."
            if "paraphrase_share" not in drafting
            else f"(share asked: {drafting.get('paraphrase_share')}; a paraphrase replaces the "
            "model's drafted line only when its cosine to it is below "
            f"{drafting.get('paraphrase_max_cosine')}, it keeps the slot values the line named "
            "and the second labelling agrees)."
        ),
        "- Templates used: " + ", ".join(f"`{k}` {v}" for k, v in sorted(templates.items())) + ".",
        f"- Review at the gate: {', '.join(f'{k} {v}' for k, v in sorted(source.items()))}; "
        f"items with a reviewer edit: {edited}. Reviewers: "
        + (", ".join(f"{k} ({v} items)" for k, v in sorted(reviewers.items())) or "none")
        + ". A reviewer id of a scripted profile (e.g. `careful-0`) is a simulated stand-in, "
        "not a person.",
        "",
        "## What was checked (every item passed before admission)",
        "",
        f"- The task's grader ({checks.get('grader')}) in a Docker sandbox: answerable (the "
        "prompt states every option, the gold label is one of them, no giveaway) and "
        "label-consistent (the reference answer names exactly the gold label).",
        f"- Near-duplicates: {checks.get('embedder')} embeddings, cosine threshold "
        f"{checks.get('duplicate_threshold')}, against the seeds, earlier items and the batch.",
        f"- Second labelling ({checks.get('labeller')}): a rule reading the prompt text "
        "(cue words, and which sentence holds the value a quoted behaviour belongs to), blind "
        "to the gold label and the slots; a disagreement flags the item and keeps it out. "
        "Results: " + ", ".join(f"{k} {_pct(v, n)}" for k, v in sorted(agree.items())) + ".",
        "",
        "## Items and labels per subtask",
        "",
        "| subtask | items | label distribution | scenario by model |",
        "|---|---|---|---|",
    ]
    for s in subtasks:
        sub_rows = by_sub[s]
        labels = Counter(r["label"] for r in sub_rows)
        by_model = sum(1 for r in sub_rows if _prov(r).get("scenario") == "model")
        lines.append(
            f"| {s} | {len(sub_rows)} | "
            + ", ".join(f"{k} {_pct(v, len(sub_rows))}" for k, v in sorted(labels.items()))
            + f" | {_pct(by_model, len(sub_rows))} |"
        )
    distinct_facts = len({r["prompt"].split('"', 2)[-1] for r in rows})
    lines += [
        "",
        "## Known limits",
        "",
        "- The label-bearing text is template text: a handful of sentence frames per subtask "
        "filled from small lexicons (values, parties, changes, events). A model can learn the "
        "frames; scores say how well it reads these frames, not how it reasons about its values "
        "in open conversation.",
        f"- Distinct prompt tails (text after the scenario line): {distinct_facts} of {n}.",
        "- The second labelling reads the same surface cues the templates put in; it catches "
        "a scenario line or an edit that contradicts the facts, not a wrong template.",
        "- The scenario lines of a 135M model are often generic or clumsy; they are context only.",
        "- The gates were answered as the review list above says; a scripted stand-in is not a "
        "human judgement of the items.",
        "",
        "## Panel scores",
        "",
    ]
    if panel is None:
        lines.append(
            "Not measured yet. Regenerate with `--panel-scores SCORES.json` (a `PanelScores` "
            "object: release_version, method, members with name, accuracy, ci95, n, by_subtask)."
        )
    else:
        if panel.release_version != manifest.get("version"):
            raise DatasheetError(
                f"panel scores were measured on {panel.release_version}, not on this release "
                f"({manifest.get('version')})"
            )
        lines += [
            panel.method or "",
            "",
            "| member | accuracy | 95% CI | n | " + " | ".join(subtasks) + " |",
            "|---|---|---|---|" + "---|" * len(subtasks),
        ]
        for m in panel.members:
            ci = f"[{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]" if m.ci95 else "—"
            subs = " | ".join(
                f"{m.by_subtask[s]:.3f}" if s in m.by_subtask else "—" for s in subtasks
            )
            lines.append(f"| {m.name} | {m.accuracy:.3f} | {ci} | {m.n or '—'} | {subs} |")
    return "\n".join(lines) + "\n"


def write_datasheet(
    folder: str | os.PathLike[str],
    *,
    task: str | os.PathLike[str] | None = None,
    panel_scores: str | os.PathLike[str] | None = None,
) -> Path:
    """Check the release in `folder` and write its DATASHEET.md (atomically); returns its path."""
    root = Path(folder)
    rows, manifest, _ = read_release(root)
    if task is not None:
        check_labels(rows, task_labels(Path(task)), root / "items.jsonl")
    panel = None
    if panel_scores is not None:
        path = Path(panel_scores)
        try:
            panel = PanelScores.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DatasheetError(f"panel scores {path}: {exc}") from exc
        except ValidationError as exc:
            where = "; ".join(
                f"@{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise DatasheetError(f"panel scores {path}: {where}") from exc
    text = render(rows, manifest, panel=panel)
    fd, tmp = tempfile.mkstemp(prefix=".datasheet-", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, root / DATASHEET_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return root / DATASHEET_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coimprove.datasheet", description=__doc__)
    parser.add_argument("release", type=Path, help="a release folder (items.jsonl, manifest.json)")
    parser.add_argument("--task", type=Path, default=None, help="task spec YAML (label check)")
    parser.add_argument("--panel-scores", type=Path, default=None, help="PanelScores JSON")
    args = parser.parse_args(argv)
    try:
        path = write_datasheet(args.release, task=args.task, panel_scores=args.panel_scores)
    except CoimproveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
