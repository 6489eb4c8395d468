"""Open a ledger from what a user types: a path, ``sqlite:///path`` or ``postgresql://…``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from coimprove.errors import LedgerError
from coimprove.ledger.sqlite import SqliteLedger
from coimprove.protocols import Ledger

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = ("postgresql", "postgres")


_CONNINFO = re.compile(r"^\s*\w+\s*=\S*(\s+\w+\s*=\S*)+\s*$")


def ledger_kind(target: str | os.PathLike[str]) -> str:
    """``"postgres"`` or ``"sqlite"`` for a ledger path or URL (an unknown scheme is an error)."""
    text = os.fspath(target)
    m = _SCHEME.match(text)
    if m is None:
        if _CONNINFO.match(text) and "dbname=" in text:
            raise LedgerError(
                f"{text!r} looks like a libpq keyword string, not a ledger path: "
                "give a Postgres ledger as a URL, postgresql://user@host:port/database"
            )
        return "sqlite"
    scheme = m.group("scheme").lower()
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    raise LedgerError(
        f"unsupported ledger URL {os.fspath(target)!r}: use a file path, sqlite:///path "
        "or postgresql://user@host/database"
    )


def sqlite_path(target: str | os.PathLike[str]) -> Path:
    """The file of an SQLite ledger: a path as is, or the path of ``sqlite:///relative`` /
    ``sqlite:////absolute`` (SQLAlchemy's spelling)."""
    text = os.fspath(target)
    if not _SCHEME.match(text):
        return Path(text)
    rest = text[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise LedgerError(f"{text!r}: an SQLite ledger URL is sqlite:///path/to/ledger.db")
    return Path(rest[1:])


def open_ledger(target: str | os.PathLike[str]) -> Ledger:
    """The ledger at `target`: `PostgresLedger` for ``postgresql://…`` (needs the
    ``postgres`` extra), else `SqliteLedger` for a path or ``sqlite:///path``."""
    if ledger_kind(target) == "postgres":
        try:
            from coimprove.ledger.postgres import PostgresLedger
        except ImportError as exc:
            raise LedgerError(
                "a postgresql:// ledger needs psycopg: pip install 'coimprove[postgres]'"
            ) from exc
        return PostgresLedger(os.fspath(target))
    return SqliteLedger(sqlite_path(target))
