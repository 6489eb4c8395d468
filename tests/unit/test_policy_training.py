"""`Policy.with_canary_rate` and the training policy of `coimprove review --training`."""

from __future__ import annotations

import pytest

from coimprove.policy import policy_from_yaml
from coimprove.testing import proposal
from coimprove.tui.training import training_policy

DOC = """
name: mixed
defaults:
  canary_rate: 0.1
rules:
  - name: code-often
    match: {kind: [code]}
    canary_rate: 0.8
  - name: data-never
    match: {kind: [dataset]}
    canary_rate: 0.0
  - name: ideas-inherit
    match: {kind: [idea]}
    quorum: 1
"""


def test_the_raised_rate_applies_everywhere_and_never_lowers_a_rule() -> None:
    base = policy_from_yaml(DOC, source="mixed.yaml")
    raised = base.with_canary_rate(0.5, suffix="+training")
    assert raised.name == "mixed+training"
    rates = {k: raised.canary_rate(proposal(kind=k)) for k in ("code", "dataset", "idea", "plan")}
    assert rates == {"code": 0.8, "dataset": 0.5, "idea": 0.5, "plan": 0.5}
    assert base.canary_rate(proposal(kind="dataset")) == 0.0  # the original is untouched
    assert base.canary_rate(proposal(kind="idea")) == 0.1


def test_training_policy_names_itself_once_and_rejects_a_bad_rate() -> None:
    once = training_policy("canary", 0.4)
    assert once.name == "canary+training"
    assert training_policy(once, 0.6).name == "canary+training"
    assert training_policy(once, 0.6).canary_rate(proposal()) == 0.6
    with pytest.raises(ValueError, match="canary rate"):
        training_policy("canary", 1.0)
