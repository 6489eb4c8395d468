"""The JSON every digest is taken over and every ledger event is stored as."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from coimprove import Proposal
from coimprove.model import canonical_json

_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class _Odd:
    def __str__(self) -> str:
        return "odd!"


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1.5, None, True, False, "é\u2028\x1f"], "c": {"z": 1e-05, "y": 1e16}},
        {2: "int keys", 1: (1, 2)},
        {"o": _Odd()},
        [],
        "text",
        2**70,
        -0.0,
    ],
)
def test_canonical_json_is_the_stdlib_form_digests_were_taken_over(value: Any) -> None:
    assert canonical_json(value) == _STDLIB.encode(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_what_json_cannot_hold(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": [bad]})
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="contains itself"):
        canonical_json(cycle)


def test_a_proposal_whose_payload_json_cannot_hold_names_the_field() -> None:
    proposal = Proposal(
        kind="experiment", title="sweep", author="agent:x", payload={"lr": math.nan}
    )
    with pytest.raises(ValueError, match=r"'sweep' \(experiment\).*payload is not JSON data"):
        _ = proposal.digest
