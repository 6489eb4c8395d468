from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from coimprove import Runner, SimClock
from tests.ledgers import LedgerBackend, make_backend
from tests.postgres import pg_dsn, pg_server  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _machine_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-machine state (the Postgres ledgers' head witnesses) in a temporary folder, not in
    the home directory; subprocesses inherit it."""
    from coimprove.ledger.witness import STATE_DIR_ENV

    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("state")))


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def checkpointer_kind(request: pytest.FixtureRequest) -> str:
    """Engine tests run against every checkpointer backend: SQLite beside an SQLite ledger,
    LangGraph's in-memory saver, and Postgres (ledger and checkpoints in one database)."""
    return str(request.param)


@pytest.fixture
async def runner(
    request: pytest.FixtureRequest, tmp_path: Path, checkpointer_kind: str
) -> AsyncIterator[Runner]:
    saver: Any = InMemorySaver() if checkpointer_kind == "memory" else None
    db = str(tmp_path / "ledger.db")
    if checkpointer_kind == "postgres":
        db = make_backend("postgres", request.getfixturevalue("pg_dsn")).url
    async with Runner(db, clock=SimClock(1000.0), checkpointer=saver) as r:
        yield r


# -- ledger backends: the conformance suite runs against each -----------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerBackend:
    """Where a ledger lives, for tests that must hold on every backend: its URL, a way to open
    it, and a way to tamper with its tables behind its back."""
    if request.param == "postgres":
        return make_backend("postgres", request.getfixturevalue("pg_dsn"))
    return make_backend("sqlite", str(tmp_path / "ledger.db"))
