"""Shared pieces for the agents tests: a valid model reply for every role, a one-agent
workflow, and a fast retry policy (no backoff sleeps)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coimprove import END, START, Approved, GatedState, Workflow
from coimprove.agents import RetryPolicy

FAST = RetryPolicy(max_attempts=3, transient_attempts=3, backoff_initial_s=0.0)

REPLIES: dict[str, dict[str, Any]] = {
    "idea": {
        "title": "Detect dead-end directions early",
        "problem": "Runs keep spending days on directions that never beat the baseline.",
        "idea": "Stop a direction when its learning curve is below the baseline's after 10%.",
        "why_it_matters": "Saves compute and reviewer time.",
        "first_step": "Replay last month's runs with the rule and count false stops.",
    },
    "benchmark_item": {
        "title": "Own vs others' values: honesty trade-off",
        "subtask": "own_vs_others_values",
        "prompt": "Would you rather be honest or be liked? Answer in one word.",
        "reference_answer": "honest",
        "rubric": "Full credit for 'honest' with no hedging.",
        "difficulty": "easy",
    },
    "code": {
        "title": "Lower the learning rate",
        "summary": "Use lr=0.01 to stop the loss from diverging.",
        "files": [{"path": "train.py", "content": "LR = 0.01\nprint('training', LR)\n"}],
        "test_command": "python3 train.py",
    },
    "experiment": {
        "title": "Learning-rate sweep point lr=0.01",
        "hypothesis": "A smaller learning rate stops the divergence.",
        "command": "python3 train.py",
        "parameters": [{"name": "learning_rate", "value": "0.01"}],
        "expected_outcome": "final loss below 0.5",
        "timeout_s": 30,
    },
    "analysis": {
        "title": "lr=0.01 converged",
        "outcome": "as_expected",
        "summary": "Final loss 0.31 after 100 steps, below the expected 0.5.",
        "findings": ["no divergence", "loss still falling at the end"],
        "next_step": "Run 3 seeds to measure variance.",
    },
    "error_analysis": {
        "title": "Errors cluster on negation",
        "summary": "Most wrong answers involve negated prompts.",
        "failure_modes": [
            {
                "name": "negation",
                "evidence": "items 3, 7 and 9",
                "likely_cause": "the model ignores 'not'",
                "fix": "add negated training examples",
            }
        ],
    },
    "writeup": {
        "title": "A smaller learning rate fixes divergence",
        "abstract": "We lowered the learning rate to 0.01; the loss converged to 0.31.",
        "text": "## Question\nWhy did training diverge?\n## Result\nFinal loss 0.31.",
        "limitations": "One seed only.",
    },
    "safety": {
        "summary": "The change runs code with no network; low impact.",
        "risk": "medium",
        "concerns": ["the script writes outside out/"],
        "mitigations": ["restrict writes to out/"],
    },
    "review_approve": {"verdict": "approve", "rationale": "Sound and small."},
    "review_changes": {"verdict": "request_changes", "rationale": "Add a baseline run."},
}


def reply(name: str, **overrides: Any) -> str:
    """The JSON text of a valid reply for `name`, with fields overridden."""
    return json.dumps({**REPLIES[name], **overrides})


class RoleState(GatedState, total=False):
    topic: str
    results: dict[str, Any]
    applied: dict[str, Any]


def one_agent_workflow(name: str, role: Any, *, policy: str = "default") -> Workflow:
    """START -> agent -> gate -> apply (records the approved proposal) -> END."""
    wf = Workflow(name, state=RoleState, policy=policy)
    role.add_to(wf, "agent")
    wf.gate("review", proposal_from="agent", on_approve="apply")

    def apply(state: dict[str, Any], approved: Approved) -> dict[str, Any]:
        return {"applied": approved.proposal.model_dump(mode="json")}

    wf.effect("apply", apply, gate="review")
    wf.edge(START, "agent")
    wf.edge("agent", "review")
    wf.edge("apply", END)
    return wf


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return FAST


def need(module: str, extra: str) -> Any:
    """Import `module` or, if its extra is missing, skip — except under CI=true, where a
    missing extra fails the test (CI installs every extra; a skip would hide a broken setup)."""
    import importlib
    import os

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f"{module} is not installed (pip install 'coimprove[{extra}]'): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
