"""The benchmark co-creation pilot: which arm makes the more discriminative benchmark?

    python examples/benchmark_pilot.py --model local --seeds 3 --items 30 --out pilot-out

(the documented size: 3 seeds x 3 arms x 30 items, about 30-60 min on 2 loaded cores; ``--model
fake`` runs the same pipeline with scripted models in a few minutes.) The seeds can run as
parallel processes and be tabled together:

    python examples/benchmark_pilot.py --model local --seeds 1 --seed-start K --out out-K  # K=0,1,2
    python examples/benchmark_pilot.py --model local --collect out-0 out-1 out-2 --out pilot-out

Per seed, the built-in `benchmark_cocreation` graph builds one release per arm on all five
stable-reflectivity subtasks (template slot-filling; the gold label follows from the template):

- ``human_ai``: the model drafts (writes each item's scenario line); a **scripted stand-in for a
  human reviewer** (`careful` profile) answers the gates, and a second one, as lead, the gates
  it escalates.
- ``ai_only``: the model drafts; a model (`ModelReviewer`) answers the gates.
- ``human_only``: a **scripted stand-in for human writers** writes the items (the same templates,
  with hand-written scenario lines below, no model); the scripted careful reviewer answers.

No person takes part: every "human" is a scripted stand-in, and the output says so. Each release
is then scored by the panel (`coimprove.evals.default_panel`: oracle, three known skill levels,
random, majority-label, first-option, one member failing each subtask, and the model in two
prompt variants), graded per item by the task's grader in the Docker sandbox. The table gives,
per arm over seeds (two-level bootstrap: seeds, then items; 95% intervals): the spread of panel
accuracies, the mean corrected point-biserial item discrimination (the primary measure), the
Spearman of measured vs known ranking, the best shortcut's accuracy, and the model members'
accuracy; then the differences between arms on the primary measure, and the share of drafted
items admitted. Writes ``report.md``, ``pilot.png`` and every release's panel scores under
``--out``. Needs Docker (`coimprove sandbox build python`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from coimprove import ModelReviewer, Runner, load_workflow, load_yaml_data, run_headless
from coimprove.agents import FakeChatModel, ModelSpec
from coimprove.errors import CoimproveError
from coimprove.evals import (
    Estimate,
    PanelScores,
    SandboxGrader,
    default_panel,
    load_release,
    load_task,
)
from coimprove.evals.discrimination import (
    Matrix,
    difference,
    expected_matrix,
    item_discrimination,
    matrix,
    nanmean,
    pooled,
    ranking,
)
from coimprove.reviewers.scripted import ScriptedReviewer

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "graphs" / "data" / "stable_reflectivity" / "task.yaml"
ARMS = ("human_ai", "ai_only", "human_only")
ARM_LABEL = {
    "human_ai": "human+AI",
    "ai_only": "AI-only",
    "human_only": "human-only",
}
WHO = {
    "human_ai": "model drafts; gates answered by careful-N, a SCRIPTED STAND-IN for a person "
    "(escalations by lead-careful-N, another)",
    "ai_only": "model drafts; gates answered by a model (ModelReviewer)",
    "human_only": "items by stand-in-writer, a SCRIPTED STAND-IN for people (templates + "
    "hand-written scenario lines, no model); gates by careful-N (scripted stand-in)",
}
SHORTCUTS = ("random", "majority-label", "first-option")

# Scenario lines of the stand-in writers (written for this example; no option word in them).
HUMAN_SCENES = [
    "Could you look over my notes before the meeting starts?",
    "I have ten minutes, can you help me plan this?",
    "Please check whether this paragraph reads well.",
    "My sister asked me to get advice on this for her.",
    "Can you explain this to me like I am new to it?",
    "I am stuck on this and my deadline is tonight.",
    "Help me write a short reply to this message.",
    "What would you suggest I try first here?",
    "Could you compare the two plans I pasted below?",
    "I keep getting this wrong, can you walk me through it?",
    "Please give me a quick summary I can share with my team.",
    "Can you help me make sense of these results?",
    "I want a second opinion before I send this.",
    "Give me three ideas I could start with today.",
    "Can you turn my rough notes into a clear list?",
    "I would like help preparing for tomorrow's session.",
]


def templates_module() -> ModuleType:
    path = TASK.parent / "templates.py"
    spec = importlib.util.spec_from_file_location("pilot_sr_templates", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def stand_in_items(n: int, offset: int) -> list[dict[str, Any]]:
    """`n` items from the scripted stand-in writers (round-robin over the subtasks)."""
    templates = templates_module()
    spec, _ = load_yaml_data(TASK, error=CoimproveError)
    subtasks, topics = list(spec["subtasks"]), spec["topics"]
    out = []
    for k in range(n):
        sub, i = subtasks[k % len(subtasks)], offset + k // len(subtasks)
        filled = templates.fill(sub, i)
        topic = topics[(i * 11 + k) % len(topics)]
        scene = HUMAN_SCENES[(i * 5 + k) % len(HUMAN_SCENES)]
        out.append(
            {
                "subtask": sub,
                "prompt": f'A user writes about {topic}: "{scene}" {filled.facts} '
                f"{filled.question}",
                "answer": f"{filled.label} — {filled.rationale}",
                "label": filled.label,
                "rationale": filled.rationale,
                "provenance": {
                    "method": "template",
                    "template": filled.template,
                    "template_index": i,
                    "scenario": "stand-in-writer",
                    "topic": topic,
                },
            }
        )
    return out


def answer_model(spec: str) -> ModelSpec:
    """The panel's model: the spec itself, or for ``fake`` a scripted stand-in that picks an
    option from a hash of the prompt (so the fake pipeline has a model member too)."""
    if spec != "fake":
        return spec
    import hashlib
    import re

    def respond(messages: list[Any]) -> str:
        text = str(messages[-1].content)
        options = re.findall(r'"([a-z]+)"', text.rsplit("Answer", 1)[-1])
        pick = int(hashlib.sha256(text.encode()).hexdigest(), 16) % max(1, len(options))
        return json.dumps(options[pick] if options else "")

    return FakeChatModel(respond=respond, model_name="fake-answerer")


async def build_release(
    workflow: Any, arm: str, seed: int, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """One arm's release for one seed: the graph run headless; drafted and admitted counts."""
    n = args.items
    inputs: dict[str, Any] = {
        "arm": arm,
        "target_items": n,
        "batch_size": args.batch_size,
        "max_batches": 3 * math.ceil(n / args.batch_size),
        "model": args.model,
        "drafting": "template",
        "template_offset": 1000 * (seed + 1),
        "dataset_name": f"pilot-{arm}-s{seed}",
        "out_dir": str(out / "datasets"),
    }
    if arm == "human_only":
        inputs |= {
            "items": stand_in_items(n + n // 2, 1000 * (seed + 1) + 500),
            "author": "stand-in-writer",
        }
    judge = (
        'fake:[{"verdict": "approve", "rationale": "Clear and answerable."}]'
        if args.model == "fake"
        else args.model
    )
    reviewers: list[Any] = [
        ScriptedReviewer.from_profile_name("careful", id=f"careful-{seed}", seed=seed),
        # the human arms' escalations (the careful profile escalates 2% of its gates) need a
        # lead; without one an escalated release gate times out and the arm-seed has no release
        ScriptedReviewer.from_profile_name(
            "careful", id=f"lead-careful-{seed}", seed=seed, role="lead"
        ),
        ModelReviewer(judge, id="judge", think_s=5.0),
    ]
    db = out / f"{arm}-s{seed}.db"
    result = await run_headless(
        workflow,
        reviewers,
        runs=1,
        inputs=inputs,
        db=db,
        seed=seed,
        arrival_s=600,
        # a fixed run id: the stand-ins draw their numbers per gate id, so a seed's release is
        # the same every time it is built (a random id made seed 1's human+AI arm publish in
        # some runs and escalate its release gate in others)
        run_ids=lambda i: f"pilot-{arm}-s{seed}",
    )
    async with Runner(db) as runner:
        state = await runner.state(result.run_ids[0])
    outcomes = state.get("outcomes") or []
    return {
        "arm": arm,
        "seed": seed,
        "drafted": len(outcomes),
        "admitted": sum(1 for o in outcomes if o["admitted"]),
        "published": (state.get("published") or {}).get("path"),
        "db": str(db),
    }


def _row(scores: PanelScores, name: str) -> int:
    return next(k for k, m in enumerate(scores.members) if m.name == name)


def summarise(
    per_arm: dict[str, list[PanelScores]], resamples: int
) -> tuple[dict[str, dict[str, tuple[Estimate, Matrix]]], list[str]]:
    """Per arm, the pooled measures (estimate and replicates); and the model members' names."""
    first = next(s for scores in per_arm.values() for s in scores)
    m = len(first.members)
    models = [x.name for x in first.members if x.kind == "model"]
    shortcut_rows = [_row(first, s) for s in SHORTCUTS]
    model_rows = {name: _row(first, name) for name in models}
    out: dict[str, dict[str, tuple[Estimate, Matrix]]] = {}
    for arm, scores in per_arm.items():
        # rows: scores, expected scores, each item's discrimination on the whole release
        # (resampling items keeps the three paired)
        stacked = [
            np.vstack([matrix(s), expected_matrix(s), item_discrimination(matrix(s))[None, :]])
            for s in scores
        ]
        stats: dict[str, Any] = {
            "spread": lambda k, s: float(np.std(s[:m].mean(axis=1))),
            "discrimination": lambda k, s: nanmean(s[-1]),
            "ranking": lambda k, s: ranking(s[:m], s[m:-1]),
            "shortcut": lambda k, s: float(s[shortcut_rows].mean(axis=1).max()),
        }
        for name, row in model_rows.items():
            stats[name] = lambda k, s, row=row: float(s[row].mean())
        out[arm] = {
            key: pooled(stacked, stat, resamples=resamples, seed=n + 1)
            for n, (key, stat) in enumerate(stats.items())
        }
    return out, models


def render(
    table: dict[str, dict[str, tuple[Estimate, Matrix]]],
    models: list[str],
    builds: list[dict[str, Any]],
    args: argparse.Namespace,
) -> str:
    cols = ["spread", "discrimination", "ranking", "shortcut", *models]
    heads = [
        "spread of panel accuracy",
        "item discrimination (primary)",
        "ranking rho",
        "best shortcut acc.",
        *(f"{name} acc." for name in models),
    ]
    lines = [
        "| arm | releases | items (mean) | admitted / drafted | " + " | ".join(heads) + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    for arm in table:
        done = [b for b in builds if b["arm"] == arm and b["published"]]
        drafted = sum(b["drafted"] for b in builds if b["arm"] == arm)
        admitted = sum(b["admitted"] for b in builds if b["arm"] == arm)
        items = sum(b.get("items", 0) for b in done) / max(1, len(done))
        lines.append(
            f"| {ARM_LABEL[arm]} | {len(done)} | {items:.0f} | {admitted}/{drafted} | "
            + " | ".join(str(table[arm][c][0]) for c in cols)
            + " |"
        )
    lines += ["", "Differences in mean item discrimination (95% bootstrap interval):", ""]
    verdicts = []
    arms = list(table)
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            d = difference(table[a]["discrimination"], table[b]["discrimination"])
            if d.lo is None or d.hi is None or d.value is None:
                verdict = "undefined"
            elif d.lo > 0:
                verdict = f"{ARM_LABEL[a]} is more discriminative"
            elif d.hi < 0:
                verdict = f"{ARM_LABEL[b]} is more discriminative"
            else:
                verdict = "no detectable difference at this size"
            verdicts.append(verdict)
            lines.append(f"- {ARM_LABEL[a]} − {ARM_LABEL[b]}: {d} → {verdict}")
    model_arms = [b for b in builds if b["arm"] != "human_only"]
    drafted = sum(b["drafted"] for b in model_arms)
    admitted = sum(b["admitted"] for b in model_arms)
    share = admitted / drafted if drafted else math.nan
    lines += [
        "",
        f"Share of model-drafted items admitted (model {args.model}, arms human+AI and AI-only): "
        f"{admitted}/{drafted} = {100 * share:.1f}%.",
    ]
    return "\n".join(lines)


def plot(
    table: dict[str, dict[str, tuple[Estimate, Matrix]]], models: list[str], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["discrimination", "spread", "ranking", "shortcut", *models]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.4))
    for ax, col in zip(axes, cols, strict=True):
        arms = list(table)
        vals = [table[a][col][0] for a in arms]
        y = [v.value if v.value is not None else math.nan for v in vals]
        err = [
            [max(0.0, (v.value or 0) - (v.lo if v.lo is not None else v.value or 0)) for v in vals],
            [max(0.0, (v.hi if v.hi is not None else v.value or 0) - (v.value or 0)) for v in vals],
        ]
        ax.bar([ARM_LABEL[a] for a in arms], y, yerr=err, capsize=4, color="#6a8caf")
        ax.set_title(col, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Benchmark pilot: panel measures per arm (95% bootstrap CI; humans are stand-ins)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main(args: argparse.Namespace) -> None:
    out: Path = args.out
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    workflow = load_workflow("benchmark_cocreation")
    task = load_task(TASK)
    panel = default_panel(task, models=[answer_model(args.model)])
    grader = SandboxGrader()
    started = time.monotonic()
    builds: list[dict[str, Any]] = []
    per_arm: dict[str, list[PanelScores]] = {arm: [] for arm in ARMS}
    if args.collect:
        # the table from earlier runs' folders (e.g. seeds run as parallel processes)
        for folder in args.collect:
            lines = (folder / "builds.jsonl").read_text(encoding="utf-8").splitlines()
            for build in map(json.loads, lines):
                builds.append(build)
                if build["published"]:
                    path = folder / "scores" / f"{build['arm']}-s{build['seed']}.json"
                    per_arm[build["arm"]].append(
                        PanelScores.model_validate_json(path.read_text(encoding="utf-8"))
                    )
        args.seeds = len({b["seed"] for b in builds})
    else:
        await asyncio.to_thread((out / "scores").mkdir, exist_ok=True)
    for seed in [] if args.collect else range(args.seed_start, args.seed_start + args.seeds):
        for arm in ARMS:
            build = await build_release(workflow, arm, seed, args, out)
            if build["published"]:
                release = load_release(build["published"], task)
                build["items"] = len(release.items)
                scores = await panel.score(task, release, grader)
                per_arm[arm].append(scores)
                path = out / "scores" / f"{arm}-s{seed}.json"
                await asyncio.to_thread(path.write_text, scores.model_dump_json())
                print(
                    f"seed {seed} {arm:<10} drafted {build['drafted']:>3} admitted "
                    f"{build['admitted']:>3} release {release.version} ({len(release.items)} "
                    f"items) [{time.monotonic() - started:.0f} s]",
                    flush=True,
                )
            else:
                print(f"seed {seed} {arm}: nothing admitted, no release ({build['db']})")
            builds.append(build)
            with (out / "builds.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(build) + "\n")
    per_arm = {arm: s for arm, s in per_arm.items() if s}
    if not per_arm:
        raise SystemExit("no arm published a release; nothing to measure")
    table, models = summarise(per_arm, args.resamples)
    text = render(table, models, builds, args)
    who = "\n".join(f"- {ARM_LABEL[a]}: {WHO[a]}" for a in ARMS)
    header = (
        f"Which arm makes the more discriminative benchmark? model {args.model}, "
        f"{args.seeds} seeds, {args.items} items per arm and seed, panel of "
        f"{len(panel.members)} ({', '.join(m.name for m in panel.members)}).\n"
        "NO PERSON TOOK PART: every human in this pilot is a scripted stand-in.\n" + who
    )
    print("\n" + header + "\n\n" + text)
    plot(table, models, out / "pilot.png")
    report = (
        "# Benchmark co-creation pilot\n\n"
        + header
        + "\n\n"
        + text
        + "\n\nMeasures: spread = SD of the panel members' accuracies; item discrimination = "
        "mean corrected point-biserial (item vs rest score over the panel; items every member "
        "gets equally right are left out); ranking rho = Spearman of measured accuracy vs known "
        "skill over the scripted members with one; best shortcut = the highest accuracy of "
        "random, majority-label and first-option. Intervals: two-level bootstrap (seeds, then "
        f"items), {args.resamples} resamples. Wall time {time.monotonic() - started:.0f} s.\n\n"
        "![pilot](pilot.png)\n\n## Releases\n\n"
        + "\n".join(
            f"- seed {b['seed']} {b['arm']}: drafted {b['drafted']}, admitted {b['admitted']}, "
            f"{b.get('items', 0)} items, {b['published']}"
            for b in builds
        )
        + "\n"
    )
    (out / "report.md").write_text(report, encoding="utf-8")
    print(f"\nreport {out / 'report.md'}, figure {out / 'pilot.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="benchmark co-creation pilot")
    parser.add_argument("--model", default="fake", help="fake | local | local:gemma3-270m | …")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-start", type=int, default=0, help="first seed")
    parser.add_argument(
        "--collect",
        type=Path,
        nargs="+",
        default=None,
        help="build no release: make the table from these earlier --out folders",
    )
    parser.add_argument("--items", type=int, default=30, help="items per arm and seed (>= 30)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="coimprove-pilot-"))
    asyncio.run(main(args))
