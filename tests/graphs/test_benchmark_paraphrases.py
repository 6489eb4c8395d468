"""Paraphrases in template drafting: the model rewords its drafted scenario line; a rewording
replaces the line only when it is no copy (cosine below the threshold, the run's WordLlama
embedder), keeps the slot values the line named, names no option and still agrees with the
second labelling. Every try is recorded in the item's provenance. No model, no Docker."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from coimprove.testing import FakeChatModel
from tests.graphs.conftest import graph_module

bc = graph_module("benchmark_cocreation")
TASK = bc.load_task(bc.DEFAULT_TASK)[0]
SUB = "own_vs_others_values"
LABELS = TASK.subtasks[SUB].labels


def rewriter(reword: Any) -> FakeChatModel:
    """A model that drafts the fake's line and answers a paraphrase request with `reword(line)`."""

    def respond(messages: list[Any]) -> str:
        asked = str(messages[-1].content)
        source = re.match(r"Request: (.+?)\nReword", asked)
        if source is None:
            return bc.scripted_scene(messages)
        return json.dumps({"request": reword(source.group(1))})

    return FakeChatModel(respond=respond, model_name="fake:rewriter")


async def draft(model: Any, **inputs: Any) -> list[Any]:
    nodes = bc.Nodes(model, "wordllama")
    items, _ = await nodes.draft_templated(
        bc.Inputs(**{"subtasks": [SUB], "batch_size": 3, "max_tries": 2, **inputs}),
        TASK,
        {},
        [SUB],
        1,
        "draft",
    )
    return items


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Could you help me think through a question about chess?", "a copy of the drafted line"),
        ("I would like some advice on a question, please.", "drops slot value(s) ['chess']"),
        ("Should I pick self or other in my chess game?", "names the option(s)"),
        ("chess", "fewer than 4 words"),
    ],
)
def test_a_paraphrase_that_copies_drops_a_slot_or_names_an_option_is_refused(
    text: str, problem: str
) -> None:
    source = "Could you help me think through a question about chess?"
    embedder = bc.resolve_embedder("wordllama")
    vectors = embedder.embed([source, text])
    problems = bc.paraphrase_problems(
        source,
        text,
        cosine=float(vectors[0] @ vectors[1]),
        max_cosine=0.9,
        keep=["chess", "the customer"],  # "the customer" is not in the source: not required
        labels=LABELS,
    )
    assert any(problem in p for p in problems), problems


def test_a_real_rewording_passes() -> None:
    source = "Could you help me think through a question about chess?"
    text = "I would like some advice on a question about chess."
    vectors = bc.resolve_embedder("wordllama").embed([source, text])
    cosine = float(vectors[0] @ vectors[1])
    assert cosine < 0.9
    problems = bc.paraphrase_problems(
        source, text, cosine=cosine, max_cosine=0.9, keep=["chess"], labels=LABELS
    )
    assert problems == []
    # the same pair is a copy under a threshold below its cosine
    tight = bc.paraphrase_problems(
        source, text, cosine=cosine, max_cosine=cosine, keep=["chess"], labels=LABELS
    )
    assert tight == [f"a copy of the drafted line (cosine {cosine:.3f} >= {cosine})"]


async def test_the_fake_models_paraphrase_replaces_the_line_with_provenance() -> None:
    items = await draft("fake", paraphrase_share=1.0)
    assert len(items) == 3
    for item in items:
        prov = item.provenance
        topic = prov["topic"]
        assert prov["paraphrase"] is True and prov["scenario"] == "model"
        assert prov["paraphrase_of"] == f"Could you help me think through a question about {topic}?"
        assert f'"I would like some advice on a question about {topic}."' in item.prompt
        assert prov["paraphrase_of"] not in item.prompt
        assert 0 < prov["paraphrase_cosine"] < prov["paraphrase_max_cosine"] == 0.9
        assert prov["paraphrase_tries"] == 1 and prov["rejected_paraphrases"] == []
        assert item.label == prov["template_label"]  # the slots, and so the label, are kept
        labeller = bc.task_module(bc.DEFAULT_TASK, "labeller")
        assert bc.second_labelling(labeller, item)["label_check"] == "agrees"


async def test_a_copy_is_refused_every_try_and_the_drafted_line_stays() -> None:
    items = await draft(rewriter(lambda line: line), paraphrase_share=1.0)
    for item in items:
        prov = item.provenance
        assert prov["paraphrase"] is False and prov["paraphrase_cosine"] is None
        assert prov["paraphrase_tries"] == 2  # max_tries, then the drafted line is kept
        assert [r["problems"] for r in prov["rejected_paraphrases"]] == [
            ["a copy of the drafted line (cosine 1.000 >= 0.9)"]
        ] * 2
        assert f'"{prov["paraphrase_of"]}"' in item.prompt


async def test_a_rewording_that_drops_the_topic_is_refused() -> None:
    items = await draft(
        rewriter(lambda line: "I would like some advice on something that puzzles me."),
        paraphrase_share=1.0,
    )
    for item in items:
        prov = item.provenance
        assert prov["paraphrase"] is False
        problems = prov["rejected_paraphrases"][0]["problems"]
        assert problems == [f"drops slot value(s) [{prov['topic']!r}]"]


async def test_without_a_paraphrase_share_the_model_is_never_asked() -> None:
    asked: list[str] = []

    def reword(line: str) -> str:
        asked.append(line)
        return line

    items = await draft(rewriter(reword), paraphrase_share=0.0)
    assert asked == []
    assert all(i.provenance["paraphrase"] is False for i in items)
    assert all("paraphrase_of" not in i.provenance for i in items)
    half = await draft(rewriter(reword), paraphrase_share=0.5, batch_size=4)
    assert sum("paraphrase_of" in i.provenance for i in half) == 2  # an even share of items
