"""The bidirectional transfer experiment: agent memory on/off × reviewer feedback on/off.

    python examples/transfer_experiment.py [--runs 120] [--replicates 3] [--model fake|local]
                                           [--out DIR] [--agent-learning 0.5]

Does collaboration make *both* sides better (seed 002, Table 1 "bidirectional co-improvement";
seed 001, "bidirectional transfer test")? Each cell of a 2×2 grid runs the same stream of tasks
through one workflow — an agent proposes a training setup, a gate (policy ``canary``: one
opening in ten shows a planted flaw) pauses for two scripted reviewers, an effect applies what
was approved — and measures both directions from the ledger alone:

- **reviewers** (`coimprove.metrics.reviewer_learning`): catch rate on flawed proposals and
  canaries over the reviewer's gate index, its slope, and the rubber-stamp rate. The reviewers
  use the built-in ``learner`` profile, whose ``learning`` block raises the catch rate per
  lesson (a miss revealed by feedback); with feedback off they never get a lesson.
- **agents** (`coimprove.metrics.agent_learning`): first-pass approval over the agent's
  episodes, its slope, and rounds to approval. With memory on, the agent's prompt carries the
  most similar past review notes (`coimprove.memory`, WordLlama embeddings).
- **convergence** (`coimprove.metrics.human_convergence`): share of decisions in which the
  reviewers changed the proposal, over time.

With ``--model fake`` (the default) the agent is a *simulated learner*: a deterministic chat
model that falls into its task's trap (a too-high learning rate, no baseline, tuning on the
test split, a tiny eval set) with probability ``--trap`` and, for each note in its prompt about
an earlier proposal in the same area, that probability shrinks by the factor
``1 − --agent-learning``. It reads nothing else: whether notes help depends only on memory
being on and retrieving the right notes. With ``--model local`` the agent is SmolLM2 reading
the same prompt (slow; use a few runs).

Each cell is replicated with different seeds; the same replicate seed is used in every cell,
so cells are paired (common random numbers). Reported: each measure per cell with a 95%
interval across replicates, and each factor's effect (on − off, paired, averaged over the other
factor). Plots (PNG) show each trend per cell with pooled 95% Wilson intervals.

The grid (`FACTORS`), one cell's run (`run_cell`) and its measures (`measure`) are separate
functions so the sweep maps directly onto a `coimprove ablate` spec.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from coimprove import END, START, Approved, GatedState, Proposal, SqliteLedger, Workflow
from coimprove.agents import AgentRole, RoleOutput
from coimprove.agents.roles.base import AgentContextLike
from coimprove.headless import run_headless
from coimprove.memory import MemoryConfig
from coimprove.metrics import RatePoint, agent_learning, human_convergence, reviewer_learning
from coimprove.metrics.stats import wilson
from coimprove.model import new_id
from coimprove.reviewers import ScriptedReviewer, load_profile
from coimprove.testing import FakeChatModel

# -- the task ---------------------------------------------------------------------------------

AREAS: dict[str, tuple[str, str]] = {
    "learning_rate": (
        "Tune the optimiser's learning rate for fine-tuning a small transformer on the team's "
        "summarisation data.",
        "learning_rate",
    ),
    "baseline": (
        "Design the comparison for the new attention variant against prior work on the same "
        "benchmark.",
        "baseline",
    ),
    "split": (
        "Prepare the data split and model selection procedure for the reasoning benchmark.",
        "split",
    ),
    "eval_size": (
        "Choose how many evaluation examples the ablation reports, given the budget.",
        "eval_examples",
    ),
}
AREA_NAMES = sorted(AREAS)


class TaskState(GatedState, total=False):
    item: int
    area: str
    task: str
    applied: list[str]


class TunePayload(BaseModel):
    """The training setup a gate shows."""

    model_config = ConfigDict(extra="forbid")

    area: str = Field(description="which part of the setup this proposal is about")
    learning_rate: float = Field(gt=0, description="optimiser learning rate")
    baseline: bool = Field(description="whether a baseline is run alongside")
    split: Literal["held_out", "tuned_on_test"] = Field(description="model selection split")
    eval_examples: int = Field(ge=1, description="evaluation examples reported")


class TuneOutput(RoleOutput, TunePayload):
    model_config = ConfigDict(extra="ignore")


def flaws(payload: Mapping[str, Any]) -> list[str]:
    """What is wrong with a setup (the hidden ground truth is "flawed" when this is not empty)."""
    out = []
    if not 1e-6 <= float(payload["learning_rate"]) <= 0.1:
        out.append("learning_rate")
    if not payload["baseline"]:
        out.append("baseline")
    if payload["split"] != "held_out":
        out.append("split")
    if int(payload["eval_examples"]) < 100:
        out.append("eval_size")
    return out


class TuneAgent(AgentRole[TuneOutput]):
    """Proposes one training setup for the run's task; the truth label comes from `flaws`."""

    kind = "experiment"
    prompt_name = "experiment"
    output_model = TuneOutput
    payload_model = TunePayload
    category = "experiment_design"

    async def build(
        self, output: TuneOutput, state: Mapping[str, Any], ctx: AgentContextLike
    ) -> Proposal:
        payload = self.payload(output)
        return Proposal(
            kind=self.kind,
            title=output.title,
            body=f"Setup for: {state.get('task', '')}",
            payload=payload,
            author=f"agent:{ctx.name}",
            truth="flawed" if flaws(payload) else "sound",
        )


# -- the simulated agent (a deterministic chat model) -----------------------------------------

_SECTION = re.compile(r"^## (.+)$", re.MULTILINE)


def _sections(text: str) -> dict[str, str]:
    heads = list(_SECTION.finditer(text))
    return {
        h.group(1).strip(): text[h.end() : heads[i + 1].start() if i + 1 < len(heads) else None]
        for i, h in enumerate(heads)
    }


@dataclass(frozen=True)
class SimulatedAgent:
    """Falls into its task's trap with probability `trap`, times ``(1 − learning)`` per note in
    its prompt about the same area; a revision after feedback fixes it with `fix` probability.
    Random draws depend only on the seed, the item and the round, never on the notes, so the
    cells of the experiment share them."""

    seed: int
    trap: float = 0.7
    learning: float = 0.5
    fix: float = 0.8

    def __call__(self, messages: list[BaseMessage]) -> str:
        text = str(messages[-1].content)
        parts = _sections(text)
        context = json.loads(parts["Context"])
        area, item = str(context["area"]), int(context["item"])
        feedback = parts.get("Reviewer feedback", "")
        notes = [ln for ln in parts.get("Notes from past reviews", "").splitlines() if "[" in ln]
        relevant = sum(1 for ln in notes if f"[{area}]" in ln)
        revision = len(re.findall(r"\[v(\d+)\]", feedback))
        rng = random.Random(f"{self.seed}:{item}:{revision}")
        p_trap = self.trap * (1 - self.learning) ** relevant
        if revision:
            p_trap = self.trap * (1 - self.fix) ** revision
        trapped = rng.random() < p_trap
        setup: dict[str, Any] = {
            "area": area,
            "learning_rate": 3e-4,
            "baseline": True,
            "split": "held_out",
            "eval_examples": 1000,
        }
        if trapped:
            setup.update(
                {
                    "learning_rate": {"learning_rate": 10.0},
                    "baseline": {"baseline": False},
                    "split": {"split": "tuned_on_test"},
                    "eval_size": {"eval_examples": 12},
                }[area]
            )
        title = f"[{area}] [v{revision + 1}] setup for item {item}"
        changes = "addressed the reviewer's note" if revision else ""
        return json.dumps({"title": title, "changes": changes, **setup})


class PlantedFlaw:
    """Canary source: the same proposal with one of the four traps sprung."""

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        area = AREA_NAMES[int(rng.random() * len(AREA_NAMES))]
        sprung = {
            "learning_rate": {"learning_rate": 10.0},
            "baseline": {"baseline": False},
            "split": {"split": "tuned_on_test"},
            "eval_size": {"eval_examples": 12},
        }[area]
        payload = {**proposal.payload, **sprung}
        return proposal.model_copy(update={"payload": payload, "id": new_id("p-")}), area


def build_workflow(model: Any) -> Workflow:
    """propose -> review (gate) -> apply (effect) -> END."""
    wf = Workflow("transfer", state=TaskState, policy="canary")
    TuneAgent(model, context=["item", "area", "task"]).add_to(wf, "propose")
    wf.gate("review", proposal_from="propose", on_approve="apply", category="experiment_design")

    def apply(state: TaskState, approved: Approved) -> dict[str, Any]:
        return {"applied": [*state.get("applied", []), approved.proposal.title]}

    wf.effect("apply", apply, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    return wf


def task(i: int, seed: int) -> dict[str, Any]:
    """The i-th task of a replicate: a shuffled cycle through the four areas."""
    rng = random.Random(f"tasks:{seed}:{i // len(AREA_NAMES)}")
    order = AREA_NAMES[:]
    rng.shuffle(order)
    area = order[i % len(AREA_NAMES)]
    return {"item": i, "area": area, "task": AREAS[area][0]}


# -- one cell ---------------------------------------------------------------------------------

FACTORS: dict[str, tuple[bool, ...]] = {"memory": (False, True), "feedback": (False, True)}
"""The grid: every combination is a cell."""


@dataclass(frozen=True)
class Settings:
    runs: int = 120
    model: str = "fake"
    trap: float = 0.7
    agent_learning: float = 0.5
    profile: str = "learner"
    reviewers: int = 2
    arrival_s: float = 900.0
    buckets: int = 6
    memory_k: int = 3


def cells() -> list[dict[str, bool]]:
    """Every combination of `FACTORS`, in a fixed order."""
    names = list(FACTORS)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(FACTORS[n] for n in names))
    ]


def cell_name(cell: Mapping[str, bool]) -> str:
    return ", ".join(f"{k} {'on' if v else 'off'}" for k, v in cell.items())


async def run_cell(cell: Mapping[str, bool], seed: int, settings: Settings, db: Path) -> Path:
    """Run one replicate of one cell into ledger `db`; returns its path."""
    model: Any = (
        FakeChatModel(
            respond=SimulatedAgent(seed, trap=settings.trap, learning=settings.agent_learning)
        )
        if settings.model == "fake"
        else settings.model
    )
    profile = load_profile(settings.profile)
    reviewers = [
        ScriptedReviewer(profile, id=f"reviewer-{i + 1}", seed=seed)
        for i in range(settings.reviewers)
    ]
    memory = MemoryConfig(k=settings.memory_k, scope="agent") if cell["memory"] else None
    await run_headless(
        build_workflow(model),
        reviewers,
        runs=settings.runs,
        inputs=lambda i: task(i, seed),
        db=db,
        seed=seed,
        arrival_s=settings.arrival_s,
        canaries=PlantedFlaw(),
        feedback_to=bool(cell["feedback"]),
        memory=memory,
        run_ids=lambda i: f"s{seed}-{i:05d}",  # the same runs in every cell: paired draws
    )
    return db


def measure(db: Path, buckets: int) -> dict[str, Any]:
    """Scalar outcomes of one replicate (for intervals) and its trends (for plots)."""
    with SqliteLedger(db) as ledger:
        reviewers = reviewer_learning(ledger, buckets=buckets)
        agents = agent_learning(ledger, buckets=buckets)
        people = human_convergence(ledger, buckets=buckets)
    agent = next(iter(agents.by_agent.values()), None)

    def mean(values: Sequence[float | None]) -> float | None:
        xs = [v for v in values if v is not None]
        return sum(xs) / len(xs) if xs else None

    def per100(v: float | None) -> float | None:
        return None if v is None else 100 * v

    scalars = {
        "reviewer catch rate": mean(
            [r.caught / r.signal if r.signal else None for r in reviewers.values()]
        ),
        "reviewer catch slope /100 gates": mean(
            [per100(r.catch_per_gate.slope) for r in reviewers.values()]
        ),
        "reviewer catch per lesson": mean([r.catch_per_lesson.slope for r in reviewers.values()]),
        "reviewer lessons": mean([float(r.lessons) for r in reviewers.values()]),
        "rubber-stamp rate": mean(
            [r.rubber_stamps / r.approvals if r.approvals else None for r in reviewers.values()]
        ),
        "agent first-pass approval": agent.first_pass_approval_rate if agent else None,
        "agent first-pass sound": agent.first_pass_sound_rate if agent else None,
        "agent first-pass slope /100 episodes": per100(agent.first_pass_per_episode.slope)
        if agent
        else None,
        "agent rounds to approval": agent.rounds_to_approval_mean if agent else None,
        "agent notes per attempt": agent.notes_given_mean if agent else None,
        "human contribution": people.changed / people.decisions if people.decisions else None,
    }

    def pooled(points_by_reviewer: Sequence[Sequence[RatePoint]]) -> list[tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for points in points_by_reviewer:
            for p in points:
                h, n = out.get(p.index, (0, 0))
                out[p.index] = (h + p.hits, n + p.n)
        return [out[k] for k in sorted(out)]

    trends = {
        "catch rate by gate index": pooled([r.catch_by_gate for r in reviewers.values()]),
        "rubber-stamp rate by gate index": pooled(
            [r.rubber_stamp_by_gate for r in reviewers.values()]
        ),
        "agent first-pass approval by episode": pooled([agent.first_pass_trend] if agent else []),
        "agent first-pass sound by episode": pooled(
            [agent.first_pass_sound_trend] if agent else []
        ),
        "human contribution by decision": [(p.changed, p.n) for p in people.trend],
    }
    return {"scalars": scalars, "trends": trends}


# -- summaries ---------------------------------------------------------------------------------

_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
_T95.update({9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042})


def t95(df: int) -> float:
    """Two-sided 95% Student t quantile (table; 1.96 beyond 30 degrees of freedom)."""
    if df in _T95:
        return _T95[df]
    smaller = [k for k in _T95 if k <= df]
    return _T95[max(smaller)] if df <= 30 else 1.959964


def interval(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and 95% t interval across replicates (no interval with one value)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    m = sum(values) / n
    if n < 2:
        return {"n": n, "mean": m, "low": None, "high": None}
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": m, "low": m - half, "high": m + half}


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per cell: each scalar with its interval. Per factor: the paired effect (on − off)."""
    by_cell: dict[str, dict[str, Any]] = {}
    for name, reps in results.items():
        keys = reps[0]["scalars"].keys()
        by_cell[name] = {
            k: interval([r["scalars"][k] for r in reps if r["scalars"][k] is not None])
            for k in keys
        }
    effects: dict[str, dict[str, Any]] = {}
    grid = cells()
    for factor in FACTORS:
        effects[factor] = {}
        for key in next(iter(results.values()))[0]["scalars"]:
            diffs = []
            for cell in grid:
                if cell[factor]:
                    continue
                on = cell_name({**cell, factor: True})
                off = cell_name(cell)
                for a, b in zip(results[on], results[off], strict=True):
                    x, y = a["scalars"][key], b["scalars"][key]
                    if x is not None and y is not None:
                        diffs.append(x - y)
            effects[factor][key] = interval(diffs)
    return {"cells": by_cell, "effects": effects}


def plot(results: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One PNG per trend: each cell's pooled rate per time slice with 95% Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    first = next(iter(results.values()))[0]["trends"]
    for trend in first:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for name, reps in results.items():
            slices: dict[int, tuple[int, int]] = {}
            for r in reps:
                for i, (h, n) in enumerate(r["trends"][trend]):
                    a, b = slices.get(i, (0, 0))
                    slices[i] = (a + h, b + n)
            xs = sorted(i for i in slices if slices[i][1] > 0)
            if not xs:
                continue
            rates = [slices[i][0] / slices[i][1] for i in xs]
            cis = [wilson(*slices[i]) or (0.0, 0.0) for i in xs]
            x1 = [i + 1 for i in xs]
            ax.plot(x1, rates, marker="o", label=name)
            ax.fill_between(x1, [c[0] for c in cis], [c[1] for c in cis], alpha=0.12)
        ax.set_title(trend)
        ax.set_xlabel("time slice (equal numbers of trials, earliest first)")
        ax.set_ylabel("rate (pooled over replicates, 95% Wilson)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / (re.sub(r"[^a-z0-9]+", "_", trend.lower()).strip("_") + ".png")
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files


async def run_all(
    settings: Settings, replicates: int, out: Path
) -> dict[str, list[dict[str, Any]]]:
    """Every cell `replicates` times (replicate r uses seed r in every cell), measured."""
    results: dict[str, list[dict[str, Any]]] = {}
    for cell in cells():
        name = cell_name(cell)
        results[name] = []
        for rep in range(replicates):
            tag = "_".join(f"{k}{int(v)}" for k, v in cell.items())
            db = await run_cell(cell, rep, settings, out / f"{tag}_rep{rep}.db")
            results[name].append(measure(db, settings.buckets))
    return results


def experiment(settings: Settings, replicates: int, out: Path) -> dict[str, Any]:
    """Run the grid, then summarise and plot into `out`; writes ``results.json``."""
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run_all(settings, replicates, out))
    summary = summarise(results)
    plots = plot(results, out)
    doc = {
        "settings": settings.__dict__,
        "replicates": replicates,
        **summary,
        "plots": [str(p) for p in plots],
        "raw": results,
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    return doc


def _fmt(iv: Mapping[str, Any]) -> str:
    if iv["mean"] is None:
        return "-"
    if iv["low"] is None:
        return f"{iv['mean']:.3f}"
    return f"{iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def print_summary(doc: Mapping[str, Any]) -> None:
    keys = list(next(iter(doc["cells"].values())))
    for name, measures in doc["cells"].items():
        print(f"\n{name}")
        for k in keys:
            print(f"  {k:<38} {_fmt(measures[k])}")
    for factor, effects in doc["effects"].items():
        print(f"\neffect of {factor} (on − off, paired, 95% CI)")
        for k in keys:
            print(f"  {k:<38} {_fmt(effects[k])}")
    print("\nplots:", *doc["plots"], sep="\n  ")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="agent memory × reviewer feedback (2×2)")
    parser.add_argument("--runs", type=int, default=120, help="runs per cell and replicate")
    parser.add_argument("--replicates", type=int, default=5)
    parser.add_argument("--model", default="fake", help="fake (simulated learner) or local")
    parser.add_argument("--trap", type=float, default=0.7)
    parser.add_argument("--agent-learning", type=float, default=0.5)
    parser.add_argument("--profile", default="learner", help="reviewer profile name or YAML")
    parser.add_argument("--buckets", type=int, default=6)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.getLogger("coimprove").setLevel(logging.WARNING)  # thousands of runs: no chatter
    settings = Settings(
        runs=args.runs,
        model=args.model,
        trap=args.trap,
        agent_learning=args.agent_learning,
        profile=args.profile,
        buckets=args.buckets,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="coimprove-transfer-"))
    doc = experiment(settings, args.replicates, out)
    print_summary(doc)
    print(f"\nresults: {out / 'results.json'}")
    return doc


if __name__ == "__main__":
    main()
