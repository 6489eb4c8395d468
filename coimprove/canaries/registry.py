"""The canary source a Runner uses: families of planted flaws, one picked per canary, seeded."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from coimprove._log import get_logger
from coimprove.canaries.base import CanaryFamily
from coimprove.canaries.benchmark import BenchmarkCanaries
from coimprove.canaries.code import CodeCanaries, WorkspaceSource
from coimprove.canaries.experiment import ExperimentCanaries
from coimprove.errors import CoimproveError
from coimprove.model import Proposal

log = get_logger("coimprove.canaries")


class Canaries:
    """A `CanarySource` over several families.

    For a proposal, every (family, mutation) that applies is a candidate; families made for the
    proposal's kind (their ``proposal_kinds``: ``code``, ``experiment``, ``benchmark_item``)
    come first when they have one. The pick, and every random choice inside the
    mutation, comes from the gate's seeded `rng`, so a seed and a gate id give the same canary.
    `only` restricts the mutation kinds planted (e.g. for a study of one flaw).
    """

    def __init__(
        self,
        families: Sequence[CanaryFamily],
        *,
        only: Collection[str] | None = None,
    ) -> None:
        self.families = tuple(families)
        known = {k for f in self.families for k in f.kinds}
        if only is not None and (unknown := set(only) - known):
            raise CoimproveError(
                f"unknown canary mutation(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        self.only = None if only is None else frozenset(only)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every mutation kind this source can plant."""
        return tuple(k for f in self.families for k in f.kinds)

    def candidates(self, proposal: Proposal) -> list[tuple[CanaryFamily, str]]:
        """The mutations that apply to `proposal`, preferred family first."""
        options = [
            (f, k)
            for f in self.families
            for k in f.mutations(proposal)
            if self.only is None or k in self.only
        ]
        preferred = [(f, k) for f, k in options if proposal.kind in f.proposal_kinds]
        return preferred or options

    def mutate(self, proposal: Proposal, rng: random.Random) -> tuple[Proposal, str] | None:
        """A flawed copy of `proposal` and its mutation kind, or None if none applies."""
        options = self.candidates(proposal)
        rng.shuffle(options)
        for family, kind in options:
            try:
                made = family.apply(kind, proposal, rng)
            except Exception as exc:  # a measuring aid must never break the research run
                log.warning("canaries.failed", mutation=kind, proposal=proposal.id, error=repr(exc))
                continue
            if made is not None and made.digest != proposal.digest:
                return made, kind
        return None


def default_canaries(
    *, workspace: WorkspaceSource = None, only: Collection[str] | None = None
) -> Canaries:
    """Every built-in family: code (deleted test, network call), experiment (hyperparameter
    ×1000, metric on the training set, leaked label) and benchmark item (wrong answer).

    A code proposal's commit is planted beside it in `workspace`, or by default in the
    `GitWorkspace` of this process that holds it.
    """
    return Canaries([CodeCanaries(workspace), ExperimentCanaries(), BenchmarkCanaries()], only=only)
