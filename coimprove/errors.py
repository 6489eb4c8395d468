"""The error hierarchy: every error coimprove raises on purpose is a `CoimproveError`.

Errors name what is wrong and where (gate id, file:line, path through the graph) so a person
can act on them without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class CoimproveError(Exception):
    """Root of every error coimprove raises on purpose."""


# -- graph definitions ------------------------------------------------------------------------


class GraphDefinitionError(CoimproveError):
    """A workflow or StateGraph is malformed (unknown node, missing edge, bad router)."""


class UngatedEffectError(GraphDefinitionError):
    """A path from an agent node reaches an effect node without passing a gate."""

    def __init__(self, path: Sequence[str]) -> None:
        self.path = list(path)
        super().__init__(
            "ungated effect: the path "
            + " -> ".join(self.path)
            + f" reaches effect node {self.path[-1]!r} without passing a gate"
        )


# -- policies ---------------------------------------------------------------------------------


class PolicyError(CoimproveError):
    """A policy file is malformed; the message names file, line and field."""


# -- decisions --------------------------------------------------------------------------------


class DecisionError(CoimproveError):
    """A decision was refused. Nothing was recorded."""


class UnknownGateError(DecisionError):
    """No gate with this id was ever opened."""


class GateClosedError(DecisionError):
    """The gate was already decided (or timed out); a late decision changes nothing."""


class DigestMismatchError(DecisionError):
    """The decision names a digest other than the one the gate currently shows."""


class ReviewerNotAllowedError(DecisionError):
    """The policy does not let this reviewer (or reviewer kind, or role) decide this gate."""


class SelfApprovalError(ReviewerNotAllowedError):
    """An author (agent or person) tried to decide its own proposal."""


class DuplicateReviewerError(DecisionError):
    """The same reviewer tried to count twice toward a quorum."""


class InvalidDecisionError(DecisionError):
    """The decision itself is malformed (unknown verdict, missing note, bad edited payload)."""


# -- effects ----------------------------------------------------------------------------------


class ApprovalRequiredError(CoimproveError):
    """An effect was asked to run without a valid approval for what it is about to act on."""


class EffectInterruptedError(CoimproveError):
    """An effect started but never finished (a crash); it needs a fresh approval to run again."""


# -- ledger / runs ----------------------------------------------------------------------------


class LedgerError(CoimproveError):
    """The ledger could not be read or written."""


class NotALedgerError(LedgerError):
    """The file exists but is not a coimprove ledger (or has an unsupported schema)."""


class LedgerIntegrityError(LedgerError):
    """The hash chain is broken: an event was edited, inserted or deleted."""


class LedgerConnectionError(LedgerError):
    """The ledger's server could not be reached, or the connection was lost during a write.

    `committed` says what became of the write: False, it was rolled back (nothing of it is in
    the ledger; doing it again is safe); None, it could not be told (the server stayed away).
    """

    def __init__(self, message: str, *, committed: bool | None = None) -> None:
        super().__init__(message)
        self.committed = committed


class LeaseHeldError(CoimproveError):
    """Another runner holds the lease on this run; only one may drive a thread at a time."""


class RunError(CoimproveError):
    """A run cannot be started, found or resumed."""


class ReviewerConfigError(CoimproveError):
    """A reviewer profile is malformed; the message names file, line and field."""


# -- ablations --------------------------------------------------------------------------------


class SweepError(CoimproveError):
    """A sweep spec is malformed or a sweep cannot run; the message names file, line and field."""
