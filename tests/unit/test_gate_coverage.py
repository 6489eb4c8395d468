"""`compile()` / `check_gated` refuse graphs in which an effect can run around its gate."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.graph import StateGraph

from coimprove import (
    END,
    START,
    GatedState,
    GraphDefinitionError,
    UngatedEffectError,
    Workflow,
    add_agent,
    add_effect,
    add_gate,
    check_gated,
)
from coimprove.testing import proposal
from tests.helpers import linear_workflow


def _noop_effect(state: Any, approved: Any) -> dict[str, Any]:
    return {}


def _agent(state: Any) -> Any:
    return proposal()


def test_a_gated_workflow_compiles() -> None:
    linear_workflow(pairs=3).compile()


def test_a_direct_agent_to_effect_edge_is_refused_with_its_path() -> None:
    wf = Workflow("bad")
    wf.agent("propose", _agent)
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", _noop_effect, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("propose", "apply")  # the bypass
    wf.edge("apply", END)
    with pytest.raises(UngatedEffectError) as info:
        wf.compile()
    assert info.value.path == ["__start__", "propose", "apply"]
    assert "propose -> apply" in str(info.value)


def test_a_bypass_through_an_ordinary_node_is_refused() -> None:
    wf = Workflow("bad")
    wf.agent("propose", _agent)
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", _noop_effect, gate="review")
    wf.node("tidy", lambda s: {})
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("propose", "tidy")
    wf.edge("tidy", "apply")
    wf.edge("apply", END)
    with pytest.raises(UngatedEffectError, match="propose -> tidy -> apply"):
        wf.compile()


def test_passing_a_different_gate_does_not_count() -> None:
    wf = Workflow("bad")
    wf.agent("a1", _agent)
    wf.agent("a2", _agent)
    wf.gate("g1", proposal_from="a1", on_approve="a2")
    wf.gate("g2", proposal_from="a2", on_approve="e2")
    wf.effect("e2", _noop_effect, gate="g2")
    wf.effect("e1", _noop_effect, gate="g1")
    wf.edge(START, "a1")
    wf.edge("a1", "g1")
    wf.edge("a2", "g2")
    wf.edge("a2", "e1")  # e1 is guarded by g1, but a2's proposals never passed g1
    wf.edge("e1", END)
    wf.edge("e2", END)
    with pytest.raises(UngatedEffectError, match="a2 -> e1"):
        wf.compile()


def test_a_router_without_path_map_counts_as_going_anywhere() -> None:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(GatedState)
    add_agent(builder, "propose", _agent)
    add_gate(builder, "review", proposal_from="propose", on_approve="apply")
    add_effect(builder, "apply", _noop_effect, gate="review")
    builder.add_node("think", lambda s: {})
    builder.add_edge(START, "propose")
    builder.add_edge("propose", "think")

    def route(state: Any) -> str:  # untyped: LangGraph cannot see its targets
        return "review"

    builder.add_conditional_edges("think", route)
    builder.add_edge("apply", END)
    # the drawn graph shows no path to 'apply' at all; the check must not pass vacuously
    with pytest.raises(UngatedEffectError, match="may go anywhere"):
        check_gated(builder)


def test_a_router_with_a_path_map_is_checked_precisely() -> None:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(GatedState)
    add_agent(builder, "propose", _agent)
    add_gate(builder, "review", proposal_from="propose", on_approve="apply")
    add_effect(builder, "apply", _noop_effect, gate="review")
    builder.add_node("think", lambda s: {})
    builder.add_edge(START, "propose")
    builder.add_edge("propose", "think")
    builder.add_conditional_edges("think", lambda s: "review", {"review": "review", "end": END})
    builder.add_edge("apply", END)
    check_gated(builder)
    check_gated(builder.compile())  # a compiled graph is read through its builder


def test_a_gate_its_agent_cannot_reach_is_refused() -> None:
    wf = Workflow("bad")
    wf.agent("propose", _agent)
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", _noop_effect, gate="review")
    wf.edge(START, "propose")
    wf.edge("propose", END)
    with pytest.raises(GraphDefinitionError, match="cannot be reached from its agent"):
        wf.compile()


def test_an_effect_naming_a_non_gate_is_refused() -> None:
    wf = Workflow("bad")
    wf.agent("propose", _agent)
    wf.gate("review", proposal_from="propose", on_approve="apply")
    wf.effect("apply", _noop_effect, gate="propose")
    wf.edge(START, "propose")
    wf.edge("propose", "review")
    wf.edge("apply", END)
    with pytest.raises(GraphDefinitionError, match="not a gate"):
        wf.compile()


def test_a_gate_reading_from_a_non_agent_is_refused() -> None:
    wf = Workflow("bad")
    wf.node("plain", lambda s: {})
    wf.gate("review", proposal_from="plain", on_approve=END)
    wf.edge(START, "plain")
    wf.edge("plain", "review")
    with pytest.raises(GraphDefinitionError, match="not an agent"):
        wf.compile()


def test_route_requires_a_path_map() -> None:
    wf = Workflow("x")
    with pytest.raises(GraphDefinitionError, match="path_map"):
        wf.route("a", lambda s: "b", {})


def test_a_gate_name_that_would_break_gate_ids_is_refused() -> None:
    wf = Workflow("x")
    wf.agent("propose", _agent)
    with pytest.raises(GraphDefinitionError, match=r"gate name 'review\.v2'"):
        wf.gate("review.v2", proposal_from="propose", on_approve=END)
