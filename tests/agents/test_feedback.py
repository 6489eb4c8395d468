"""The feedback loop: request_changes brings the note and the previous proposal back to the
agent's prompt, and the new proposal revises the old one and says what it changed."""

from __future__ import annotations

from coimprove.agents import FakeChatModel, IdeaAgent
from coimprove.testing import Verdicts, run_scripted
from tests.agents.conftest import FAST, one_agent_workflow, reply


async def test_request_changes_puts_note_and_previous_proposal_in_the_prompt() -> None:
    model = FakeChatModel(
        responses=[
            reply("idea", title="First idea: early stopping"),
            reply("idea", title="Second idea: early stopping vs baseline", changes="added it"),
        ]
    )
    reviewer = Verdicts(["request_changes", "approve"], note="compare with the baseline")
    result = await run_scripted(
        one_agent_workflow("wf-feedback", IdeaAgent(model, retry=FAST)), reviewer
    )
    assert result.info.state == "finished"
    first_prompt = str(model.calls[0][1].content)
    assert "Reviewer feedback" not in first_prompt
    second_prompt = str(model.calls[1][1].content)
    assert "Reviewer's note: compare with the baseline" in second_prompt
    assert "title: First idea: early stopping" in second_prompt  # the previous proposal
    assert "Replay last month's runs" in second_prompt  # … with its body

    first, second = (r.proposal for r in reviewer.seen)
    assert second.revises == first.id
    assert second.title == "Second idea: early stopping vs baseline"
    assert second.body.startswith(f"**Revision of {first.id}**")
    assert "Reviewer's note: compare with the baseline" in second.body
    assert "What changed: added it" in second.body
    assert "revision" in second.tags and "revision" not in first.tags
    assert reviewer.seen[1].feedback == "compare with the baseline"
    assert result.state["applied"]["id"] == second.id


async def test_a_revision_that_does_not_say_what_changed_is_marked_so() -> None:
    model = FakeChatModel(responses=[reply("idea")])
    reviewer = Verdicts(["request_changes", "approve"], note="be more specific")
    await run_scripted(one_agent_workflow("wf-silent", IdeaAgent(model, retry=FAST)), reviewer)
    assert "(the model did not say what it changed)" in reviewer.seen[1].proposal.body
