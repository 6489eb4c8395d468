"""A degenerate title (empty, copied from the prompt, the same as another gate's) is replaced
from the chosen fields, and the proposal says so; a usable title is kept as the model wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from coimprove.agents import ExecutionAnalysisAgent, FakeChatModel, IdeaAgent
from coimprove.agents.roles.base import degenerate_reason
from tests.agents.conftest import FAST, reply

TOPIC = "why does training diverge when the learning rate is large?"


@dataclass
class Ctx:
    name: str = "agent"
    run_id: str = "r-1"
    feedback: Any = None


async def _propose(title: str, state: dict[str, Any]) -> Any:
    model = FakeChatModel(responses=[reply("idea", title=title)])
    return await IdeaAgent(model, retry=FAST)(state, Ctx())


@pytest.mark.parametrize(
    ("title", "state", "reason"),
    [
        ("...", {"topic": TOPIC}, "empty"),
        (TOPIC.capitalize(), {"topic": TOPIC}, "copied from the prompt"),
        (
            "The answer to the question of why",
            {
                "topic": TOPIC,
                "proposals": {"method": {"title": "The answer to the question of why"}},
            },
            "the same as the title at method",
        ),
    ],
)
async def test_a_degenerate_title_is_replaced_and_the_gate_says_so(
    title: str, state: dict[str, Any], reason: str
) -> None:
    proposal = await _propose(title, state)
    idea = "Stop a direction when its learning curve is below the baseline's after 10%."
    assert proposal.title.startswith("Idea: ") and proposal.title != title
    assert proposal.title[6:].rstrip("…") in idea
    assert "fallback:title" in proposal.tags
    first = proposal.body.splitlines()[0]
    assert first.startswith("**Title written by coimprove, not the model:**")
    assert reason in first and title[:40] in first


async def test_a_usable_title_is_kept_and_nothing_is_disclosed() -> None:
    proposal = await _propose("Warm-up fixes the divergence", {"topic": TOPIC})
    assert proposal.title == "Warm-up fixes the divergence"
    assert "fallback:title" not in proposal.tags
    assert "written by coimprove" not in proposal.body


async def test_the_default_fallback_names_the_chosen_values() -> None:
    model = FakeChatModel(responses=[reply("analysis", title="   .")])
    proposal = await ExecutionAnalysisAgent(model, retry=FAST)({"topic": TOPIC}, Ctx())
    assert proposal.title == "Run outcome: " + json.loads(reply("analysis"))["outcome"].replace(
        "_", " "
    )
    assert "fallback:title" in proposal.tags


def test_short_titles_found_in_the_prompt_are_not_degenerate() -> None:
    assert degenerate_reason("Learning rate", prompt=TOPIC, earlier={}) is None
    assert degenerate_reason("learning  RATE is large", prompt=TOPIC, earlier={}) == (
        "copied from the prompt"
    )


@pytest.mark.parametrize(
    "title",
    [
        "The solution",
        "A simple, yet effective, solution to the problem.",
        "The answer to the question of why the solution to the problem is worth pursuing.",
        "Failed",
    ],
)
def test_titles_that_name_nothing_concrete_are_generic(title: str) -> None:
    """SmolLM2's titles in the local demo before the check: each says nothing about its gate."""
    assert degenerate_reason(title, prompt=TOPIC, earlier={}) == (
        "generic (it names nothing concrete)"
    )


@pytest.mark.parametrize(
    "title",
    ["Warm-up fixes the divergence", "Failed: exit 1", "Method: MLP, 16 hidden units", "Run ok"],
)
def test_a_concrete_word_or_a_number_keeps_a_title(title: str) -> None:
    expected = None if title != "Run ok" else "generic (it names nothing concrete)"
    assert degenerate_reason(title, prompt=TOPIC, earlier={}) == expected


async def test_an_idea_whose_text_is_generic_too_is_titled_from_its_problem() -> None:
    """SmolLM2 in the local demo: title and idea both "A simple, yet effective, solution…"."""
    vague = "A simple, yet effective, solution to the problem."
    problem = "Our classifier on two concentric rings barely beats chance."
    model = FakeChatModel(responses=[reply("idea", title=vague, idea=vague, problem=problem)])
    proposal = await IdeaAgent(model, retry=FAST)({"topic": TOPIC}, Ctx())
    assert proposal.title == "Idea: " + problem
    assert "generic (it names nothing concrete)" in proposal.body.splitlines()[0]
    model = FakeChatModel(responses=[reply("idea", title=vague, idea=vague, problem=vague)])
    proposal = await IdeaAgent(model, retry=FAST)({"topic": TOPIC}, Ctx())
    assert proposal.title == "Idea (the model's text names nothing concrete)"
