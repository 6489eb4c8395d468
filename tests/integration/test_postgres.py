"""Runs on a shared Postgres ledger: checkpoints in the same database, any process resumes them,
and the measures come out exactly as on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from coimprove import Decision, Runner, SimClock
from coimprove.headless import run_headless
from coimprove.ledger import open_ledger
from coimprove.metrics import report
from coimprove.reviewers.scripted import ScriptedReviewer
from tests.helpers import linear_workflow
from tests.ledgers import LedgerBackend, make_backend

ROOT = Path(__file__).resolve().parents[2]
GRAPH = "tests/integration/crash_graph.py:workflow"


def _flat(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()
        }
    return {path: value}


def _pg(pg_dsn: str) -> LedgerBackend:
    return make_backend("postgres", pg_dsn)


async def test_a_run_paused_on_postgres_is_finished_by_another_runner(
    pg_dsn: str, tmp_path: Path
) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    url, effects = _pg(pg_dsn).url, tmp_path / "effects.txt"
    workflow = linear_workflow("pg-linear", side_effects=effects, pairs=2)
    async with Runner(url, clock=SimClock(10.0)) as first:
        assert isinstance(first.checkpointer, AsyncPostgresSaver)
        info = await first.start(workflow)
        (gate,) = info.open_gates
    for _ in range(2):  # each gate answered and applied by a fresh runner (a new process, say)
        async with Runner(url, clock=SimClock(20.0)) as runner:
            runner.register(workflow)
            record = runner.gate(gate)
            runner.decide(
                gate, Decision(verdict="approve", reviewer="ann", digest=record.request.digest)
            )
            await runner.advance()
            state = runner.info(info.run_id)
            gate = state.open_gates[0] if state.open_gates else ""
    assert state.state == "finished"
    assert len(effects.read_text().splitlines()) == 2
    ledger = open_ledger(url)
    try:
        assert ledger.verify().ok
        assert len(ledger.events(types=["effect.finished"])) == 2
    finally:
        ledger.close()


def _cli(*args: str, db: str, effects: Path) -> Any:
    done = subprocess.run(
        ["coimprove", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COIMPROVE_DB": db, "COIMPROVE_TEST_EFFECTS": str(effects)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_shell_drives_a_run_on_a_postgres_ledger(pg_dsn: str, tmp_path: Path) -> None:
    url, effects = _pg(pg_dsn).url, tmp_path / "effects.txt"
    (run,) = _cli("run", GRAPH, db=url, effects=effects)
    for _ in range(2):
        (gate,) = _cli("pending", db=url, effects=effects)
        _cli(
            "decide", gate["gate_id"], "approve", "--as", "ann", "--digest", gate["digest"],
            db=url, effects=effects,
        )  # fmt: skip
    (status,) = _cli("status", db=url, effects=effects)
    assert status["run_id"] == run["run_id"] and status["state"] == "finished"
    assert effects.read_text().count("\n") == 2
    assert _cli("report", db=url, effects=effects)["decided"] == 2
    head = _cli("ledger", "verify", db=url, effects=effects)
    assert head["ok"] and head["events"] > 10
    assert _cli("ledger", "verify", "--anchor", head["head"], db=url, effects=effects)["ok"]
    # review takes the Postgres ledger (tests/tui/test_terminal.py drives it in a terminal);
    # only the bad theme is refused here
    refused = subprocess.run(
        ["coimprove", "review", "--db", url, "--theme", "pink"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "light or dark" in refused.stderr


async def test_the_same_events_give_the_same_chain_and_measures_on_both_backends(
    pg_dsn: str, tmp_path: Path
) -> None:
    result = await run_headless(
        linear_workflow("both", policy="canary", pairs=2),
        [
            ScriptedReviewer("careful", id="care-1", seed=5),
            ScriptedReviewer("fatigued", id="tired-1", seed=6),
        ],
        runs=30,
        db=tmp_path / "l.db",
        seed=9,
    )
    sqlite, pg = open_ledger(result.url), open_ledger(_pg(pg_dsn).url)
    try:
        with pg.transaction() as tx:  # replay every event, as appended on SQLite
            for e in sqlite.events():
                tx.append(e.type, at=e.at, run_id=e.run_id, gate_id=e.gate_id, actor=e.actor,
                          data=e.data)  # fmt: skip
        assert pg.events() == sqlite.events()
        assert pg.verify() == sqlite.verify()  # one chain: the same hashes, the same head
        assert pg.events(types=["canary.revealed"])
        got, want = _flat(report(pg).model_dump()), _flat(report(sqlite).model_dump())
        assert got.keys() == want.keys()
        numbers = {k for k, v in want.items() if isinstance(v, float)}
        # percentiles interpolate in NUMERIC on PostgreSQL: equal to the last bit or two
        assert {k: got[k] for k in numbers} == pytest.approx(
            {k: want[k] for k in numbers}, rel=1e-12
        )
        assert {k: got[k] for k in got.keys() - numbers} == {
            k: want[k] for k in want.keys() - numbers
        }
    finally:
        sqlite.close()
        pg.close()


async def test_a_headless_canary_run_on_postgres_is_measured_from_its_events(
    pg_dsn: str,
) -> None:
    url = _pg(pg_dsn).url
    result = await run_headless(
        linear_workflow("pg-canary", policy="canary", pairs=2),
        [ScriptedReviewer("careful", id="care-1", seed=5)],
        runs=30,
        db=url,
        seed=9,
    )
    assert result.db is None and result.url == url
    ledger = open_ledger(url)
    try:
        revealed = ledger.events(types=["canary.revealed"])
        got = report(ledger)
        assert ledger.verify().ok
    finally:
        ledger.close()
    verdicts = [v for e in revealed for v in e.data["verdicts"] if v != "escalate"]
    assert revealed and got.canary.n == len(verdicts)
    assert got.canary.caught == sum(1 for v in verdicts if v in ("reject", "request_changes"))
    assert got.decisions == result.decisions
