"""Fixtures for the TUI tests: a real ledger (an SQLite file, and a Postgres database on a
throwaway server: every test that takes `db` runs on both), real paused LangGraph runs, the
app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from coimprove import Runner, SimClock
from coimprove.tui import ReviewApp
from tests.ledgers import make_backend
from tests.tui.helpers import Db

START_AT = 1_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "postgres":
        return make_backend("postgres", request.getfixturevalue("pg_dsn")).url
    return tmp_path / "ledger.db"


@pytest.fixture
async def runner(db: Db) -> AsyncIterator[Runner]:
    async with Runner(db, clock=SimClock(START_AT)) as r:
        yield r


@pytest.fixture
def make_app(db: Db, runner: Runner) -> Callable[..., ReviewApp]:
    """The app as tests drive it: no key guard, no rest delay, polled by hand."""

    def make(**kw: Any) -> ReviewApp:
        options: dict[str, Any] = {
            "reviewer": "alice",
            "runner": runner,
            "guard_s": 0.0,
            "rest_s": 0.0,
            "poll_s": 0.0,
            "stats": False,
        }
        options.update(kw)
        return ReviewApp(db, **options)

    return make
