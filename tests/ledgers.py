"""Ledger backends for the conformance suite: open one, and tamper with it like an attacker."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from coimprove.ledger import open_ledger
from coimprove.protocols import Ledger


@dataclass(frozen=True)
class LedgerBackend:
    kind: Literal["sqlite", "postgres"]
    url: str
    """A path (SQLite) or a postgresql:// URL: what `open_ledger`, `Runner` and ``--db`` take."""

    def open(self) -> Ledger:
        """A new connection to this ledger (creating it the first time)."""
        return open_ledger(self.url)

    def tamper(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Write to the ledger's tables directly, bypassing the ledger (``?`` placeholders)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.url) as raw:
                raw.execute(sql, tuple(params))
            return
        import psycopg

        from coimprove.ledger.postgres import to_pyformat

        with psycopg.connect(self.url, autocommit=True) as raw:
            raw.execute(to_pyformat(sql), tuple(params))  # type: ignore[call-overload]


def make_backend(kind: Literal["sqlite", "postgres"], where: str) -> LedgerBackend:
    if kind == "postgres":
        import psycopg

        # a URL, as a user would type it for --db
        info = psycopg.conninfo.conninfo_to_dict(where)
        url = (
            f"postgresql://{info.get('user', '')}@{info.get('host', '')}:{info.get('port', 5432)}"
            f"/{info['dbname']}"
        )
        return LedgerBackend("postgres", url)
    return LedgerBackend("sqlite", where)
