"""Where LangGraph checkpoints live: beside an SQLite ledger, or in the Postgres ledger's database.

With a Postgres ledger the runs' checkpoints use ``langgraph-checkpoint-postgres``
(`AsyncPostgresSaver`) on the same database, so every machine that can reach the ledger can
also resume its runs. Its tables (``checkpoints``, ``checkpoint_blobs``, ``checkpoint_writes``,
``checkpoint_migrations``) sit beside the ledger's (``events``, ``meta``, ``leases``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from coimprove.errors import CoimproveError

_SETUP_LOCK = 0x636B7074  # advisory lock id ("ckpt"): one process runs the migrations at a time


@asynccontextmanager
async def postgres_checkpointer(dsn: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """An `AsyncPostgresSaver` on `dsn`, its tables created (once, under an advisory lock)."""
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError as exc:
        raise CoimproveError(
            "checkpoints for a Postgres ledger need langgraph-checkpoint-postgres: "
            "pip install 'coimprove[postgres]'"
        ) from exc
    async with AsyncPostgresSaver.from_conn_string(dsn) as saver:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                await saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield saver
