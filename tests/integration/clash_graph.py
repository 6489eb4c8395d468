"""A workflow whose approval fans out to two effects that both write the plain key ``result``:
LangGraph refuses the step with InvalidUpdateError (and refuses to compute the state after it)."""

from __future__ import annotations

from coimprove import END, START, GatedState, Proposal, Workflow


class ClashState(GatedState, total=False):
    result: str


workflow = Workflow("clash", state=ClashState)
workflow.agent("propose", lambda s: Proposal(kind="idea", title="x", author="agent:propose"))
workflow.gate("review", proposal_from="propose", on_approve="fan_out")
workflow.node("fan_out", lambda s: {})
workflow.effect("write_a", lambda s, a: {"result": "a"}, gate="review")
workflow.effect("write_b", lambda s, a: {"result": "b"}, gate="review")
workflow.edge(START, "propose")
workflow.edge("propose", "review")
workflow.edge("fan_out", "write_a")
workflow.edge("fan_out", "write_b")
workflow.edge("write_a", END)
workflow.edge("write_b", END)
