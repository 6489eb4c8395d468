"""kill -9 at every step between a decision and its effect: nothing is lost, nothing runs twice.

Each test drives real processes (`crash_worker`) against one ledger and its checkpoints — an
SQLite file pair, or one PostgreSQL database — SIGKILLs one of them at a chosen point, then
recovers in a fresh process.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coimprove.ledger import SqliteLedger, ledger_kind, open_ledger
from coimprove.protocols import Ledger
from tests.ledgers import make_backend

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "sqlite-full", "postgres"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes a fresh ledger location on each backend: a file path (`sqlite-full`: a ledger
    set to ``full`` durability, which every process then follows) or a postgresql:// URL."""
    made: list[str] = []
    server = request.getfixturevalue("pg_server") if request.param == "postgres" else None

    def make() -> str:
        if server is None:
            made.append(str(tmp_path / f"l{len(made)}.db"))
            if request.param == "sqlite-full":
                SqliteLedger(made[-1], synchronous="full").close()
        else:
            made.append(server.create_database())
        return made[-1] if server is None else make_backend("postgres", made[-1]).url

    yield make
    if server is not None:
        for dsn in made:
            server.drop_database(dsn)


def _exists(db: str) -> bool:
    return ledger_kind(db) == "postgres" or Path(db).exists()


def _wait_for_a_run(db: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Return once the ledger at `db` records a started run (or the process has ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if _exists(db):
            ledger = open_ledger(db)
            try:
                if ledger.events(types=["run.started"]):
                    return
            finally:
                ledger.close()
        time.sleep(0.05)


def _worker(
    db: str, effects: Path, *args: str, crash_in_effect: bool = False, graph: str = "workflow"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COIMPROVE_TEST_EFFECTS": str(effects),
        "COIMPROVE_TEST_GRAPH": f"tests/integration/crash_graph.py:{graph}",
    }
    env.pop("COIMPROVE_TEST_CRASH", None)
    if crash_in_effect:
        env["COIMPROVE_TEST_CRASH"] = "in_effect"
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.crash_worker", db, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _executions(effects: Path) -> Counter[str]:
    if not effects.exists():
        return Counter()
    return Counter(line.split()[0] for line in effects.read_text().splitlines())


def _check_ledger(db: str) -> Ledger:
    ledger = open_ledger(db)
    assert ledger.verify().ok
    for gate in {e.gate_id for e in ledger.events(types=["gate.resolved"])}:
        assert len(ledger.events(gate_id=gate, types=["gate.resumed"])) == 1, gate
        assert len(ledger.events(gate_id=gate, types=["gate.resolved"])) == 1, gate
    return ledger


@pytest.mark.parametrize("point", ["after_decide", "after_effect_finished", "before_mark_resumed"])
def test_a_crash_after_the_decision_loses_nothing_and_repeats_nothing(
    tmp_path: Path, new_db: Callable[[], str], point: str
) -> None:
    db, effects = new_db(), tmp_path / "effects.txt"
    assert _worker(db, effects, "start", "2").returncode == 0
    killed = _worker(db, effects, "decide", "--crash", point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = _worker(db, effects, "finish")
    assert done.returncode == 0, done.stderr
    counts = _executions(effects)
    assert len(counts) == 4 and set(counts.values()) == {1}, counts  # 2 runs x 2 effects
    ledger = _check_ledger(db)
    if point == "before_mark_resumed":
        recovered = [e for e in ledger.events(types=["gate.resumed"]) if e.data["recovered"]]
        assert recovered, "the consumed interrupt should be recognised, not resumed again"


def test_a_crash_before_gates_are_recorded_reopens_them(
    tmp_path: Path, new_db: Callable[[], str]
) -> None:
    db, effects = new_db(), tmp_path / "effects.txt"
    killed = _worker(db, effects, "start", "1", "--crash", "before_open_gates")
    assert killed.returncode == -signal.SIGKILL
    assert not open_ledger(db).events(types=["gate.opened"])
    done = _worker(db, effects, "finish")
    assert done.returncode == 0, done.stderr
    assert set(_executions(effects).values()) == {1}
    _check_ledger(db)


def test_an_effect_killed_midway_is_not_rerun_without_a_fresh_approval(
    tmp_path: Path, new_db: Callable[[], str]
) -> None:
    db, effects = new_db(), tmp_path / "effects.txt"
    assert _worker(db, effects, "start", "1").returncode == 0
    killed = _worker(db, effects, "decide", crash_in_effect=True)
    assert killed.returncode == -signal.SIGKILL
    assert sum(_executions(effects).values()) == 1

    # a plain `coimprove resume` marks it interrupted and blocks the run: it does not re-run it
    resumed = subprocess.run(
        [sys.executable, "-m", "coimprove", "resume", "--db", db, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COIMPROVE_TEST_EFFECTS": str(effects)},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert '"state": "blocked"' in resumed.stdout
    assert sum(_executions(effects).values()) == 1
    ledger = open_ledger(db)
    assert ledger.events(types=["effect.interrupted"])

    done = _worker(db, effects, "finish")  # re-approves as lead-bob, then finishes
    assert done.returncode == 0, done.stderr
    counts = _executions(effects)
    reapproved = Counter(e.data["key"] for e in ledger.events(types=["effect.reapproved"]))
    assert all(counts[key] == 1 + reapproved[key] for key in counts), (counts, reapproved)
    assert sum(reapproved.values()) == 1


def test_an_idempotent_effect_killed_midway_runs_again_by_itself(
    tmp_path: Path, new_db: Callable[[], str]
) -> None:
    db, effects = new_db(), tmp_path / "effects.txt"
    graph = "idempotent_workflow"
    assert _worker(db, effects, "start", "1", graph=graph).returncode == 0
    assert _worker(db, effects, "decide", crash_in_effect=True, graph=graph).returncode < 0
    done = _worker(db, effects, "finish", graph=graph)
    assert done.returncode == 0, done.stderr
    ledger = open_ledger(db)
    assert not ledger.events(types=["effect.reapproved"])
    assert max(_executions(effects).values()) == 2  # the interrupted attempt, then the rerun


def test_random_kills_never_lose_a_decision_or_double_an_effect(
    tmp_path: Path, new_db: Callable[[], str]
) -> None:
    """Start a busy process, SIGKILL it at a random moment, recover; repeat."""
    rng = random.Random(int(os.environ.get("COIMPROVE_TEST_SEED", "7")))
    recovered_runs = 0
    for trial in range(6):
        db, effects = new_db(), tmp_path / f"e{trial}.txt"
        env = {
            **os.environ,
            "COIMPROVE_TEST_EFFECTS": str(effects),
            "COIMPROVE_TEST_GRAPH": "tests/integration/crash_graph.py:workflow",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import asyncio,sys; from tests.integration import crash_worker as w;"
                f"asyncio.run(w.main([{db!r}, 'start', '4']));"
                f"asyncio.run(w.main([{db!r}, 'finish']))",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # kill at a random moment once the process is at work (its start-up time depends on
        # the machine's load, so a fixed delay would often kill it before it did anything)
        _wait_for_a_run(db, proc)
        time.sleep(rng.uniform(0.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = _worker(db, effects, "finish") if _exists(db) else None
        if done is None:
            continue
        assert done.returncode == 0, done.stderr
        ledger = _check_ledger(db)
        counts = _executions(effects)
        reapproved = Counter(e.data["key"] for e in ledger.events(types=["effect.reapproved"]))
        started = len(ledger.events(types=["run.started"]))  # the kill may come before all 4
        assert len(counts) == 2 * started, counts  # 2 effects per started run, none lost
        recovered_runs += started
        # at most once per approval; a kill between `effect.started` and the function (with
        # a `full` ledger the fsync sits there) leaves an attempt that never ran
        assert all(1 <= counts[k] <= 1 + reapproved[k] for k in counts), (counts, reapproved)
    assert recovered_runs > 0, "every kill came before any run started: nothing was tested"
