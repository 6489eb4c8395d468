"""The ``coimprove`` command line.

Every command takes ``--db`` (default ``$COIMPROVE_DB`` or ``.coimprove/ledger.db``); commands
whose output is data take ``--json``. Errors are one line naming what is wrong; exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from coimprove._log import configure as configure_logging
from coimprove.ablate.cli import ablate
from coimprove.errors import (
    CoimproveError,
    DigestMismatchError,
    InvalidDecisionError,
    LedgerIntegrityError,
    NotALedgerError,
    RunError,
)
from coimprove.gates import GateRecord, open_gates
from coimprove.ledger import SqliteLedger, Synchronous, ledger_kind, open_ledger, sqlite_path
from coimprove.ledger.chain import UNPROVEN_REWRITE
from coimprove.ledger.sqlite import SYNCHRONOUS
from coimprove.metrics import report as build_report
from coimprove.model import Decision, canonical_json
from coimprove.policy import load_policy
from coimprove.runner import DEFAULT_DB, Runner, list_runs, load_workflow
from coimprove.sandbox.cli import sandbox_app

app = typer.Typer(
    name="coimprove",
    help="AI research workflows with mandatory, measured human checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ledger_app = typer.Typer(help="Inspect and verify the tamper-evident ledger.", no_args_is_help=True)
policy_app = typer.Typer(help="Validate and explain policies.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(policy_app, name="policy")
app.add_typer(sandbox_app, name="sandbox")
app.command(name="ablate")(ablate)

if TYPE_CHECKING:
    from coimprove.ledger.postgres import PostgresLedger
    from coimprove.workflow import Workflow

out = Console()
err = Console(stderr=True)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="COIMPROVE_DB",
        help="Ledger: a file (checkpoints live beside it), sqlite:///path, or postgresql://… "
        "(a shared ledger; checkpoints in the same database).",
    ),
]
DEFAULT_DB_OPT = str(DEFAULT_DB)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print data as JSON.")]


def _configure_logging() -> None:
    json_logs = os.environ.get("CI") == "true" or not sys.stderr.isatty()
    configure_logging(os.environ.get("COIMPROVE_LOG", "WARNING"), json=json_logs)


def _existing_ledger(
    db: str, *, synchronous: Synchronous | None = None
) -> SqliteLedger | PostgresLedger:
    """The ledger at `db`, which must exist (`synchronous`: see `SqliteLedger`)."""
    if ledger_kind(db) == "postgres":
        return cast("PostgresLedger", open_ledger(db))
    path = sqlite_path(db)
    if not path.exists():
        raise CoimproveError(f"no ledger at {db} (start a run with `coimprove run`, or pass --db)")
    if path.is_file() and path.stat().st_size == 0:  # SQLite would make it a new ledger
        raise NotALedgerError(f"{path} is an empty file, not a coimprove ledger; left unchanged")
    return SqliteLedger(path, synchronous=synchronous)


def _seeded_run_ids(db: str, graph: str, seed: int, runs: int) -> Callable[[int], str] | None:
    """Run ids for a headless run that depend only on the graph, seed and index, so the same
    command on a fresh ledger gives the same reviews (scripted reviewers and canaries draw
    their numbers per gate id). None, with a warning, if this ledger already holds them."""
    ids = [f"r-{graph}-s{seed}-{i:04d}" for i in range(runs)]
    if ledger_kind(db) == "postgres" or sqlite_path(db).exists():
        with _existing_ledger(db) as ledger:
            taken = ledger.query(
                "SELECT COUNT(*) FROM events WHERE type = 'run.started' AND run_id IN "
                f"({', '.join('?' * len(ids))})",
                ids,
            )[0][0]
        if taken:
            err.print(
                f"[yellow]note:[/] this ledger already holds runs of {graph!r} with seed {seed}; "
                "these runs get fresh ids, so their reviews differ from a first run with this "
                "seed (use a new --db to reproduce one)",
                highlight=False,
                soft_wrap=True,
            )
            return None
    return ids.__getitem__


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _parse_json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CoimproveError(f"{what}: cannot read {value[1:]}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise CoimproveError(
                f"{what}: {value[1:]} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start})"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoimproveError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc


def _gate_row(g: GateRecord) -> dict[str, Any]:
    req = g.request.requirement
    deadline = None if req.timeout_s is None else g.opened.at + req.timeout_s
    return {
        "gate_id": g.gate_id,
        "run_id": g.run_id,
        "graph": g.request.graph,
        "gate": g.request.gate,
        "round": g.request.round,
        "kind": g.proposal.kind,
        "risk": g.proposal.risk,
        "title": g.proposal.title,
        "digest": g.proposal.digest,
        "requirement": f"{len(g.approvers())}/{req.quorum} of {','.join(req.roles)}",
        "opened_at": g.opened.at,
        "deadline": deadline,
        # past its deadline: it takes no decision and is rejected (or escalated) by the next
        # `coimprove resume`
        "overdue": deadline is not None and deadline <= time.time(),
    }


# -- run / resume -----------------------------------------------------------------------------


def with_model_input(workflow: Workflow, data: dict[str, Any], model: str) -> dict[str, Any]:
    """`data` with ``model`` set to `model` (``--model``); refused when the graph has no
    ``model`` input or `data` already names a different one."""
    if "model" not in workflow.builder.channels:
        raise CoimproveError(
            f"--model: graph {workflow.name!r} takes no 'model' input (its models are set in "
            "--input; see its docstring)"
        )
    given = data.get("model")
    if given is not None and given != model:
        raise CoimproveError(
            f"--model {model!r} and --input's model {given!r} differ: give the model once"
        )
    return {**data, "model": model}


@app.command()
def run(
    graph: Annotated[str, typer.Argument(help="path/to/graph.py:attr, module:attr or a built-in")],
    db: DbOpt = DEFAULT_DB_OPT,
    inputs: Annotated[
        str | None, typer.Option("--input", help="Initial state as JSON or @file.json.")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="Policy name or YAML path (default: the graph's own).")
    ] = None,
    reviewer: Annotated[
        list[str] | None,
        typer.Option(help="Answer gates headless with this scripted profile (repeatable)."),
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="How many runs to start.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for reviewers and canaries.")] = 0,
    model: Annotated[
        str | None,
        typer.Option(help="Model spec for the graph's agents (its 'model' input): local, fake, …"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start runs of a workflow. They pause at gates, or run headless with --reviewer."""
    workflow = load_workflow(graph)
    data = _parse_json_arg(inputs, "--input") or {}
    if not isinstance(data, dict):
        raise CoimproveError("--input must be a JSON object (the initial graph state)")
    if model is not None:
        data = with_model_input(workflow, data, model)
    if policy is not None:
        load_policy(policy)  # fail before starting anything
    if reviewer:
        from coimprove.headless import run_headless
        from coimprove.reviewers.scripted import ScriptedReviewer

        pool = [
            ScriptedReviewer.from_profile_name(name, id=f"{name}-{i}", seed=seed)
            for i, name in enumerate(reviewer)
        ]
        result = asyncio.run(
            run_headless(
                workflow,
                pool,
                runs=runs,
                inputs=data,
                db=db,
                policy=policy,
                seed=seed,
                run_ids=_seeded_run_ids(db, workflow.name, seed, runs),
            )
        )
        infos = result.runs
    else:

        async def start() -> list[Any]:
            async with Runner(db, seed=seed) as runner:
                return [await runner.start(workflow, data, policy=policy) for _ in range(runs)]

        infos = asyncio.run(start())
    if as_json:
        _print_json([i.__dict__ for i in infos])
    else:
        for info in infos:
            out.print(f"[bold]{info.run_id}[/] {info.graph} [cyan]{info.state}[/]")
            for gid in info.open_gates:
                out.print(f"  waiting at {gid}  (coimprove show {gid})")
            if info.error:
                out.print(f"  [red]{info.error}[/]")
    failed = [i.run_id for i in infos if i.state in ("failed", "blocked")]
    if failed:
        raise RunError(
            f"{len(failed)} of {len(infos)} run(s) failed ({', '.join(failed[:3])}"
            f"{', …' if len(failed) > 3 else ''}); `coimprove status` shows why"
        )


@app.command()
def resume(
    run_id: Annotated[str | None, typer.Argument(help="One run (default: every run).")] = None,
    db: DbOpt = DEFAULT_DB_OPT,
    reapprove: Annotated[
        str | None,
        typer.Option(help="Effect key <gate id>/<effect> to grant one more attempt."),
    ] = None,
    as_: Annotated[str | None, typer.Option("--as", help="Who re-approves.")] = None,
    note: Annotated[str, typer.Option(help="Why the effect may run again.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Apply recorded decisions and finish interrupted steps (crash recovery)."""
    _existing_ledger(db).close()

    async def go() -> list[Any]:
        async with Runner(db) as runner:
            if run_id is not None:
                runner.info(run_id)  # refuses a run this ledger does not hold
            if reapprove:
                if not as_:
                    raise InvalidDecisionError("--reapprove needs --as REVIEWER")
                runner.reapprove(reapprove, as_, note=note)
            await runner.resume(run_id)
            return runner.runs(run_id)

    infos = asyncio.run(go())
    if as_json:
        _print_json([i.__dict__ for i in infos])
        return
    for info in infos:
        out.print(
            f"{info.run_id} [cyan]{info.state}[/]" + (f"  {info.error}" if info.error else "")
        )


# -- looking and deciding ---------------------------------------------------------------------


@app.command()
def status(
    run_id: Annotated[str | None, typer.Argument()] = None,
    db: DbOpt = DEFAULT_DB_OPT,
    as_json: JsonOpt = False,
) -> None:
    """List runs and their states."""
    with _existing_ledger(db) as ledger:
        infos = list_runs(ledger, run_id)
    if run_id is not None and not infos:
        raise RunError(f"no run {run_id!r} in this ledger (see `coimprove status`)")
    if as_json:
        _print_json([i.__dict__ for i in infos])
        return
    table = Table("run", "graph", "policy", "state", "open gates")
    for i in infos:
        table.add_row(i.run_id, i.graph, i.policy, i.state, ", ".join(i.open_gates) or "-")
    out.print(table)


@app.command()
def pending(
    db: DbOpt = DEFAULT_DB_OPT,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Gates waiting for a decision."""
    with _existing_ledger(db) as ledger:
        rows = [_gate_row(g) for g in open_gates(ledger, run_id)]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no gates are waiting")
        return
    # the gate id and the digest prefix are what `show` and `decide` take: never elided; the
    # title wraps instead when the terminal is narrow
    table = Table()
    table.add_column("gate", no_wrap=True, min_width=max(len(r["gate_id"]) for r in rows))
    table.add_column("kind")
    table.add_column("risk")
    table.add_column("title", overflow="fold")
    table.add_column("needs")
    table.add_column("digest", no_wrap=True, min_width=19)
    for r in rows:
        needs = f"{r['requirement']} [red](overdue)[/]" if r["overdue"] else r["requirement"]
        table.add_row(r["gate_id"], r["kind"], r["risk"], r["title"], needs, r["digest"][:19])
    out.print(table)
    if any(r["overdue"] for r in rows):
        out.print("overdue gates fail closed: `coimprove resume` records their timeouts")


@app.command()
def show(
    gate_id: str,
    db: DbOpt = DEFAULT_DB_OPT,
    as_: Annotated[
        str | None, typer.Option("--as", help="Record that this reviewer looked (for dwell).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a gate's proposal in full (recorded as a view with --as)."""
    from coimprove.gates import load_gate, record_view

    with _existing_ledger(db) as ledger:
        record = load_gate(ledger, gate_id)
        if as_:
            import time

            record_view(ledger, gate_id, as_, "gate", at=time.time())
            record_view(ledger, gate_id, as_, "detail", at=time.time())
    request = record.request.model_copy(update={"proposal": record.proposal})
    if as_json:
        _print_json({**request.model_dump(mode="json"), "status": record.status})
        return
    p = record.proposal
    out.rule(f"{gate_id} · {record.status}")
    out.print(f"[bold]{p.title}[/]  ({p.kind}, risk {p.risk}, by {p.author})")
    out.print(f"needs: {_gate_row(record)['requirement']} · policy {request.requirement.policy}")
    if request.feedback:
        out.print(f"[yellow]previous note:[/] {request.feedback}")
    if request.resubmission is not None:
        from coimprove.resubmission import describe

        style = "bold red" if request.resubmission.flagged else "dim"
        out.print(f"[{style}]{describe(request.resubmission)}[/]")
    if p.body:
        out.print(p.body)
    if p.payload:
        out.print(Syntax(json.dumps(p.payload, indent=2), "json"))
    for a in p.artifacts:
        out.print(f"[dim]artifact {a.name} ({a.size} B, {a.digest[:19]}…)[/]")
        if a.content:
            out.print(Syntax(a.content, "diff" if a.name.endswith((".diff", ".patch")) else "text"))
    out.print(f"digest: {p.digest}")


DECIDED_BUT_RUN_FAILED = 3
"""`decide`'s exit status when the decision is recorded but the run it resumed failed."""


@app.command()
def decide(
    gate_id: str,
    verdict: Annotated[
        str, typer.Argument(help="approve | edit | reject | request-changes | escalate")
    ],
    as_: Annotated[str, typer.Option("--as", help="Your reviewer id.")],
    digest: Annotated[
        str, typer.Option(help="Digest you reviewed (from `show`; a prefix of 12+ hex is enough).")
    ],
    db: DbOpt = DEFAULT_DB_OPT,
    note: Annotated[str, typer.Option(help="Rationale; required for request-changes.")] = "",
    payload: Annotated[
        str | None, typer.Option(help="Edited payload (JSON or @file) for `edit`.")
    ] = None,
    kind: Annotated[str, typer.Option(help="human | scripted | model")] = "human",
    role: Annotated[str | None, typer.Option(help="The role you act in.")] = None,
    apply: Annotated[
        bool, typer.Option("--apply/--no-apply", help="Resume the run now (default) or later.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Record a decision on a gate, then resume its run.

    Exit status: 0 when the decision is recorded (and the resumed run waits or finished);
    1 when nothing was recorded (the error says why); 3 when the decision is recorded but the
    run it resumed failed (`coimprove status RUN` shows why).
    """
    from coimprove.gates import check_open, load_gate

    with _existing_ledger(db) as ledger:
        record = load_gate(ledger, gate_id)
    check_open(record)  # whatever digest was seen, a decision on a closed gate is too late
    current = record.proposal.digest
    hex_part = digest.removeprefix("sha256:").lower()
    if not re.fullmatch(r"[0-9a-f]{12,64}", hex_part):
        raise InvalidDecisionError(
            f"--digest {digest!r} is not a sha256 digest or a prefix of one: it needs 12 to 64 "
            "hex digits (copy it from `coimprove show`)"
        )
    prefix = f"sha256:{hex_part}"
    if not current.startswith(prefix):
        raise DigestMismatchError(
            f"gate {gate_id!r} now shows {current[:19]}…, not {prefix[:19]}… (look again)"
        )
    try:
        decision = Decision.model_validate(
            {
                "verdict": verdict,
                "reviewer": as_,
                "reviewer_kind": kind,
                "digest": current,
                "note": note,
                "edited_payload": _parse_json_arg(payload, "--payload"),
                "role": role,
            }
        )
    except ValidationError as exc:
        raise InvalidDecisionError(f"invalid decision: {_short_validation(exc)}") from exc

    async def go() -> dict[str, Any]:
        async with Runner(db) as runner:
            recorded = runner.decide(gate_id, decision)
            result: dict[str, Any] = {
                "gate_id": gate_id,
                "recorded": recorded.event.seq,
                "outcome": recorded.outcome.outcome if recorded.outcome else None,
            }
            if recorded.outcome is not None and apply:
                run_id = recorded.event.run_id or ""
                await runner.advance(run_id)
                info = runner.info(run_id)
                result.update(
                    run_state=info.state, open_gates=list(info.open_gates), run_error=info.error
                )
            return result

    result = asyncio.run(go())
    if as_json:
        _print_json(result)
    else:
        settled = result["outcome"] or "waiting for more reviewers"
        out.print(f"recorded {verdict} on {gate_id} (event {result['recorded']}); gate: {settled}")
        if "run_state" in result:
            out.print(
                f"run is {result['run_state']}"
                + (f"; next: {', '.join(result['open_gates'])}" if result["open_gates"] else "")
            )
    if result.get("run_state") in ("failed", "blocked"):
        err.print(f"[red]error:[/] the resumed run {result['run_state']}: {result['run_error']}")
        raise typer.Exit(DECIDED_BUT_RUN_FAILED)


@app.command()
def review(
    db: DbOpt = DEFAULT_DB_OPT,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as", envvar="COIMPROVE_REVIEWER", help="Your reviewer id (default: login name)."
        ),
    ] = None,
    theme: Annotated[str, typer.Option(help="light | dark")] = "dark",
    apply: Annotated[
        bool,
        typer.Option("--apply/--no-apply", help="Resume runs after decisions (default) or not."),
    ] = True,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback/--no-feedback",
            help="Show what became of your decisions (canary reveals, outcomes, peers) and "
            "record what was shown (default), or show and record nothing.",
        ),
    ] = True,
    training: Annotated[
        bool,
        typer.Option(
            "--training",
            help="Review practice runs with more planted flaws; every miss is explained.",
        ),
    ] = False,
    graph: Annotated[
        str | None,
        typer.Option(help="With --training: start practice runs of this workflow first."),
    ] = None,
    practice_runs: Annotated[
        int, typer.Option(min=1, help="With --training --graph: how many practice runs.")
    ] = 10,
    canary_rate: Annotated[
        float,
        typer.Option(min=0.0, max=0.99, help="With --training: canary rate of practice runs."),
    ] = 0.5,
    inputs: Annotated[
        str | None,
        typer.Option("--input", help="With --graph: initial state as JSON or @file.json."),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(help="With --graph: the policy to raise (default: the graph's own)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the practice runs' canaries.")] = 0,
) -> None:
    """Review pending gates in a terminal UI (approve, edit, reject, request changes, escalate).

    `--db` may be a shared ``postgresql://`` ledger: reviewers on other machines see each
    other's decisions as they are made, and a quorum gate counts each of them once.

    With --training, only practice gates are shown: `--graph` starts practice runs of a
    workflow under its policy with the canary rate raised to `--canary-rate`.
    """
    import getpass

    from coimprove.tui import run_review

    if theme not in ("light", "dark"):
        raise CoimproveError(f"--theme must be light or dark, not {theme!r}")
    if graph is not None and not training:
        raise CoimproveError("--graph starts practice runs: use it with --training")
    if training and graph is not None:
        from coimprove.tui.training import start_practice, training_policy

        workflow = load_workflow(graph)
        data = _parse_json_arg(inputs, "--input") or {}
        if not isinstance(data, dict):
            raise CoimproveError("--input must be a JSON object (the initial graph state)")
        training_policy(policy or workflow.policy, canary_rate)  # fail before starting anything

        async def practice() -> list[Any]:
            async with Runner(db, seed=seed) as runner:
                return await start_practice(
                    runner,
                    workflow,
                    runs=practice_runs,
                    rate=canary_rate,
                    policy=policy,
                    inputs=data,
                )

        started = asyncio.run(practice())
        out.print(f"started {len(started)} practice runs of {workflow.name}")
    _existing_ledger(db).close()
    reviewer = as_ or getpass.getuser()
    run_review(
        db,
        reviewer=reviewer,
        theme=theme,  # type: ignore[arg-type]
        apply=apply,
        feedback=feedback,
        training=training,
    )


def _short_validation(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


# -- measures and the ledger ------------------------------------------------------------------


@app.command()
def report(
    db: DbOpt = DEFAULT_DB_OPT,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Oversight measures (latency, dwell, rubber-stamp, canaries, …) from the ledger."""
    with _existing_ledger(db) as ledger:
        rep = build_report(ledger, run_id=run_id)
    data = rep.model_dump(mode="json")
    if as_json:
        print(json.dumps(data))
        return
    table = Table("measure", "value", title="oversight report")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    for key in ("gates", "decided", "pending", "approval_rate", "rubber_stamp_rate"):
        table.add_row(key, fmt(data.get(key)))
    for key in ("latency_s", "dwell_s"):
        d = data.get(key) or {}
        table.add_row(key, " ".join(f"{q}={fmt(d.get(q))}" for q in ("p50", "p90", "p99")))
    from coimprove.report_view import canary_rows

    for key, value in canary_rows(rep.canary):
        table.add_row(key, value)
    out.print(table)
    by = data.get("by_reviewer") or {}
    if by:
        t2 = Table("reviewer", "decisions", "approval", "rubber-stamp", "dwell p50")
        for rid, m in by.items():
            t2.add_row(
                rid,
                fmt(m.get("decisions")),
                fmt(m.get("approval_rate")),
                fmt(m.get("rubber_stamp_rate")),
                fmt((m.get("dwell_s") or {}).get("p50")),
            )
        out.print(t2)
    if rep.by_category:
        from coimprove.report_view import category_table

        out.print(category_table(rep))
    if rep.resubmissions.resubmissions:
        from coimprove.report_view import resubmission_table

        out.print(resubmission_table(rep))
    _print_co_improvement(data.get("co_improvement") or {}, fmt)


def _print_co_improvement(co: dict[str, Any], fmt: Any) -> None:
    """Both directions of learning (reviewers from feedback, agents from notes), if any."""
    reviewers = co.get("reviewers") or {}
    if any(r.get("signal") for r in reviewers.values()):
        t = Table(
            "reviewer",
            "catch",
            "lessons",
            "catch/lesson [95% CI]",
            "catch/100 gates",
            title="reviewers learning from feedback",
        )
        for rid, r in reviewers.items():
            fit, per_gate = r.get("catch_per_lesson") or {}, r.get("catch_per_gate") or {}
            ci = (
                f" [{fmt(fit.get('low'))}, {fmt(fit.get('high'))}]"
                if fit.get("low") is not None
                else ""
            )
            slope = per_gate.get("slope")
            t.add_row(
                rid,
                f"{r.get('caught')}/{r.get('signal')}",
                fmt(r.get("lessons")),
                fmt(fit.get("slope")) + ci,
                fmt(None if slope is None else 100 * slope),
            )
        out.print(t)
    agents = (co.get("agents") or {}).get("by_memory") or {}
    if agents:
        t = Table(
            "agent memory",
            "first passes",
            "approved first time",
            "sound first time",
            "rounds to approval",
            "notes/attempt",
            title="agents learning from notes",
        )
        for key, a in agents.items():
            t.add_row(
                key,
                fmt(a.get("first_passes")),
                fmt(a.get("first_pass_approval_rate")),
                fmt(a.get("first_pass_sound_rate")),
                fmt(a.get("rounds_to_approval_mean")),
                fmt(a.get("notes_given_mean")),
            )
        out.print(t)


@app.command()
def demo(
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Review the gates yourself in the TUI.")
    ] = False,
    model: Annotated[
        str, typer.Option(help="Model spec: local (SmolLM2, default), fake, provider:model.")
    ] = "local",
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Where the ledger, workspaces and report go (default: new)."),
    ] = None,
    runs: Annotated[
        int | None,
        typer.Option(
            min=1, help="research_cycle runs (seeds SEED, SEED+1, ...; default 3, 1 interactive)."
        ),
    ] = None,
    reviewer: Annotated[
        list[str] | None,
        typer.Option(
            help="Scripted reviewer profile (repeatable; default careful and rubber_stamper); "
            "ROLE:PROFILE is named ROLE-PROFILE, e.g. lead:careful takes escalations."
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Policy for every run (default: demo, two reviewers per gate; interactive: "
            "each graph's own, so you alone decide)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the runs, reviewers and canaries.")] = 0,
) -> None:
    """Run the built-in research workflows end to end: local model, real sandboxes, report."""
    from coimprove.demo import MODE_DEFAULT, DemoSettings, run_demo

    if policy is not None:
        load_policy(policy)
    settings = DemoSettings(
        model=model,
        runs=runs or 0,
        policy=MODE_DEFAULT if policy is None else policy,
        seed=seed,
        interactive=interactive,
    )
    if out_dir is not None:
        settings = replace(settings, out=out_dir.resolve())
    if reviewer:
        settings = replace(settings, reviewers=tuple(reviewer))
    run_demo(settings, console=out)


@app.command("diff-validate")
def diff_validate(
    base: Annotated[str, typer.Option(help="Base model: fake (synthetic) or local.")] = "fake",
    seeds: Annotated[int, typer.Option(help="Planted runs.")] = 10,
    controls: Annotated[
        int | None, typer.Option(help="Control runs, B = A (default: as many as --seeds).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Responses per prompt and model.")] = 3,
    per_category: Annotated[
        int | None, typer.Option(help="Prompts per category (default: all).")
    ] = None,
    clusters: Annotated[int | None, typer.Option(help="k (default ~sqrt(n/2)).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Token budget of each response.")] = 48,
    plant: Annotated[
        list[str] | None,
        typer.Option(help="KIND:CATEGORY[:RATE] (repeatable; default: the six built-in plants)."),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where report.md/json go.")] = Path(
        ".coimprove/diff-validate"
    ),
) -> None:
    """Plant known differences into a base model's responses and measure behavior_diff's
    recall, precision and false-positive rate (95% Wilson intervals)."""
    from pydantic import ValidationError

    from coimprove.runner import load_graph_module

    v = load_graph_module("behavior_diff_validate")
    try:
        plants = None
        if plant:
            plants = []
            for spec in plant:
                kind, _, rest = spec.partition(":")
                category, _, rate = rest.partition(":")
                try:
                    plants.append(v.Plant(kind=kind, category=category, rate=float(rate or 1)))
                except ValueError as exc:
                    raise CoimproveError(f"--plant {spec!r}: rate is not a number") from exc
        settings = v.Settings(
            base=base,
            seeds=seeds,
            controls=controls,
            samples=samples,
            per_category=per_category,
            clusters=clusters,
            max_tokens=max_tokens,
            **({"plants": plants} if plants is not None else {}),
        )
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CoimproveError(f"diff-validate: {where}") from exc
    report = v.main(settings, out_dir)
    out.print(v.markdown(report), highlight=False)
    out.print(f"written: {out_dir / 'report.md'}, {out_dir / 'report.json'}")


@ledger_app.command("verify")
def ledger_verify(
    db: DbOpt = DEFAULT_DB_OPT,
    anchor: Annotated[
        str | None, typer.Option(help="A head hash recorded earlier; it must be on the chain.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain; fail (exit 1) on an edited, inserted or deleted event, or on
    a chain that ends before the head witness kept beside it. Says what it cannot prove."""
    with _existing_ledger(db) as ledger:
        result = ledger.verify()
        anchored_at: int | None = None
        if anchor is not None:
            found = ledger.query("SELECT seq FROM events WHERE hash = ?", [anchor])
            anchored_at = int(found[0][0]) if found else None
    unproven = list(result.unproven)
    if anchored_at is not None and UNPROVEN_REWRITE in unproven:
        unproven[unproven.index(UNPROVEN_REWRITE)] = (
            f"that events after event {anchored_at} (the anchor's) were not rewritten with "
            "their stored head and head witness: record a newer head to cover them"
        )
    if as_json:
        anchored = None if anchor is None else anchored_at is not None
        _print_json({**result.__dict__, "unproven": unproven, "anchor_found": anchored})
    if not result.ok:
        raise LedgerIntegrityError(
            f"{db}: ledger is NOT intact: {result.problem} (checked {result.events} events)"
        )
    if anchor is not None and anchored_at is None:
        raise LedgerIntegrityError(f"{db}: anchor {anchor} is not on the chain (rewritten?)")
    if as_json:
        return
    out.print(f"ok: {result.events} events, head {result.head}", highlight=False, soft_wrap=True)
    if anchored_at is not None:
        out.print(f"anchor: event {anchored_at} is on the chain", highlight=False)
    if result.witness is not None:
        out.print(
            f"head witness: event {result.witness} is on the chain with the hash it names",
            highlight=False,
        )
    if unproven:
        out.print("not proven by this check:", highlight=False)
        for item in unproven:
            out.print(f"  - {item}", highlight=False, soft_wrap=True)


@ledger_app.command("head")
def ledger_head(db: DbOpt = DEFAULT_DB_OPT) -> None:
    """Print the chain's head hash (store it elsewhere; `verify --anchor` checks it later)."""
    with _existing_ledger(db) as ledger:
        print(ledger.verify().head)


@ledger_app.command("durability")
def ledger_durability(
    mode: Annotated[
        str | None,
        typer.Argument(
            help="normal: a commit survives a killed process (kill -9), not a power loss; "
            "full: commits are also fsynced before a run resumes or an effect runs or returns "
            "(LangGraph's SQLite checkpoints are fsynced too). Omit to print the current one.",
            show_default=False,
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB_OPT,
) -> None:
    """Show or set how durable an SQLite ledger's commits are (recorded in the file; every
    process that opens the ledger afterwards commits that way)."""
    if ledger_kind(db) == "postgres":
        raise CoimproveError(
            f"{db}: a Postgres ledger commits as the server's synchronous_commit setting says"
        )
    if mode is not None and mode not in SYNCHRONOUS:
        raise CoimproveError(
            f"durability {mode!r} is not one of {', '.join(SYNCHRONOUS)}; the ledger is unchanged"
        )
    with _existing_ledger(db, synchronous=cast("Synchronous | None", mode)) as ledger:
        out.print(cast("SqliteLedger", ledger).synchronous)


@ledger_app.command("events")
def ledger_events(
    db: DbOpt = DEFAULT_DB_OPT,
    run_id: Annotated[str | None, typer.Option("--run")] = None,
    gate_id: Annotated[str | None, typer.Option("--gate")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List events (JSON lines with --json)."""
    with _existing_ledger(db) as ledger:
        events = ledger.events(run_id=run_id, gate_id=gate_id)
    if as_json:
        for e in events:
            print(canonical_json(e.model_dump(mode="json")))
        return
    table = Table("seq", "type", "run", "gate", "actor", "at")
    for e in events:
        table.add_row(
            str(e.seq), e.type, e.run_id or "", e.gate_id or "", e.actor or "", f"{e.at:.3f}"
        )
    out.print(table)


@policy_app.command("check")
def policy_check(ref: str) -> None:
    """Validate a policy file (or built-in name); print its rules."""
    pol = load_policy(ref)
    out.print(f"ok: policy {pol.name!r} with {len(pol.rules)} rule(s)")
    for name, settings in [("defaults", pol.defaults), *((r.name, r) for r in pol.rules)]:
        merged = pol._merge(settings)
        out.print(
            f"  {name}: roles={list(merged.roles or ())} quorum={merged.quorum} "
            f"kinds={list(merged.reviewer_kinds or ())} timeout={merged.timeout_s} "
            f"on_timeout={merged.on_timeout} min_review={merged.min_review_seconds}s "
            f"canary_rate={merged.canary_rate}"
        )


def main() -> None:
    """Entry point: run the app, turning coimprove errors into one-line messages."""
    _configure_logging()
    try:
        app()
    except CoimproveError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
