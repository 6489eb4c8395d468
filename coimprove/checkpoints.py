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
    """An `AsyncPostgresSaver` on `dsn`, its tables created (once, under an advisory lock).

    Its connection comes from a one-connection pool that checks the connection each time it
    is taken, so after the server restarts (or the connection drops) the next checkpoint
    read or write gets a new connection instead of failing on the dead one."""
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        raise CoimproveError(
            "checkpoints for a Postgres ledger need langgraph-checkpoint-postgres: "
            "pip install 'coimprove[postgres]'"
        ) from exc
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=1,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="coimprove-checkpoints",
    )
    try:
        await pool.open(wait=True, timeout=30)
    except psycopg.Error as exc:  # PoolTimeout included
        raise CoimproveError(f"cannot connect to the Postgres checkpoints: {exc}") from exc
    try:
        saver = AsyncPostgresSaver(pool)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                await saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield saver
    finally:
        await pool.close()
