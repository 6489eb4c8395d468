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
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from coimprove._log import get_logger
from coimprove.errors import CoimproveError

log = get_logger("coimprove.checkpoints")

_SETUP_LOCK = 0x636B7074  # advisory lock id ("ckpt"): one process runs the migrations at a time


def _connection_lost(exc: BaseException) -> bool:
    """A psycopg error that means the connection went away (no SQLSTATE: the client saw it
    close; class 08, connection exception; 57P, the server shut the session down)."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _again(what: str) -> AsyncRetrying:
    def logged(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "checkpoints.connection_lost",
            during=what,
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 3),
            error=str(error),
        )

    return AsyncRetrying(
        stop=stop_after_attempt(5) | stop_after_delay(60),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception(_connection_lost),
        before_sleep=logged,
        reraise=True,
    )


@asynccontextmanager
async def postgres_checkpointer(dsn: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """An `AsyncPostgresSaver` on `dsn`, its tables created (once, under an advisory lock).

    Its connection comes from a one-connection pool that checks the connection each time it
    is taken, so after the server restarts (or the connection drops) the next checkpoint
    read or write gets a new connection instead of failing on the dead one; one lost while in
    use is run again on a new connection (`_reconnecting`)."""
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
        saver = _reconnecting(AsyncPostgresSaver)(pool)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
            try:
                await saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield saver
    finally:
        await pool.close()


def _reconnecting(base: type[Any]) -> type[Any]:
    """`base` (`AsyncPostgresSaver`) whose checkpoint reads and writes run again (bounded,
    logged) when their connection is lost while they run: the pool hands out a checked
    connection for the next attempt. Doing a write again is safe: checkpoints, blobs and
    writes are upserts keyed by thread, namespace, checkpoint, task and index."""

    class ReconnectingPostgresSaver(base):  # type: ignore[misc]
        async def aget_tuple(self, config: Any) -> Any:
            async for attempt in _again("read a checkpoint"):
                with attempt:
                    return await super().aget_tuple(config)
            return None  # pragma: no cover

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            async for attempt in _again("write a checkpoint"):
                with attempt:
                    return await super().aput(config, checkpoint, metadata, versions)
            return None  # pragma: no cover

        async def aput_writes(
            self, config: Any, writes: Any, task_id: str, task_path: str = ""
        ) -> None:
            async for attempt in _again("write a task's writes"):
                with attempt:
                    await super().aput_writes(config, writes, task_id, task_path)

    return ReconnectingPostgresSaver
