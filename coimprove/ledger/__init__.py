"""Event stores. `SqliteLedger` is the default; any `coimprove.protocols.Ledger` will do."""

from coimprove.ledger.chain import GENESIS, verify_chain
from coimprove.ledger.sqlite import SqliteLedger

__all__ = ["GENESIS", "SqliteLedger", "verify_chain"]
