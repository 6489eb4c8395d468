"""Fixtures for the TUI tests: a real SQLite ledger, real paused LangGraph runs, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from coimprove import Runner, SimClock
from coimprove.tui import ReviewApp

START_AT = 1_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
async def runner(db: Path) -> AsyncIterator[Runner]:
    async with Runner(db, clock=SimClock(START_AT)) as r:
        yield r


@pytest.fixture
def make_app(db: Path, runner: Runner) -> Callable[..., ReviewApp]:
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
