from __future__ import annotations

from pathlib import Path

import pytest

from coimprove import PolicyError, load_policy
from coimprove.policy import policy_from_yaml
from coimprove.testing import proposal


@pytest.mark.parametrize("name", ["default", "strict", "canary"])
def test_built_in_policies_load(name: str) -> None:
    assert load_policy(name).name == name


def test_strict_needs_two_reviewers_for_code_and_sends_critical_to_safety() -> None:
    strict = load_policy("strict")
    assert strict.requirement(proposal(kind="code")).quorum == 2
    assert strict.requirement(proposal(kind="idea")).quorum == 1
    critical = strict.requirement(proposal(kind="code", risk="critical"))
    assert critical.roles == ("safety",) and critical.reviewer_kinds == ("human",)


def test_escalation_levels_follow_the_chain() -> None:
    strict = load_policy("strict")
    assert strict.requirement(proposal(), level=1).roles == ("lead",)
    assert strict.requirement(proposal(), level=2).roles == ("safety",)
    with pytest.raises(PolicyError, match="no escalation level 3"):
        strict.requirement(proposal(), level=3)


def test_min_review_scales_with_proposal_size() -> None:
    default = load_policy("default")
    small = default.requirement(proposal()).min_review_seconds
    big = default.requirement(proposal(body="x" * 10_240)).min_review_seconds
    assert big == pytest.approx(small + 2 * 10, abs=0.1)


def test_reviewer_patterns_grant_roles() -> None:
    default = load_policy("default")
    assert default.roles_of("alice") == {"reviewer"}
    assert default.roles_of("lead-bob") == {"reviewer", "lead"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ndefaults:\n  quorum: 0\n", "p.yaml:3: defaults.quorum: Input should be greater"),
        ("name: x\nrules:\n  - name: a\n    bogus: 1\n", "p.yaml:4: rules.0.bogus: unknown field"),
        ("name: x\ndefaults:\n  on_timeout: approve\n", "p.yaml:3: defaults.on_timeout"),
        ("name: x\ndefaults:\n  timeout_s: .inf\n", "p.yaml:3: defaults.timeout_s: Input should"),
        (
            "name: x\nrules:\n  - name: a\n    roles: [boss]\n",
            "p.yaml:4: rules.0.roles: role 'boss'",
        ),
        ("name: x\nrules: [\n", "p.yaml:3:1: invalid YAML"),
        ("- just\n- a list\n", "p.yaml:1: expected a mapping"),
        (
            "name: x\nrules:\n  - name: a\n  - name: a\n",
            "p.yaml:4: rules.1.name: rule names must be unique",
        ),
        ("name: x\ndefaults:\n  canary_rate: 1.5\n", "p.yaml:3: defaults.canary_rate"),
        (
            "name: x\ndefaults:\n  allow: [approve]\n",
            "allow must include at least approve and reject",
        ),
    ],
)
def test_a_bad_policy_names_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_yaml(text, source="p.yaml")
    assert expected in str(info.value)


def test_a_policy_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ndefaults:\n  quorum: -1\n")
    with pytest.raises(PolicyError, match=r"mine\.yaml:3: defaults\.quorum"):
        load_policy(path)


def test_an_unknown_built_in_lists_the_built_ins() -> None:
    with pytest.raises(PolicyError, match=r"built-in: (\w+, )*canary, default, (\w+, )*strict"):
        load_policy("lenient")
