"""`MergedDict`, the channel behind `GatedState`'s maps: merge semantics, LangGraph's
`Overwrite`, and checkpoints written by the reducer channel it replaced."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels.binop import BinaryOperatorAggregate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import InvalidUpdateError
from langgraph.graph import END, START, StateGraph
from langgraph.types import Overwrite

from coimprove.channels import MergedDict, merge
from coimprove.state import GatedState


def test_updates_merge_in_order_and_none_deletes() -> None:
    chan = MergedDict().from_checkpoint({"a": 1, "b": 2})
    assert chan.update([{"a": 3}, {"b": None, "c": 4}, {"c": 5}])
    assert chan.get() == {"a": 3, "c": 5}
    assert not chan.update([])  # a step without writes changes nothing
    assert chan.get() == {"a": 3, "c": 5}


def test_values_are_replaced_never_changed_in_place() -> None:
    before = {"a": 1}
    chan = MergedDict().from_checkpoint(before)
    copy = chan.copy()
    chan.update([{"a": 2}])
    assert before == {"a": 1} and copy.get() == {"a": 1} and chan.get() == {"a": 2}


def test_starts_empty_and_available() -> None:
    for chan in (MergedDict(), MergedDict().from_checkpoint(None)):
        assert chan.is_available() and chan.get() == {} and chan.checkpoint() == {}


@pytest.mark.parametrize(
    "overwrite",
    [
        Overwrite({"z": 0}),
        {"__overwrite__": {"z": 0}},
        {"type": "__overwrite__", "value": {"z": 0}},
    ],
)
def test_overwrite_replaces_and_later_updates_in_the_step_are_ignored(overwrite: Any) -> None:
    chan = MergedDict().from_checkpoint({"a": 1})
    chan.update([{"b": 2}, overwrite, {"c": 3}])
    assert chan.get() == {"z": 0}  # as LangGraph's reducer channel does


def test_two_overwrites_in_one_step_are_refused() -> None:
    chan = MergedDict()
    with pytest.raises(InvalidUpdateError, match="only one Overwrite"):
        chan.update([Overwrite({}), Overwrite({"a": 1})])


def test_agrees_with_the_reducer_channel_it_replaced() -> None:
    updates = [[{"a": 1}], [{"a": None, "b": {"x": 1}}], [], [{"b": 2}, {"c": 3}]]
    ours, theirs = MergedDict(), BinaryOperatorAggregate(dict, merge)
    for step in updates:
        ours.update(step)
        theirs.update(step)
        assert ours.get() == theirs.get()
    assert ours.from_checkpoint(theirs.checkpoint()).get() == theirs.get()


def test_gated_state_graph_restores_from_a_reducer_channel_checkpoint() -> None:
    """A thread checkpointed while `GatedState` used the reducer channel goes on with
    `MergedDict`: the stored values are the same plain dicts."""

    class Old(TypedDict, total=False):
        proposals: Annotated[dict[str, Any], merge]

    def build(state: type[Any]) -> Any:
        builder = StateGraph(state)
        builder.add_node("one", lambda s: {"proposals": {"a": {"n": 1}}})
        builder.add_node("two", lambda s: {"proposals": {"b": {"n": 2}, "a": None}})
        builder.add_edge(START, "one")
        builder.add_edge("one", "two")
        builder.add_edge("two", END)
        return builder

    saver = InMemorySaver()
    cfg: Any = {"configurable": {"thread_id": "t"}}
    build(Old).compile(checkpointer=saver, interrupt_after=["one"]).invoke({}, cfg)
    new = build(GatedState).compile(checkpointer=saver)
    assert new.get_state(cfg).values["proposals"] == {"a": {"n": 1}}
    assert new.invoke(None, cfg)["proposals"] == {"b": {"n": 2}}
