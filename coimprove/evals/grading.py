"""Grading panel answers with the task's own grader, in the sandbox where it runs today.

A `Grader` turns every member's responses into per-item scores (1 right, 0 wrong). `SandboxGrader`
runs the task's grader script (its ``score`` mode, unchanged) in a Docker sandbox, one container
per release for the whole panel. The grader reports accuracy per subtask; to get per-item scores
without editing it (its source is part of the task digest a shipped release pins), each item is
sent as a subtask of its own (its ref), with its real subtask's options: the grader's accuracy
for that one-item group is the item's score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

from coimprove.evals.release import EvalError, EvalTask, PanelItem
from coimprove.sandbox import ExperimentSpec, run_experiment

# Runs inside the sandbox after the grader: gathers the grader's per-member outputs into one
# JSON object (member index -> the item scores in order, as a 0/1 string). Standard library only.
_COLLECT = """
import json, sys
refs = [json.loads(line)["ref"] for line in open("items.jsonl", encoding="utf-8")]
out = {}
for k in range(int(sys.argv[1])):
    got = json.load(open(f"out/m{k}.json", encoding="utf-8"))["by_subtask"]
    bad = [r for r in refs if r not in got or got[r]["n"] != 1]
    if bad:
        raise SystemExit(f"member {k}: the grader scored no single response for {bad[:3]}")
    out[f"m{k}"] = "".join("1" if got[r]["accuracy"] == 1 else "0" for r in refs)
json.dump({"scores": out}, open("out/metrics.json", "w", encoding="utf-8"))
"""


class Grader(Protocol):
    """Scores each member's responses, per item (in the order of `items`)."""

    async def score(
        self,
        task: EvalTask,
        items: Sequence[PanelItem],
        responses: Mapping[str, Sequence[str]],
    ) -> dict[str, list[int]]: ...


class SandboxGrader:
    """The task's grader script run in a `coimprove` Docker sandbox (``image``, no network)."""

    def __init__(self, *, image: str = "python", timeout_s: float = 300.0) -> None:
        self.image, self.timeout_s = image, timeout_s

    async def score(
        self,
        task: EvalTask,
        items: Sequence[PanelItem],
        responses: Mapping[str, Sequence[str]],
    ) -> dict[str, list[int]]:
        names = list(responses)
        for name in names:
            if len(responses[name]) != len(items):
                raise EvalError(
                    f"panel member {name!r} gave {len(responses[name])} responses for "
                    f"{len(items)} items"
                )
        spec_labels = {i.ref: {"labels": list(i.options)} for i in items}
        rows = "".join(
            json.dumps({"ref": i.ref, "subtask": i.ref, "label": i.label}) + "\n" for i in items
        )
        files = {
            task.grader: task.grader_source,
            "task.json": json.dumps(spec_labels),
            "items.jsonl": rows,
            "collect.py": _COLLECT,
        }
        for k, name in enumerate(names):
            files[f"responses/m{k}.jsonl"] = "".join(
                json.dumps({"ref": i.ref, "response": r}) + "\n"
                for i, r in zip(items, responses[name], strict=True)
            )
        script = (
            "set -e; mkdir -p out; "
            f"for k in $(seq 0 {len(names) - 1}); do "
            f'python3 {task.grader} score task.json items.jsonl "responses/m$k.jsonl" '
            '"out/m$k.json"; done; '
            f"python3 collect.py {len(names)}"
        )
        spec = ExperimentSpec(
            command=["sh", "-c", script], files=files, timeout_s=self.timeout_s, collect=[]
        )
        result = await run_experiment(spec, image=self.image)
        scores = (result.metrics or {}).get("scores")
        if not result.ok or not isinstance(scores, dict):
            raise EvalError(
                f"the grader {task.grader} of task {task.name} failed in the sandbox "
                f"({result.ended_by}, exit {result.exit_code}): "
                f"{result.metrics_error or ''} {result.stderr[-800:]}".strip()
            )
        out: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            bits = scores.get(f"m{k}")
            if not isinstance(bits, str) or len(bits) != len(items) or set(bits) - {"0", "1"}:
                raise EvalError(f"the grader returned no usable scores for member {name!r}")
            out[name] = [int(b) for b in bits]
        return out
