"""The Postgres ledger after its connection is cut: by the server (a backend terminated, the
server restarted) or on the way back from a COMMIT. Nothing half-written, nothing twice."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coimprove import Decision, LedgerConnectionError, Review
from coimprove.headless import run_headless
from coimprove.ledger import open_ledger
from coimprove.ledger.postgres import PostgresLedger, Reconnect
from coimprove.metrics import report
from coimprove.model import GateRequest, ReviewerKind
from coimprove.protocols import ReviewContext
from tests.integration.crash_graph import workflow as crashy
from tests.ledgers import make_backend
from tests.postgres import PgServer

pytestmark = pytest.mark.slow

QUICK = Reconnect(attempts=8, first_wait_s=0.05, max_wait_s=1.0, give_up_after_s=60.0)


@pytest.fixture
def ledger(pg_dsn: str) -> Iterator[PostgresLedger]:
    opened = PostgresLedger(make_backend("postgres", pg_dsn).url, reconnect=QUICK)
    yield opened
    opened.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="coimprove")
    return caplog


def _cut(server: PgServer, ledger: PostgresLedger) -> None:
    """Terminate the ledger's server process (what a restart or a dropped link does to it)."""
    pid = ledger._raw.info.backend_pid
    with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
    assert row is not None and row[0] is True


def _types(ledger: PostgresLedger) -> list[str]:
    return [e.type for e in ledger.events()]


def test_a_connection_cut_while_idle_is_taken_back_and_logged(
    pg_server: PgServer, ledger: PostgresLedger, logs: pytest.LogCaptureFixture
) -> None:
    ledger.append("run.started", at=1.0, run_id="r1")
    _cut(pg_server, ledger)
    assert [e.seq for e in ledger.events()] == [1]  # a read: run again on a new connection
    _cut(pg_server, ledger)
    ledger.append("run.finished", at=2.0, run_id="r1")
    _cut(pg_server, ledger)
    assert ledger.acquire_lease("r1", "me", 30.0)
    _cut(pg_server, ledger)
    assert ledger.query("SELECT COUNT(*) FROM events") == [(2,)]
    _cut(pg_server, ledger)
    assert ledger.verify().ok and ledger.last_seq() == 2
    assert _types(ledger) == ["run.started", "run.finished"]
    assert "ledger.connection_lost" in logs.text and "ledger.reconnected" in logs.text


def test_a_transaction_cut_before_commit_is_refused_and_leaves_nothing(
    pg_server: PgServer, ledger: PostgresLedger
) -> None:
    ledger.append("run.started", at=1.0, run_id="r1")

    def cut_halfway() -> None:
        with ledger.transaction() as tx:
            tx.append("gate.opened", at=2.0, run_id="r1", gate_id="g")
            _cut(pg_server, ledger)
            tx.append("gate.decided", at=3.0, run_id="r1", gate_id="g")

    with pytest.raises(LedgerConnectionError, match="not recorded") as refused:
        cut_halfway()
    assert refused.value.committed is False
    assert "events 2-2 (gate.opened)" in str(refused.value)
    assert _types(ledger) == ["run.started"]  # neither half of the transaction
    ledger.append("run.finished", at=4.0, run_id="r1")  # the ledger carries on
    assert ledger.verify().ok and _types(ledger) == ["run.started", "run.finished"]


def _break_commit(monkeypatch: pytest.MonkeyPatch, how: str, server: PgServer) -> list[int]:
    """Make the next COMMIT lose its connection: `before` (the server never gets it) or
    `after` (it commits, and the reply is lost). Returns a list that counts the breaks."""
    original = psycopg.Transaction.__exit__
    broken: list[int] = []

    def exit_(self: psycopg.Transaction, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc_type is not None or broken or self.savepoint_name:
            return original(self, exc_type, exc, tb)
        broken.append(1)
        conn = self.connection
        if how == "before":
            with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (conn.info.backend_pid,))
            return original(self, exc_type, exc, tb)
        result = original(self, exc_type, exc, tb)
        conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")
        return result  # pragma: no cover

    monkeypatch.setattr(psycopg.Transaction, "__exit__", exit_)
    return broken


@pytest.mark.parametrize("how", ["before", "after"])
def test_an_append_whose_commit_is_cut_is_recorded_exactly_once(
    pg_server: PgServer,
    ledger: PostgresLedger,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    how: str,
) -> None:
    ledger.append("run.started", at=1.0, run_id="r1")
    broken = _break_commit(monkeypatch, how, pg_server)
    event = ledger.append("gate.opened", at=2.0, run_id="r1", gate_id="g", data={"n": 1})
    assert broken == [1]
    assert _types(ledger) == ["run.started", "gate.opened"]
    assert ledger.events()[-1] == event and ledger.verify().ok
    assert "ledger.commit_checked" in logs.text
    assert ("ledger.append_again" in logs.text) == (how == "before")


def test_a_transaction_whose_commit_reply_is_lost_reports_it_committed(
    pg_server: PgServer, ledger: PostgresLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _break_commit(monkeypatch, "after", pg_server)
    with ledger.transaction() as tx:
        tx.append("run.started", at=1.0, run_id="r1")
        tx.append("run.finished", at=2.0, run_id="r1")
    assert broken == [1] and _types(ledger) == ["run.started", "run.finished"]


def test_a_server_that_stays_away_gives_a_clear_error(
    pg_server: PgServer, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_backend("postgres", pg_dsn).url
    ledger = PostgresLedger(url, reconnect=Reconnect(attempts=3, first_wait_s=0.01))
    _cut(pg_server, ledger)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(LedgerConnectionError, match=r"cannot be reached \(tried 3 times"):
        ledger.events()
    with pytest.raises(LedgerConnectionError, match="cannot be reached"):
        ledger.append("run.started", at=1.0, run_id="r1")
    monkeypatch.undo()
    assert ledger.events() == []  # nothing was half-written while it was away
    ledger.close()


class _RestartsTheServer:
    """Approves every gate; during its `at`-th review the database server restarts."""

    def __init__(self, server: PgServer, at: int) -> None:
        self.server, self.at, self.reviews = server, at, 0

    @property
    def id(self) -> str:
        return "alice"

    @property
    def kind(self) -> ReviewerKind:
        return "human"

    async def review(self, request: GateRequest, context: ReviewContext) -> Review:
        self.reviews += 1
        if self.reviews == self.at:
            self.server.restart()
        decision = Decision(verdict="approve", reviewer="alice", digest=request.proposal.digest)
        return Review(decision=decision, decided_at=context.clock.now() + 30)


async def test_a_headless_run_finishes_across_a_server_restart(
    pg_server: PgServer,
    pg_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    if not pg_server.restartable:
        pytest.skip("the server comes from $COIMPROVE_TEST_PG_DSN: the tests cannot restart it")
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("COIMPROVE_TEST_EFFECTS", str(effects))
    url = make_backend("postgres", pg_dsn).url
    reviewer = _RestartsTheServer(pg_server, at=3)
    result = await run_headless(crashy, [reviewer], runs=3, db=url, seed=1)
    assert reviewer.reviews == 6  # 3 runs x 2 gates; the server restarted during the 3rd
    assert [r.state for r in result.runs] == ["finished"] * 3
    assert "ledger.connection_lost" in logs.text  # the restart did cut the ledger's connection
    executed = Counter(line.split()[0] for line in effects.read_text().splitlines())
    assert len(executed) == 6 and set(executed.values()) == {1}, executed  # no effect twice
    ledger = open_ledger(url)
    try:
        assert ledger.verify().ok
        decided = Counter(e.gate_id for e in ledger.events(types=["gate.decided"]))
        assert len(decided) == 6 and set(decided.values()) == {1}, decided  # none lost
        assert report(ledger).decided == 6
    finally:
        ledger.close()


async def test_a_checkpoint_write_whose_connection_drops_is_written_on_a_new_one(
    pg_server: PgServer, pg_dsn: str, logs: pytest.LogCaptureFixture
) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    from coimprove.checkpoints import postgres_checkpointer

    async with postgres_checkpointer(make_backend("postgres", pg_dsn).url) as saver:
        pool = saver.conn  # type: ignore[attr-defined]
        pool._check = None  # hand the pooled connection out unchecked: it drops while in use
        async with pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        checkpoint = empty_checkpoint()
        config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        saved = await saver.aput(config, checkpoint, {}, {})
        got = await saver.aget_tuple(saved)
    assert got is not None and got.checkpoint["id"] == checkpoint["id"]
    assert "checkpoints.connection_lost" in logs.text
