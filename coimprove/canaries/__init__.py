"""Canaries: deliberately flawed variants of real proposals, planted by policy (``canary_rate``).

A reviewer cannot tell a canary from the real thing before deciding; it is never executed; the
ledger records its mutation kind and whether it was caught (``canary.revealed``). One module per
family of flaws:

- `code`: ``deleted_test``, ``network_call`` (a real commit, inline files or a diff)
- `experiment`: ``hyperparameter_x1000``, ``train_set_metric``, ``leaked_label``
- `benchmark`: ``wrong_answer``

`default_canaries()` combines them; a Runner uses it when the policy plants canaries and no
source was given.
"""

from coimprove.canaries.base import CanaryFamily
from coimprove.canaries.benchmark import BenchmarkCanaries
from coimprove.canaries.code import CodeCanaries, WorkspaceSource
from coimprove.canaries.experiment import ExperimentCanaries
from coimprove.canaries.registry import Canaries, default_canaries

MUTATION_KINDS: tuple[str, ...] = (
    *CodeCanaries.kinds,
    *ExperimentCanaries.kinds,
    *BenchmarkCanaries.kinds,
)

__all__ = [
    "MUTATION_KINDS",
    "BenchmarkCanaries",
    "Canaries",
    "CanaryFamily",
    "CodeCanaries",
    "ExperimentCanaries",
    "WorkspaceSource",
    "default_canaries",
]
