"""Structured output: validation, re-prompting with the error, bounded retries, loud failure."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from coimprove.agents import (
    AgentOutputError,
    FakeChatModel,
    ModelError,
    RetryPolicy,
    generate_structured,
    is_transient,
    parse_output,
)
from tests.agents.conftest import FAST


class Point(BaseModel):
    x: int = Field(ge=0, description="the x coordinate")
    label: str = Field(min_length=1)


PROMPT = [HumanMessage(content="give me a point")]


async def test_valid_reply_is_parsed_on_the_first_attempt() -> None:
    model = FakeChatModel(responses=['{"x": 3, "label": "a"}'])
    out = await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert out.value == Point(x=3, label="a")
    assert out.attempts == 1
    assert out.model == "fake"


async def test_schema_is_sent_as_a_decoding_constraint_to_models_that_support_it() -> None:
    model = FakeChatModel(responses=['{"x": 3, "label": "a"}'])
    await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    fmt = model.call_kwargs[0]["response_format"]
    assert fmt == {"type": "json_object", "schema": Point.model_json_schema()}


async def test_native_false_sends_no_response_format() -> None:
    model = FakeChatModel(responses=['{"x": 3, "label": "a"}'])
    await generate_structured(model, Point, PROMPT, agent="p", retry=FAST, native=False)
    assert "response_format" not in model.call_kwargs[0]


async def test_invalid_then_valid_reprompts_with_the_validation_error() -> None:
    model = FakeChatModel(responses=['{"x": -1, "label": "a"}', '{"x": 1, "label": "a"}'])
    out = await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert out.value.x == 1
    assert out.attempts == 2
    second = model.calls[1]
    assert second[-2].content == '{"x": -1, "label": "a"}'  # its own bad reply, then the error
    assert "x: Input should be greater than or equal to 0" in str(second[-1].content)


async def test_non_json_reply_is_retried_and_fenced_json_accepted() -> None:
    model = FakeChatModel(responses=["Sure! Here it is.", '```json\n{"x": 2, "label": "b"}\n```'])
    out = await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert out.value == Point(x=2, label="b")
    assert "not JSON" in str(model.calls[1][-1].content)


async def test_exhaustion_names_agent_model_and_last_invalid_output() -> None:
    model = FakeChatModel(responses=['{"x": -1}', '{"x": -2}', '{"x": -3, "label": ""}'])
    with pytest.raises(AgentOutputError) as info:
        await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    err = info.value
    assert (err.agent, err.model, err.attempts) == ("pointer", "fake", 3)
    assert err.last_output == '{"x": -3, "label": ""}'
    message = str(err)
    assert "agent 'pointer'" in message and "model 'fake'" in message
    assert '{"x": -3, "label": ""}' in message
    assert len(model.calls) == 3  # bounded: exactly max_attempts replies


async def test_transient_errors_are_retried_then_the_reply_is_used() -> None:
    model = FakeChatModel(
        responses=[TimeoutError("slow"), ConnectionError("reset"), '{"x": 5, "label": "c"}']
    )
    out = await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert out.value.x == 5
    assert out.attempts == 1  # transient retries do not count as invalid replies
    assert len(model.calls) == 3


async def test_persistent_transient_errors_fail_with_agent_and_model_named() -> None:
    model = FakeChatModel(responses=[TimeoutError("slow")])
    with pytest.raises(ModelError, match=r"agent 'pointer': model 'fake' kept failing after 3"):
        await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert len(model.calls) == 3


async def test_non_transient_errors_are_not_retried() -> None:
    model = FakeChatModel(responses=[KeyError("bug")])
    with pytest.raises(KeyError):
        await generate_structured(model, Point, PROMPT, agent="pointer", retry=FAST)
    assert len(model.calls) == 1


def test_transient_classification() -> None:
    class RateLimitError(Exception):
        pass

    class HTTPError(Exception):
        status_code = 503

    assert is_transient(RateLimitError())
    assert is_transient(HTTPError())
    assert is_transient(TimeoutError())
    assert not is_transient(ValueError("bad"))
    assert not is_transient(ModelError("missing extra"))


def test_parse_output_finds_the_object_inside_prose() -> None:
    assert parse_output(Point, 'blah {"x": 1, "label": "z"} blah') == Point(x=1, label="z")
    with pytest.raises(ValueError, match="does not fit the schema"):
        parse_output(Point, json.dumps({"x": "many"}))


def test_retry_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_the_local_decoding_grammar_bounds_every_string_and_list() -> None:
    from coimprove.agents.local import grammar_safe_schema
    from coimprove.agents.roles import CodeOutput, ExperimentOutput, WriteupOutput

    def walk(node: object) -> list[dict[str, object]]:
        if isinstance(node, list):
            return [n for v in node for n in walk(v)]
        if isinstance(node, dict):
            return [node, *(n for v in node.values() for n in walk(v))]
        return []

    for schema in (CodeOutput, ExperimentOutput, WriteupOutput):
        safe = grammar_safe_schema(schema.model_json_schema(), max_string=600, max_items=4)
        nodes = walk(safe)
        strings = [n for n in nodes if n.get("type") == "string" and "pattern" not in n]
        arrays = [n for n in nodes if n.get("type") == "array"]
        assert strings and all(0 < int(n["maxLength"]) <= 600 for n in strings)  # type: ignore[call-overload]
        assert all(int(n["maxItems"]) <= 4 for n in arrays)  # type: ignore[call-overload]
    original = ExperimentOutput.model_json_schema()
    assert original["properties"]["command"]["maxLength"] == 300  # the schema itself untouched
