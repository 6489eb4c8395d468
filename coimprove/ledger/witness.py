"""The head witness: the newest head a writer committed, kept outside the ledger's tables.

The hash chain alone cannot tell a ledger whose last events were deleted, and whose stored
head (``meta.head``) was rewritten to match, from a ledger that simply has fewer events. A
witness kept elsewhere can: `verify` checks that the event it names is still on the chain with
the same hash. Where it lives:

- SQLite: a sidecar file beside the ledger (``ledger.db.head``).
- PostgreSQL: a file on each machine that writes (under the user's state directory, keyed by
  server and database). Everything inside the database shares one trust boundary: whoever can
  ``DELETE`` events can rewrite ``meta``, a witness table, a sequence or the checkpoint tables
  in the same statement batch, so a witness that can catch a truncation must live outside it.
  Each machine's witness covers the appends it made (and lags the others').

The witness is written after a commit (never before, so it never names an event that might be
rolled back), only ever moves forward (a file lock makes read-compare-write one step across
processes), and is one fixed-size checksummed record rewritten in place: a write cut short by
a crash reads as unreadable, never as a wrong head. A witness that lags the chain (a writer
killed between commit and witness, another machine's appends) is tolerated; a chain that ends
before the witness, or holds another event at its place, is reported as tampered.

It raises the bar rather than proving anything: someone who can edit the ledger and its
witness together can hide a truncation. Only a head recorded somewhere they cannot reach
(`coimprove ledger head`, then ``verify --anchor``) proves the ledger was not rewritten.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coimprove._log import get_logger

log = get_logger("coimprove.ledger.witness")

_MAGIC = "coimprove-head 1"
_RECORD = re.compile(rf"^{_MAGIC} (\d{{20}}) ([0-9a-f]{{64}}) ([0-9a-f]{{16}})\n$")
_SIZE = len(_MAGIC) + 1 + 20 + 1 + 64 + 1 + 16 + 1
STATE_DIR_ENV = "COIMPROVE_STATE_DIR"
"""Overrides where per-machine state (the Postgres head witnesses) is kept."""


@dataclass(frozen=True)
class Head:
    """A chain head: the sequence number and hash of its newest event (0 and the genesis hash
    for an empty ledger)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class NoWitness:
    """No head witness to compare with, and why (said in `verify`'s report)."""

    reason: str


def state_dir() -> Path:
    """Per-user state: ``$COIMPROVE_STATE_DIR``, else ``$XDG_STATE_HOME/coimprove``, else
    ``~/.local/state/coimprove`` (the XDG base-directory default)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "coimprove"


def _record(head: Head) -> bytes:
    body = f"{_MAGIC} {head.seq:020d} {head.hash}"
    check = hashlib.sha256(body.encode()).hexdigest()[:16]
    return f"{body} {check}\n".encode()


def _parse(raw: bytes) -> Head | None:
    """The head in a record, None if it is not one (torn, truncated, edited)."""
    m = _RECORD.match(raw.decode("ascii", errors="replace"))
    if m is None:
        return None
    head = Head(int(m.group(1)), m.group(2))
    return head if _record(head) == raw else None


class HeadWitness:
    """The head witness file at `path` (created on the first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._written = -1
        """The newest seq this process wrote or found (a cheap skip of older heads)."""
        self._broken = False
        self._lock = threading.Lock()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def advance(self, head: Head) -> None:
        """Move the witness to `head` (just committed) unless it already names a later event.
        Never raises: the commit is done, so a witness that cannot be written is logged once
        and `verify` reports it as lagging or missing."""
        if self._broken or head.seq <= self._written:
            return

        def write(fd: int) -> None:
            current = _parse(os.pread(fd, _SIZE + 1, 0))
            if current is not None and current.seq >= head.seq:
                self._written = current.seq
                return
            os.pwrite(fd, _record(head), 0)
            self._written = head.seq

        self._locked_write(write)

    def reset(self, head: Head) -> None:
        """Start the witness over at `head`: a ledger was just created here, so a witness left
        by an earlier ledger at the same place must not accuse it."""

        def write(fd: int) -> None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _record(head), 0)
            self._written = head.seq

        self._locked_write(write)

    def _locked_write(self, write: Callable[[int], None]) -> None:
        """Run `write` on the witness file under this process's lock and an exclusive file
        lock; an OS error marks the witness broken (logged once, never raised)."""
        with self._lock:
            try:
                fd = self._open()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    write(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._broken = True
                log.warning("ledger.head_witness_not_written", path=str(self.path), error=str(exc))

    def read(self) -> Head | NoWitness:
        """The witnessed head, or why there is none to compare with."""
        try:
            with self.path.open("rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # not while a writer is mid-record
                raw = fh.read(_SIZE + 1)
        except FileNotFoundError:
            return NoWitness(
                f"there is no head witness at {self.path} (a ledger written before coimprove "
                "kept one, written from another machine, or the witness was removed)"
            )
        except OSError as exc:
            return NoWitness(f"the head witness at {self.path} cannot be read ({exc})")
        head = _parse(raw)
        if head is None:
            return NoWitness(
                f"the head witness at {self.path} is not a valid record (cut short by a crash, "
                "or edited)"
            )
        return head

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
