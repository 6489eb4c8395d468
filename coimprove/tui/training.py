"""Training for reviewers (``coimprove review --training``): practice runs with more canaries.

Canaries are planted by the gate node when a gate opens, at the rate of the run's policy, so a
front end cannot add them to gates that are already open. A training session therefore starts
its own *practice runs* of a chosen workflow under a copy of its policy whose canary rate is
raised (`Policy.with_canary_rate`, named ``<policy>+training``). The copy is recorded in each
run's ``run.started`` like any policy, so resumed practice runs keep planting at that rate, and
the measures of practice decisions can be told apart (their requirement names the training
policy). The review app in training mode shows only practice gates and explains every miss.
"""

from __future__ import annotations

from typing import Any

from coimprove.gates import GateRecord
from coimprove.policy import Policy, load_policy
from coimprove.runner import RunInfo, Runner
from coimprove.workflow import Workflow

TRAINING_SUFFIX = "+training"
DEFAULT_RATE = 0.5

# Where to look for each built-in canary mutation (`coimprove.canaries`): shown with a miss.
HINTS: dict[str, str] = {
    "deleted_test": "the diff: a test was deleted or disabled — check removed test files and "
    "functions, not just the code that changed",
    "network_call": "the diff: new code reaches the network (an URL, a socket, requests/urllib) "
    "— the sandbox policy forbids it",
    "hyperparameter_x1000": "the experiment spec's numbers: a hyperparameter is off by orders "
    "of magnitude — compare each value with the text and with sane ranges",
    "train_set_metric": "the experiment spec's evaluation: the metric is computed on the "
    "training split, so it cannot show generalisation",
    "leaked_label": "the experiment spec's inputs: the label (or something derived from it) "
    "is among the features",
    "wrong_answer": "the benchmark item's answer: work the question out yourself and compare",
}


def hint(mutation: str | None) -> str:
    """Where to look for the planted flaw `mutation` (a generic hint for unknown kinds)."""
    if mutation and mutation in HINTS:
        return HINTS[mutation]
    return (
        "the payload and the artifacts: compare every value and changed line with what the "
        "title and body claim"
    )


def training_policy(policy: str | Policy, rate: float = DEFAULT_RATE) -> Policy:
    """`policy` (a name, a path or a Policy) with canaries planted at `rate` at least."""
    base = policy if isinstance(policy, Policy) else load_policy(policy)
    if base.name.endswith(TRAINING_SUFFIX):
        return base.with_canary_rate(rate)
    return base.with_canary_rate(rate, suffix=TRAINING_SUFFIX)


def is_practice(record: GateRecord) -> bool:
    """Whether `record` is a gate of a practice run (its policy is a training policy)."""
    return record.request.requirement.policy.endswith(TRAINING_SUFFIX)


async def start_practice(
    runner: Runner,
    workflow: Workflow,
    *,
    runs: int,
    rate: float = DEFAULT_RATE,
    policy: str | Policy | None = None,
    inputs: dict[str, Any] | None = None,
    run_id_prefix: str | None = None,
) -> list[RunInfo]:
    """Start `runs` practice runs of `workflow` under its policy (or `policy`) raised to
    canary rate `rate`; each pauses at its first gate. Fixed run ids (``prefix0``, …) make
    the planted canaries reproducible for a given runner seed."""
    if runs < 1:
        raise ValueError("a training session needs at least one practice run")
    pol = training_policy(policy or workflow.policy, rate)
    return [
        await runner.start(
            workflow,
            inputs,
            policy=pol,
            run_id=None if run_id_prefix is None else f"{run_id_prefix}{i:04d}",
        )
        for i in range(runs)
    ]
