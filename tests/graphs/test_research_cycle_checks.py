"""research_cycle's plausibility checks: odd values become warnings for the reviewer."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from coimprove import Proposal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rc() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "research_cycle_checks", ROOT / "graphs" / "research_cycle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("lr", "epochs", "seed", "expect"),
    [
        (0.5, 1000, 0, None),
        (1000.0, 300, 0, "far above the stable range"),
        (-0.1, 300, 0, "not positive"),
        (float("nan"), 300, 0, "not positive"),
        (1e-7, 300, 0, "barely move"),
        (0.5, 0, 0, "too few"),
        (0.5, 10**9, 0, "sandbox timeout"),
        (0.5, 1000, -3, "negative"),
    ],
)
def test_training_settings_outside_their_range_are_named(
    rc: ModuleType, lr: float, epochs: int, seed: int, expect: str | None
) -> None:
    warnings = rc.design_warnings(lr, epochs, seed)
    if expect is None:
        assert warnings == []
    else:
        assert any(expect in w for w in warnings), warnings


def test_method_choices_that_make_no_sense_are_named(rc: ModuleType) -> None:
    assert rc.method_warnings("mlp", 16, 1e-4) == []
    assert rc.method_warnings("logistic", 0, 0.0) == []
    assert "not an MLP" in rc.method_warnings("mlp", 0, 0.0)[0]
    assert "rewards large weights" in rc.method_warnings("mlp", 16, -1.0)[0]
    assert "underfit" in rc.method_warnings("logistic", 0, 5.0)[0]


def test_a_flagged_proposal_shows_its_warnings_first_and_is_labelled_flawed(rc: ModuleType) -> None:
    plain = Proposal(kind="experiment", title="t", body="**Hypothesis.** h", author="agent:x")
    flagged = rc._flag(plain, ["learning rate 1000 is far above"])
    assert flagged.body.startswith("**Check before approving:**\n- ⚠ learning rate 1000")
    assert flagged.risk == "high" and flagged.truth == "flawed"
    assert flagged.public().truth is None and flagged.digest != plain.digest
    assert rc._flag(plain, []) is plain


def _state(
    metrics: dict[str, Any], expected: str = "held-out accuracy about 0.9"
) -> dict[str, Any]:
    return {
        "experiment": {"exit_code": 0, "ended_by": "exit", "metrics": metrics},
        "proposals": {"design": {"title": "d", "payload": {"expected_outcome": expected}}},
    }


def test_an_analysis_that_contradicts_the_measurement_is_flagged(rc: ModuleType) -> None:
    good = {"held_out_accuracy": 0.92, "diverged": False}
    assert rc.analysis_warnings("as_expected", _state(good)) == []
    low = {"held_out_accuracy": 0.55, "diverged": False}
    (w,) = rc.analysis_warnings("as_expected", _state(low))
    assert "measured held-out accuracy 0.550 where 0.9 was expected" in w
    assert rc.analysis_warnings("unexpected", _state(low)) == []
    diverged = {"held_out_accuracy": 0.5, "diverged": True}
    assert "diverged" in rc.analysis_warnings("as_expected", _state(diverged))[0]
    # a clean run that the model calls failed is a contradiction too (SmolLM2 did this in the demo)
    (w,) = rc.analysis_warnings("failed", _state(good))
    assert "calls the run failed, but it exited cleanly and measured held-out accuracy 0.920" in w
    assert rc.analysis_warnings("failed", _state(diverged)) == []


def test_train_py_gets_exactly_the_proposed_method(rc: ModuleType) -> None:
    source = rc.render_train("mlp", 32, 0.001, "quadratic")
    assert 'MODEL = "mlp"\nHIDDEN_UNITS = 32\nL2 = 0.001\nFEATURES = "quadratic"\n' in source
    baseline = rc.baseline_files()["train.py"]
    changed = [
        (a, b) for a, b in zip(baseline.splitlines(), source.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 4  # only the METHOD block differs


def test_planted_experiment_flaws_look_like_real_ones(rc: ModuleType) -> None:
    payload = rc.design_payload(0.5, 1000, 0, 0.9)
    real = Proposal(
        kind="experiment",
        title="t",
        body=rc.design_body("h", payload["env"], payload["expected_outcome"]),
        payload=payload,
        author="agent:design",
    )
    made = rc.canaries.mutate(real, random.Random(1))
    assert made is not None
    canary, name = made
    assert name in {n for n, _, _ in rc.PlantedFlaws.FLAWS}
    assert canary.payload != real.payload and canary.risk == "high"
    assert canary.body.startswith("**Check before approving:**")
    assert (
        rc.canaries.mutate(real.model_copy(update={"kind": "benchmark_item"}), random.Random(1))
        is None
    )


def test_a_planted_idea_is_a_dead_end_laid_out_like_the_agents_own(rc: ModuleType) -> None:
    payload = {
        "problem": "A straight line cannot separate the disk from the ring.",
        "idea": "Add x² and y² as features so a circle can separate them.",
        "why_it_matters": "",
        "first_step": "Train logistic regression on quadratic features.",
    }
    body = (
        f"**Problem.** {payload['problem']}\n\n**Idea.** {payload['idea']}\n\n"
        f"**First step.** {payload['first_step']}"
    )
    real = Proposal(
        kind="idea", title="Quadratic features", body=body, payload=payload, author="agent:x"
    )
    seen = set()
    for seed in range(20):
        made = rc.canaries.mutate(real, random.Random(seed))
        assert made is not None
        canary, name = made
        seen.add(name)
        assert name in {"dead-end-idea", "held-out-selection"}
        assert canary.payload["problem"] == payload["problem"]
        assert canary.payload["idea"] != payload["idea"] and canary.digest != real.digest
        # the body says what the payload says, in the agent's layout
        assert f"**Idea.** {canary.payload['idea']}" in canary.body
        assert f"**First step.** {canary.payload['first_step']}" in canary.body
        assert payload["idea"] not in canary.body and canary.body.count("**Idea.**") == 1
        assert canary.body.startswith(f"**Problem.** {payload['problem']}")
        assert canary.title != real.title and canary.truth is None
    assert seen == {"dead-end-idea", "held-out-selection"}
    # a body without the agent's layout is left alone
    odd = real.model_copy(update={"body": "free text"})
    assert rc.canaries.mutate(odd, random.Random(0)) is None


def test_a_linear_method_on_raw_coordinates_is_a_known_dead_end(rc: ModuleType) -> None:
    assert rc.is_dead_end("logistic", 0, "raw")
    assert rc.is_dead_end("mlp", 1, "raw")
    assert not rc.is_dead_end("logistic", 0, "quadratic")
    assert not rc.is_dead_end("mlp", 16, "raw")


class _Ctx:
    name = "analyse"
    run_id = "r-1"

    def __init__(self, feedback: Any = None) -> None:
        self.feedback = feedback


class _Feedback:
    note = "the analysis contradicts the measurement"
    gate_id = "r-1.results_gate.1"
    previous = Proposal(kind="analysis", title="Failed", body="b", author="agent:analyse")


def _analysis_reply(outcome: str) -> str:
    return json.dumps(
        {"title": "Failed", "outcome": outcome, "summary": "failed", "findings": [], "changes": ""}
    )


async def test_a_revision_that_still_contradicts_the_sandbox_takes_the_measured_outcome(
    rc: ModuleType,
) -> None:
    from coimprove.agents import FakeChatModel

    state = _state({"held_out_accuracy": 0.83, "train_accuracy": 0.82, "diverged": False})
    model = FakeChatModel(responses=[_analysis_reply("failed")] * 2)
    agent = rc.AnalysisAgent(model, retry=rc.RETRY)
    first = await agent(state, _Ctx())  # the model's own reading: shown, and flagged
    assert first.payload["outcome"] == "failed" and first.truth == "flawed"
    assert "fallback:outcome" not in first.tags and "fallback:title" in first.tags  # "Failed"
    revised = await agent(state, _Ctx(_Feedback()))
    assert revised.payload["outcome"] == "as_expected"  # 0.83 is within 0.15 of 0.9
    assert revised.payload["summary"] == (
        "The run exited cleanly and measured held-out accuracy 0.830 (0.9 was expected)."
    )
    assert {"fallback:outcome", "fallback:summary"} <= set(revised.tags)
    assert revised.truth is None and "revision" in revised.tags
    assert "**Outcome written by coimprove, not the model:**" in revised.body
    assert "built from the sandbox's measurement" in revised.body
    # the measured outcome itself: unexpected when far from the expectation, failed when failed
    assert rc.measured_outcome(_state({"held_out_accuracy": 0.55, "diverged": False})) == (
        "unexpected"
    )
    assert rc.measured_outcome(_state({"held_out_accuracy": 0.5, "diverged": True})) == "failed"
