"""Sweep specs: validation errors name file, line and field; cells expand deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from coimprove.ablate.cli import EXECUTOR_NAMES, VALIDATION_PROFILE_NAMES
from coimprove.ablate.executors import EXECUTORS
from coimprove.ablate.spec import load_spec, spec_from_yaml
from coimprove.ablate.validate import VALIDATION_PROFILES
from coimprove.errors import SweepError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
policies: [default, {ref: default, label: canary, set: {canary_rate: 0.2}}]
reviewers:
  - {name: careful, profile: careful}
  - {name: ai, model: fake}
seeds: 2
runs_per_cell: 3
"""


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SweepError) as info:
        load_spec(path)
    return str(info.value)


def test_the_example_spec_loads_and_expands_to_every_combination() -> None:
    spec = load_spec(ROOT / "examples" / "ablation.yaml")
    cells = spec.cells()
    assert len(cells) == len(spec.models) * len(spec.policies) * len(spec.reviewers) * len(
        spec.seeds
    )
    assert len({c.key for c in cells}) == len(cells)
    arms = {c.panel.name: c.panel.resolved_arm for c in cells}
    assert arms["autonomous"] == "autonomous"
    assert arms["ai"] == "ai_reviewed"
    assert arms["careful"] == "human_in_the_loop"


def test_a_seed_count_means_seeds_zero_to_n_minus_one() -> None:
    assert spec_from_yaml(GOOD).seeds == (0, 1)


def test_forced_settings_reach_every_rule_and_name_the_variant() -> None:
    spec = spec_from_yaml(GOOD)
    canary = spec.policies[1].policy()
    assert canary.name == "canary"
    assert canary.defaults.canary_rate == 0.2
    assert all(rule.canary_rate == 0.2 for rule in canary.rules)
    assert spec.policies[0].policy().defaults.canary_rate == 0.0


def test_cell_digest_changes_with_any_input_and_key_stays_readable() -> None:
    a = spec_from_yaml(GOOD).cells()[0]
    b = spec_from_yaml(GOOD.replace("runs_per_cell: 3", "runs_per_cell: 4")).cells()[0]
    c = spec_from_yaml(GOOD.replace("canary_rate: 0.2", "canary_rate: 0.3")).cells()[4]
    assert a.key == b.key == "careful.default.fake.s0"
    assert a.digest != b.digest
    before = spec_from_yaml(GOOD).cells()[4]
    assert c.key == before.key == "careful.canary.fake.s0"
    assert c.digest != before.digest


def test_relative_profile_paths_start_at_the_spec_folder(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text("name: mine\nskim_rate: 0.4\n")
    path = tmp_path / "sweep.yaml"
    path.write_text("name: t\nreviewers: [{name: me, profile: profiles/mine.yaml}]\n")
    spec = load_spec(path)
    assert spec.reviewers[0].profile_model().skim_rate == 0.4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\nbogus: 1\n",
            ":3: bogus: unknown field",
        ),
        (
            "name: t\nreviewers:\n  - {name: a, profile: careful}\n"
            "  - {name: a, profile: random}\n",
            ":4: reviewers.1.name: 'a' appears twice",
        ),
        (
            "name: t\nreviewers:\n  - {name: a, profile: careful, model: fake}\n",
            ":3: reviewers.0.profile: give exactly one of",
        ),
        (
            "name: t\nreviewers:\n  - {name: a, profile: no_such_profile}\n",
            "built-in: autonomous, careful",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\n"
            "policies:\n  - {ref: default, set: {canary_rate: 2}}\n",
            ":4: policies.0.set.canary_rate: Input should be less than 1",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\npolicies: [nope]\n",
            "no built-in policy of that name",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\n"
            "synthetic:\n  truth: {sound: 0.5, flawed: 0.2}\n",
            ":4: synthetic.truth: truth shares must sum to 1",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\nledger: one.db\n",
            ":3: ledger: the ledger location must contain {cell}",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\nmodels: [gpt4]\n",
            ":3: models: unknown model spec 'gpt4'",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\nseeds: [1, 1]\n",
            ":3: seeds: seeds must be distinct",
        ),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\n"
            "graph: tests/integration/crash_graph.py:workflow\ngates_per_run: 3\n",
            "gates_per_run: only the synthetic graph takes `gates_per_run`",
        ),
        ("name: t\nreviewers: []\n", ":2: reviewers: Tuple should have at least 1 item"),
        (
            "name: t\nreviewers: [{name: a, profile: careful}]\narrival_s: .inf\n",
            ":3: arrival_s: Input should be a finite number",
        ),
        ("name: t\nreviewers: [{name: a, profile: careful}]\nruns_per_cell: 0\n", ":3:"),
    ],
)
def test_bad_specs_are_refused_naming_file_line_and_field(
    text: str, expected: str, tmp_path: Path
) -> None:
    message = _error(text, tmp_path)
    assert expected in message, message
    assert str(tmp_path / "sweep.yaml") in message


def test_a_missing_spec_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="no such sweep spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_cli_help_names_match_the_engine() -> None:
    assert EXECUTOR_NAMES == EXECUTORS
    assert set(VALIDATION_PROFILE_NAMES) == set(VALIDATION_PROFILES)
