"""Every model call is timed, logged and recorded in the ledger as ``model.called``."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from coimprove.agents import FakeChatModel, IdeaAgent, ModelCallRecorder
from coimprove.ledger import SqliteLedger
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import FAST, one_agent_workflow, reply


async def test_each_model_call_of_a_run_is_a_ledger_event() -> None:
    model = FakeChatModel(responses=[TimeoutError("slow"), '{"title": "x"}', reply("idea")])
    result = await run_scripted(
        one_agent_workflow("wf-ledger", IdeaAgent(model, retry=FAST)), Verdicts(["approve"])
    )
    assert result.info.state == "finished"
    with SqliteLedger(result.db) as ledger:
        events = ledger.events(types=["model.called"])
        assert ledger.verify().ok
    assert len(events) == len(model.calls) == 3  # a transient error, an invalid and a valid reply
    failed, invalid, valid = (e.data for e in events)
    assert failed["ok"] is False and "TimeoutError: slow" in failed["error"]
    assert invalid["ok"] is True and valid["ok"] is True
    for event in events:
        assert event.run_id == result.info.run_id
        assert event.actor == "agent:agent"
        assert event.data["model"] == "fake" and event.data["agent"] == "agent"
        assert event.data["latency_s"] >= 0
    assert valid["output_tokens"] > 0 and valid["input_tokens"] > 0
    assert valid["total_tokens"] == valid["input_tokens"] + valid["output_tokens"]


async def test_model_calls_are_logged_with_model_tokens_and_latency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="coimprove.agents")
    model = FakeChatModel(responses=[reply("idea")])
    await run_scripted(
        one_agent_workflow("wf-log", IdeaAgent(model, retry=FAST)), Verdicts(["approve"])
    )
    records = [json.loads(r.getMessage()) for r in caplog.records if "model.called" in r.message]
    assert len(records) == 1
    (rec,) = records
    assert rec["model"] == "fake" and rec["agent"] == "agent"
    assert rec["output_tokens"] > 0 and "latency_s" in rec


def test_recorder_reports_calls_outside_a_run_and_survives_a_broken_sink() -> None:
    seen: list[dict[str, Any]] = []
    model = FakeChatModel(responses=["a b c"])
    model.invoke("hello", config={"callbacks": [ModelCallRecorder(seen.append)]})
    assert seen[0]["model"] == "fake" and seen[0]["output_tokens"] == 3 and seen[0]["ok"]

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    assert model.invoke("x", config={"callbacks": [ModelCallRecorder(broken)]}).content == "a b c"
