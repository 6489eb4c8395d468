from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from coimprove import Runner, SimClock


@pytest.fixture(params=["sqlite", "memory"])
def checkpointer_kind(request: pytest.FixtureRequest) -> str:
    """Engine tests run against every checkpointer backend."""
    return str(request.param)


@pytest.fixture
async def runner(tmp_path: Path, checkpointer_kind: str) -> AsyncIterator[Runner]:
    saver: Any = InMemorySaver() if checkpointer_kind == "memory" else None
    async with Runner(tmp_path / "ledger.db", clock=SimClock(1000.0), checkpointer=saver) as r:
        yield r
