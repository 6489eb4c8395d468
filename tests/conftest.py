from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from coimprove import Runner, SimClock
from tests.ledgers import LedgerBackend, make_backend
from tests.postgres import pg_dsn, pg_server  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "memory"])
def checkpointer_kind(request: pytest.FixtureRequest) -> str:
    """Engine tests run against every checkpointer backend."""
    return str(request.param)


@pytest.fixture
async def runner(tmp_path: Path, checkpointer_kind: str) -> AsyncIterator[Runner]:
    saver: Any = InMemorySaver() if checkpointer_kind == "memory" else None
    async with Runner(tmp_path / "ledger.db", clock=SimClock(1000.0), checkpointer=saver) as r:
        yield r


# -- ledger backends: the conformance suite runs against each -----------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerBackend:
    """Where a ledger lives, for tests that must hold on every backend: its URL, a way to open
    it, and a way to tamper with its tables behind its back."""
    if request.param == "postgres":
        return make_backend("postgres", request.getfixturevalue("pg_dsn"))
    return make_backend("sqlite", str(tmp_path / "ledger.db"))
