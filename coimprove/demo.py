"""``coimprove demo``: the built-in research workflows end to end on this machine.

Builds the ``python`` sandbox image if it is missing (progress shown), then runs each step of
`STEPS` — built-in graphs loaded by name, never imported — with the chosen model and real
Docker sandboxes. Gates are answered by scripted reviewers on a simulated clock (headless), or
by you in the review TUI with ``--interactive``. Finally it prints the oversight report, broken
down by collaboration category, and where the ledger, git workspaces and reports are.

To add a graph to the demo, append a `DemoStep` to `STEPS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import git
from rich.console import Console

from coimprove.agents import resolve_model
from coimprove.demo_findings import (
    finding_markdown,
    finding_sentence,
    oversight_table,
    oversight_verdict,
    research_finding,
    reviewer_oversight,
)
from coimprove.errors import CoimproveError
from coimprove.headless import run_headless
from coimprove.ledger import SqliteLedger
from coimprove.metrics import report as build_report
from coimprove.model import EventType, LedgerEvent
from coimprove.report_view import CATEGORY_LABELS, category_table, overview_table, reviewer_table
from coimprove.reviewers.clock import SimClock
from coimprove.reviewers.scripted import ScriptedReviewer
from coimprove.runner import RunInfo, Runner, _import_file, _workflow_file, load_workflow
from coimprove.sandbox.engine import connect
from coimprove.sandbox.images import build_image
from coimprove.state import CanarySource

MODE_DEFAULT = "<mode default>"
"""`DemoSettings.policy`'s default: the policy that suits headless or interactive mode."""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo was asked to do (the command's options)."""

    model: str = "local"
    out: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coimprove-demo-")))
    runs: int = 0
    """Runs of each step; research_cycle's i-th run has seed ``seed + i`` (a replicate).
    0: three headless, one interactive (you decide every gate)."""
    reviewers: tuple[str, ...] = ("careful", "rubber_stamper")
    policy: str | None = MODE_DEFAULT
    """``demo``: every gate decided by two reviewers, canaries planted (None: each graph's own).
    By default ``demo`` headless and each graph's own interactive, where one person decides
    (``demo``'s quorum of two would leave every gate waiting for a second reviewer)."""
    seed: int = 0
    interactive: bool = False

    def __post_init__(self) -> None:
        if self.runs == 0:
            object.__setattr__(self, "runs", 1 if self.interactive else 3)
        if self.policy == MODE_DEFAULT:
            object.__setattr__(self, "policy", None if self.interactive else "demo")

    @property
    def db(self) -> Path:
        return self.out / "ledger.db"


@dataclass(frozen=True)
class DemoStep:
    """One graph the demo runs: a built-in name (or ``path.py:attr``) and its run inputs."""

    graph: str
    title: str
    inputs: Callable[[DemoSettings, int], dict[str, Any]]
    """The i-th run's inputs."""
    sandboxes: tuple[str, ...] = ("python",)
    runs: Callable[[DemoSettings], int] = lambda s: s.runs
    canaries: str | None = None
    """The graph module's attribute holding its `CanarySource` (None: the built-in ones)."""


_FAKE_SUMMARY = (
    '{"theme": "short factual answers", "difference": "B answers in fewer words than A", '
    '"relevance": "low"}'
)


def _behavior_diff_inputs(s: DemoSettings, i: int = 0) -> dict[str, Any]:
    """A short behaviour comparison: the same model, verbose vs terse system prompt."""
    # `fake` answers "ok" to everything; its supervisor needs a summary it can parse.
    supervisor = f"fake:{json.dumps([_FAKE_SUMMARY])}" if s.model == "fake" else s.model
    return {
        "a": {"spec": s.model, "max_tokens": 24, "label": "helpful"},
        "b": {
            "spec": s.model,
            "system": "Answer in as few words as possible.",
            "max_tokens": 24,
            "label": "terse",
        },
        "supervisor": supervisor,
        # one prompt of every category, three answers each: a paired test over 9 prompts x 1
        # sample cannot pass Holm over the ~57 hypotheses the graph tests (p >= 2/2^9).
        "per_category": 1,
        "samples": 3,
        "clusters": 3,
        "max_findings": 2,
        "out_dir": str(s.out / "behavior_diff"),
    }


STEPS: list[DemoStep] = [
    DemoStep(
        "research_cycle",
        "problem → method (a commit) → sandboxed experiment → analysis → write-up",
        lambda s, i: {
            "model": s.model,
            "seed": s.seed + i,
            "workspace_root": str(s.out / "workspaces"),
        },
        canaries="canaries",
    ),
    DemoStep(
        "behavior_diff",
        "two prompts of one model answer 8 prompts → clusters → supervisor → findings gate",
        _behavior_diff_inputs,
        sandboxes=(),
        runs=lambda s: 1,
    ),
]
"""The demo's graphs, run in order into one ledger."""


def reviewer_pool(names: Sequence[str], seed: int) -> list[ScriptedReviewer]:
    """Scripted reviewers from profile names; ``lead:careful`` is a lead (it may take
    escalations: the policies map reviewer ids ``lead*`` to the lead role)."""
    pool = []
    for i, name in enumerate(names):
        role, _, profile = name.rpartition(":")
        rid = f"{role}-{profile}" if role else f"{profile}-{i + 1}"
        pool.append(ScriptedReviewer.from_profile_name(profile, id=rid, seed=seed))
    return pool


def ensure_sandboxes(names: Sequence[str], console: Console) -> None:
    """Build the sandbox images the steps need if they are missing (with progress)."""
    client = connect(timeout=600)
    for name in dict.fromkeys(names):
        started = time.monotonic()
        with console.status(f"sandbox image [bold]{name}[/]: checking…") as status:

            def progress(msg: str, status: Any = status, name: str = name) -> None:
                status.update(f"sandbox image [bold]{name}[/]: {msg}")
                console.print(f"  [dim]{msg}[/]", highlight=False)

            built = build_image(name, client=client, progress=progress)
        how = "up to date" if built.reused else f"built in {time.monotonic() - started:.0f}s"
        console.print(f"sandbox image {name}: {built.tag} ({how})", highlight=False)


def check_model(spec: str, console: Console) -> None:
    """Fail now, with the install hint, if the model cannot be loaded."""
    if spec == "fake":
        console.print("model: fake (each graph's deterministic scripted model)")
        return
    started = time.monotonic()
    model = resolve_model(spec)
    load = getattr(model, "load", None)
    if callable(load):
        load()
    name = getattr(model, "model_name", spec)
    console.print(f"model: {name} (ready in {time.monotonic() - started:.1f}s)", highlight=False)


_SHOWN: tuple[EventType, ...] = (
    "gate.opened",
    "gate.decided",
    "effect.finished",
    "effect.failed",
    "run.failed",
)


def describe_event(event: LedgerEvent) -> str | None:
    """One progress line for an event, or None."""
    gate = (event.gate_id or "").split(".", 1)[-1]
    run = f"[dim]{(event.run_id or '')[:8]}[/] "
    data = event.data
    if event.type == "gate.opened":
        title = data.get("request", {}).get("proposal", {}).get("title", "")
        category = data.get("category") or "-"
        return f"  {run}[cyan]{gate}[/] opened [dim]({category})[/]: {title[:70]}"
    if event.type == "gate.decided":
        return f"  {run}[cyan]{gate}[/] {data.get('verdict')} by {event.actor}"
    if event.type == "effect.finished":
        return f"  {run}[green]{data.get('effect')}[/] ran (approved at {gate})"
    if event.type == "effect.failed":
        return f"  {run}[red]{data.get('effect')} failed[/]: {data.get('error')}"
    if event.type == "run.failed":
        return f"  {run}[red]failed[/]: {data.get('error')}"
    return None


async def _follow(db: Path, console: Console, after: int, stop: asyncio.Event) -> None:
    """Print progress lines for new ledger events until `stop` is set."""
    seen = after
    with SqliteLedger(db) as ledger:
        while True:
            for event in ledger.events(types=_SHOWN, after_seq=seen):
                seen = event.seq
                line = describe_event(event)
                if line:
                    console.print(line, highlight=False)
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.3)


def _last_seq(db: Path) -> int:
    if not db.exists():
        return 0
    with SqliteLedger(db) as ledger:
        events = ledger.events()
        return events[-1].seq if events else 0


def graph_canaries(step: DemoStep) -> CanarySource | None:
    """The step's graph's own planted flaws (its module attribute `step.canaries`), or None."""
    if step.canaries is None:
        return None
    file = _workflow_file(step.graph)
    if file is None:
        raise CoimproveError(f"demo step {step.graph!r}: not a graph file, no canaries to load")
    source = getattr(_import_file(file), step.canaries, None)
    if source is None or not callable(getattr(source, "mutate", None)):
        raise CoimproveError(f"graph {step.graph!r} has no canary source {step.canaries!r}")
    return cast(CanarySource, source)


def demo_run_ids(step: DemoStep, settings: DemoSettings) -> Callable[[int], str]:
    """The i-th run's id: ``<graph>-s<seed>-<n>``, numbered on from the runs already in the
    ledger. Scripted reviewers and canaries draw their random numbers per gate id, so a fresh
    demo with the same seed and model decides the same gates the same way."""
    taken = 0
    if settings.db.exists():
        with SqliteLedger(settings.db) as ledger:
            taken = len(ledger.events(types=["run.started"]))
    return lambda i: f"{step.graph}-s{settings.seed}-{taken + i + 1}"


async def run_step_headless(
    step: DemoStep, settings: DemoSettings, console: Console
) -> list[RunInfo]:
    """Run `step` with scripted reviewers, printing progress from the ledger as it grows."""
    workflow = load_workflow(step.graph)
    canaries = graph_canaries(step)
    stop = asyncio.Event()
    follower = asyncio.create_task(_follow(settings.db, console, _last_seq(settings.db), stop))
    try:
        result = await run_headless(
            workflow,
            reviewer_pool(settings.reviewers, settings.seed),
            runs=step.runs(settings),
            inputs=lambda i: step.inputs(settings, i),
            db=settings.db,
            policy=settings.policy,
            seed=settings.seed,
            canaries=canaries,
            run_ids=demo_run_ids(step, settings),
        )
    finally:
        stop.set()
        await follower
    return result.runs


async def start_step(step: DemoStep, settings: DemoSettings) -> list[RunInfo]:
    """Start `step`'s runs on the wall clock; they wait at their first gate for you."""
    workflow = load_workflow(step.graph)
    async with Runner(settings.db, seed=settings.seed, canaries=graph_canaries(step)) as runner:
        return [
            await runner.start(workflow, step.inputs(settings, i), policy=settings.policy)
            for i in range(step.runs(settings))
        ]


async def _states(db: Path, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    async with Runner(db, clock=SimClock()) as runner:
        return {rid: await runner.state(rid) for rid in run_ids}


def _run_lines(info: RunInfo, state: dict[str, Any], ledger: SqliteLedger) -> list[str]:
    lines = [f"[bold]{info.run_id}[/] {info.graph}: [cyan]{info.state}[/]"]
    if info.error:
        lines.append(f"  [red]{info.error}[/]")
    for gid in info.open_gates:
        lines.append(f"  waiting at {gid}")
    resolved = ledger.events(run_id=info.run_id, types=["gate.resolved"])
    if resolved and resolved[-1].data.get("outcome") == "reject":
        last = resolved[-1]
        note = (last.data.get("result") or {}).get("note") or ""
        lines.append(f"  ended: rejected at {last.gate_id} ({last.data.get('reason')}) {note}")
    for event in ledger.events(run_id=info.run_id, types=["experiment.recorded"]):
        metrics = event.data.get("metrics") or {}
        shown = {
            k: metrics[k]
            for k in ("held_out_accuracy", "train_accuracy", "held_out_loss", "diverged")
            if k in metrics
        }
        lines.append(
            f"  experiment (commit {str(event.data.get('commit'))[:10]}): "
            f"ended by {event.data.get('ended_by')}, exit {event.data.get('exit_code')}, "
            + (json.dumps(shown) if shown else f"no metrics ({event.data.get('metrics_error')})")
        )
    ws = state.get("workspace")
    if isinstance(ws, dict) and ws.get("path"):
        path = Path(ws["path"])
        lines.append(f"  git workspace: {path}")
        try:
            repo = git.Repo(path)
            log = repo.git.log("--oneline", f"coimprove/run/{ws.get('run_id', info.run_id)}")
            lines += [f"    {line}" for line in str(log).splitlines()]
        except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError):
            pass
        if (path / "REPORT.md").exists():
            lines.append(f"  write-up: {path / 'REPORT.md'}")
    findings = state.get("report")
    if isinstance(findings, dict) and findings.get("markdown"):
        chosen = findings.get("findings") or []
        lines.append(f"  findings ({len(chosen)} approved): {findings['markdown']}")
    return lines


def print_summary(
    settings: DemoSettings, infos: Sequence[RunInfo], console: Console, seconds: float
) -> dict[str, Any]:
    """The oversight report (overall, by category, by reviewer), each run, the artifacts."""
    states = asyncio.run(_states(settings.db, [i.run_id for i in infos])) if infos else {}
    with SqliteLedger(settings.db) as ledger:
        rep = build_report(ledger)
        infos = [_refresh(ledger, i) for i in infos]
        console.rule("runs")
        for info in infos:
            for line in _run_lines(info, states.get(info.run_id, {}), ledger):
                console.print(line, highlight=False)
        finding = research_finding(ledger, [i.run_id for i in infos if i.graph == "research_cycle"])
    console.print(overview_table(rep))
    console.print(category_table(rep))
    console.print(reviewer_table(rep))
    oversight = reviewer_oversight(rep)
    console.rule("what the demo found")
    console.print(oversight_table(oversight))
    console.print(oversight_verdict(oversight), highlight=False)
    console.print("\n" + finding_sentence(finding), highlight=False)
    (settings.out / "REPORT.md").write_text(finding_markdown(finding), encoding="utf-8")
    data = rep.model_dump(mode="json")
    (settings.out / "report.json").write_text(json.dumps(data, indent=1))
    console.rule("artifacts")
    console.print(f"ledger:       {settings.db}", highlight=False)
    console.print(f"report JSON:  {settings.out / 'report.json'}", highlight=False)
    console.print(f"finding:      {settings.out / 'REPORT.md'}", highlight=False)
    if (settings.out / "workspaces").exists():
        console.print(f"workspaces:   {settings.out / 'workspaces'}", highlight=False)
    console.print(f"\nnext: coimprove report --db {settings.db}", highlight=False)
    console.print(f"      coimprove ledger verify --db {settings.db}", highlight=False)
    console.print(f"      coimprove review --db {settings.db}", highlight=False)
    console.print(f"\ndemo finished in {seconds:.0f}s", highlight=False)
    return data


def _refresh(ledger: SqliteLedger, info: RunInfo) -> RunInfo:
    from coimprove.runner import list_runs

    found = list_runs(ledger, info.run_id)
    return found[0] if found else info


def run_demo(
    settings: DemoSettings,
    *,
    console: Console | None = None,
    steps: Sequence[DemoStep] | None = None,
) -> dict[str, Any]:
    """Run the demo end to end; returns the oversight report (JSON data)."""
    console = console or Console()
    started = time.monotonic()
    steps = list(STEPS if steps is None else steps)
    settings.out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]coimprove demo[/] → {settings.out}", highlight=False)
    ensure_sandboxes([s for step in steps for s in step.sandboxes], console)
    check_model(settings.model, console)
    infos: list[RunInfo] = []
    for step in steps:
        console.rule(f"{step.graph}: {step.title}")
        if settings.interactive:
            infos += asyncio.run(start_step(step, settings))
        else:
            how = ", ".join(r.id for r in reviewer_pool(settings.reviewers, settings.seed))
            console.print(
                f"scripted reviewers: {how}, policy {settings.policy or 'of the graph'} "
                "(simulated clock; model and sandbox real)",
                highlight=False,
            )
            infos += asyncio.run(run_step_headless(step, settings, console))
    if settings.interactive:
        from coimprove.tui import run_review

        run_review(settings.db, reviewer=getpass.getuser())
    return print_summary(settings, infos, console, time.monotonic() - started)


__all__ = [
    "CATEGORY_LABELS",
    "STEPS",
    "DemoSettings",
    "DemoStep",
    "ensure_sandboxes",
    "reviewer_pool",
    "run_demo",
]
