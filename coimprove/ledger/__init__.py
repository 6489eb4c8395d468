"""Event stores. `SqliteLedger` is the default, `PostgresLedger` (``coimprove.ledger.postgres``,
the ``postgres`` extra) the shared one; `open_ledger` picks by path or URL. Any
`coimprove.protocols.Ledger` will do."""

from coimprove.ledger.chain import GENESIS, verify_chain
from coimprove.ledger.factory import ledger_kind, open_ledger, sqlite_path
from coimprove.ledger.sqlite import SqliteLedger, Synchronous

__all__ = [
    "GENESIS",
    "SqliteLedger",
    "Synchronous",
    "ledger_kind",
    "open_ledger",
    "sqlite_path",
    "verify_chain",
]
