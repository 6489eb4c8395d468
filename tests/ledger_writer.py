"""A child process that appends to a ledger (for the concurrent-appenders conformance test)."""

from __future__ import annotations

import sys

from coimprove.ledger import open_ledger


def main(url: str, writer: str, n: int) -> None:
    ledger = open_ledger(url)
    try:
        for i in range(n):
            if i % 3 == 0:  # a read-then-append transaction, as deciding a gate does
                with ledger.transaction() as tx:
                    seen = len(tx.events(types=["gate.viewed"], after_seq=max(0, i - 5)))
                    tx.append("gate.viewed", at=float(i), actor=writer, data={"i": i, "seen": seen})
            else:
                ledger.append("gate.viewed", at=float(i), actor=writer, data={"i": i})
    finally:
        ledger.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
