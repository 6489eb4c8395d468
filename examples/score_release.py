"""Score a benchmark release with the panel and say how well it discriminates.

    python examples/score_release.py RELEASE_DIR [--task TASK.yaml] [--model local ...]
        [--out SCORES.json] [--datasheet-out PANEL.json] [--resamples 1000]

e.g. ``python examples/score_release.py
graphs/data/stable_reflectivity/releases/stable_reflectivity/4f09d9ca4d61 --model none``
(scripted members only, about a minute) or ``--model local`` (adds SmolLM2 in two prompt
variants; about 1-2 s per item and variant). Every member's answers are graded per item by the
task's grader in the Docker sandbox. Prints each member's accuracy with a 95% bootstrap
interval, the spread, mean item discrimination and ranking recovery; with ``--out`` writes a
JSON file (measures and per-item scores) and with ``--datasheet-out`` the members' scores in
`coimprove.datasheet.PanelScores` form (for ``python -m coimprove.datasheet RELEASE
--panel-scores PANEL.json``); files are written only once everything succeeded, atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from coimprove.errors import CoimproveError
from coimprove.evals import SandboxGrader, default_panel, load_release, load_task, measure
from coimprove.evals.panel import PanelScores

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "graphs" / "data" / "stable_reflectivity" / "task.yaml"


def datasheet_scores(
    scores: PanelScores, members: dict[str, tuple[float, float] | None]
) -> dict[str, object]:
    """The `coimprove.datasheet.PanelScores` form of the result."""
    out = []
    for m in scores.members:
        by: dict[str, list[int]] = defaultdict(list)
        for sub, s in zip(scores.subtasks, m.scores, strict=True):
            by[sub].append(s)
        out.append(
            {
                "name": m.name,
                "kind": m.kind,
                "accuracy": m.accuracy,
                "ci95": members[m.name],
                "n": len(m.scores),
                "by_subtask": {k: sum(v) / len(v) for k, v in sorted(by.items())},
            }
        )
    return {
        "release_version": scores.version,
        "method": "coimprove.evals panel, graded per item by the task's grader in the Docker "
        "sandbox; 95% intervals by bootstrap over items. Scripted members (all but the "
        "model ones) are answerers of known skill, not models.",
        "members": out,
    }


def write_json(path: Path, payload: object) -> None:
    """Write `payload` to `path` atomically (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(prefix=".scores-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def main(args: argparse.Namespace) -> int:
    task = load_task(args.task)
    release = load_release(args.release, task)
    models = [] if args.model == "none" else args.model
    panel = default_panel(task, models=models)
    scores = await panel.score(task, release, SandboxGrader())
    found = measure(scores, resamples=args.resamples, per_item=args.out is not None)
    print(f"release {release.name} {release.version}: {len(release.items)} items")
    print(f"{'member':<34} {'kind':<9} {'known':>6}  accuracy [95% CI]")
    for m in found.members:
        known = "—" if m.known_skill is None else f"{m.known_skill:.3f}"
        print(f"{m.name:<34} {m.kind:<9} {known:>6}  {m.accuracy}")
    print(f"spread of member accuracies   {found.spread}")
    print(f"mean item discrimination      {found.mean_discrimination}")
    print(f"items that discriminate       {100 * found.discriminating_share:.1f}%")
    print(f"ranking rho (known skill)     {found.ranking_spearman}")
    if args.out is not None or args.datasheet_out is not None:
        intervals: dict[str, tuple[float, float] | None] = {}
        for m in found.members:
            lo, hi = m.accuracy.lo, m.accuracy.hi
            intervals[m.name] = (lo, hi) if lo is not None and hi is not None else None
        payload = {
            "measures": found.model_dump(mode="json"),
            "scores": scores.model_dump(mode="json"),
            "datasheet": datasheet_scores(scores, intervals),
        }
        written = []
        if args.out is not None:
            await asyncio.to_thread(write_json, Path(args.out), payload)
            written.append(str(args.out))
        if args.datasheet_out is not None:
            await asyncio.to_thread(write_json, Path(args.datasheet_out), payload["datasheet"])
            written.append(str(args.datasheet_out))
        print("wrote " + " and ".join(written))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="score a release with the panel")
    parser.add_argument("release", type=Path)
    parser.add_argument("--task", type=Path, default=TASK)
    parser.add_argument(
        "--model", action="append", default=None, help="model spec (repeat); 'none': no model"
    )
    parser.add_argument("--out", type=Path, default=None, help="measures + scores JSON")
    parser.add_argument(
        "--datasheet-out", type=Path, default=None, help="PanelScores JSON for the datasheet"
    )
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    if args.model is None:
        args.model = ["local"]
    elif "none" in args.model:
        args.model = "none"
    try:
        code = asyncio.run(main(args))
    except CoimproveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    raise SystemExit(code)
