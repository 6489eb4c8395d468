"""The `Workflow` builder, node helpers for your own StateGraph, and the gate-coverage check.

```python
wf = Workflow("quickstart", policy="default")

@wf.agent("propose", kind="idea")
def propose(state, ctx):
    return Proposal(kind="idea", title="Try a smaller learning rate", author="agent:propose")

wf.gate("review", proposal_from="propose", on_approve="apply")

@wf.effect("apply", gate="review")
def apply(state, approved):
    return {"applied": approved.proposal.title}

wf.edge(START, "propose")
wf.edge("apply", END)
```

`compile()` refuses a graph in which any path from START or an agent reaches an effect
without passing that effect's gate (`UngatedEffectError`, naming the path).
"""

from __future__ import annotations

import inspect
import re
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ValidationError

from coimprove.agents.telemetry import recording
from coimprove.effects import EffectFn, EffectNode
from coimprove.errors import CoimproveError, GraphDefinitionError, UngatedEffectError
from coimprove.gates import ROLE_ATTR, GateNode, GateSpec, NodeRole, proposed
from coimprove.memory import Recall, ReviewNote
from coimprove.model import Proposal
from coimprove.state import GatedState, check_declared, model_recorder, run_context

AnyGraph = StateGraph[Any, Any, Any, Any] | CompiledStateGraph[Any, Any, Any, Any]


@dataclass(frozen=True)
class Feedback:
    """What the reviewer said last time: the note, the gate, and the proposal sent back."""

    note: str
    gate_id: str
    previous: Proposal


@dataclass(frozen=True)
class AgentContext:
    """Passed to agent functions that take a second argument."""

    name: str
    run_id: str
    feedback: Feedback | None
    memory: Recall | None = None
    """Agent memory of review, when the run has it on; use `recall`."""

    def recall(self, text: str = "", *, k: int | None = None) -> list[ReviewNote]:
        """Past review notes relevant to `text` (none when memory is off). The notes returned
        are recorded on the proposal this agent returns (`Proposal.recalled`)."""
        return [] if self.memory is None else self.memory(text, k=k)


AgentFn = Callable[..., Any]


class AgentNode:
    """Wraps a function that returns a `Proposal` (or its fields as a dict) into an agent node."""

    __coimprove_role__: NodeRole = "agent"

    def __init__(
        self,
        name: str,
        fn: AgentFn,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
    ) -> None:
        self.name, self.fn, self.kind, self.payload_model = name, fn, kind, payload
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self._wants_context = len(params) >= 2
        self.__name__ = f"agent:{name}"
        self.channels: Mapping[str, Any] | None = None
        """The state's channels (set by `add_agent`): extra state keys it returns must be in it."""

    async def __call__(self, state: Any) -> dict[str, Any]:
        ctx = run_context()
        raw_fb = (state.get("feedback") or {}).get(self.name)
        feedback = None
        if isinstance(raw_fb, dict):
            feedback = Feedback(
                raw_fb["note"], raw_fb["gate_id"], Proposal.from_state(raw_fb["previous"])
            )
        recall = None
        if ctx.memory is not None and ctx.memory.config.enabled:
            recall = Recall(
                ctx.memory,
                graph=ctx.graph,
                agent=self.name,
                kind=self.kind,
                exclude_gates=(feedback.gate_id,) if feedback else (),
            )
        agent_ctx = AgentContext(self.name, ctx.run_id, feedback, recall)
        args: tuple[Any, ...] = (state, agent_ctx)
        with recording(model_recorder(ctx)):  # this agent's model calls go to the ledger
            result = self.fn(*args[: 2 if self._wants_context else 1])
            if inspect.isawaitable(result):
                result = await result
        extra: dict[str, Any] = {}
        if isinstance(result, tuple):
            result, extra = result
            check_declared(f"agent {self.name!r}", extra, self.channels)
        given = tuple(n.id for n in recall.given) if recall is not None else ()
        proposal = self._normalise(result, feedback, given)
        return {**extra, "proposals": {self.name: proposed(proposal)}}

    def _normalise(
        self, result: Any, feedback: Feedback | None, recalled: tuple[str, ...] = ()
    ) -> Proposal:
        if isinstance(result, Proposal):
            if feedback is None and not recalled and self.payload_model is None:
                return result  # validated when it was made, and nothing here changes it
            fields = result.model_dump(exclude={"digest"})
        elif isinstance(result, dict):
            fields = dict(result)
        else:
            raise CoimproveError(
                f"agent {self.name!r} returned {type(result).__name__}; it must return a "
                "Proposal, a dict of Proposal fields, or (Proposal, state update)"
            )
        fields.setdefault("author", f"agent:{self.name}")
        if self.kind is not None:
            fields.setdefault("kind", self.kind)
        if feedback is not None and not fields.get("revises"):
            fields["revises"] = feedback.previous.id
        if recalled:
            fields["recalled"] = tuple(dict.fromkeys((*fields.get("recalled", ()), *recalled)))
        if self.payload_model is not None:
            try:
                fields["payload"] = self.payload_model.model_validate(
                    fields.get("payload") or {}
                ).model_dump(mode="json")
            except ValidationError as exc:
                raise CoimproveError(
                    f"agent {self.name!r} proposed a payload that does not fit "
                    f"{self.payload_model.__name__}: {exc}"
                ) from exc
        try:
            return Proposal.model_validate(fields)
        except ValidationError as exc:
            raise CoimproveError(
                f"agent {self.name!r} returned an invalid proposal: {exc}"
            ) from exc


_GATE_NAME = re.compile(r"[A-Za-z0-9_-]+")

# -- helpers for users' own StateGraphs -------------------------------------------------------


def add_agent(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    fn: AgentFn,
    *,
    kind: str | None = None,
    payload: type[BaseModel] | None = None,
) -> AgentNode:
    """Add an agent node (a proposal source) to your own StateGraph."""
    node = AgentNode(name, fn, kind=kind, payload=payload)
    node.channels = builder.channels  # the live map: schemas added later count too
    builder.add_node(name, node, metadata={"coimprove_role": "agent"})
    return node


def add_gate(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    *,
    proposal_from: str,
    on_approve: str,
    on_reject: str = END,
    category: str | None = None,
    payload_schema: dict[str, Any] | None = None,
) -> GateNode:
    """Add a gate to your own StateGraph. Its outgoing edges are the outcomes: don't add others."""
    if not _GATE_NAME.fullmatch(name):
        raise GraphDefinitionError(
            f"gate name {name!r} must be letters, digits, '_' or '-' (it is part of gate ids)"
        )
    node = GateNode(GateSpec(name, proposal_from, on_approve, on_reject, category, payload_schema))
    builder.add_node(
        name, node, metadata={"coimprove_role": "gate"}, destinations=node.spec.destinations
    )
    return node


def add_effect(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    fn: EffectFn,
    *,
    gate: str,
    idempotent: bool = False,
) -> EffectNode:
    """Add an effect to your own StateGraph; it runs only with `gate`'s approval."""
    node = EffectNode(name, fn, gate=gate, idempotent=idempotent)
    node.channels = builder.channels  # the live map: schemas added later count too
    builder.add_node(name, node, metadata={"coimprove_role": "effect"})
    return node


# -- the coverage check -----------------------------------------------------------------------

_ANYWHERE = "<anywhere>"


def _node_obj(spec: Any) -> Any:
    runnable = spec.runnable
    for attr in ("afunc", "func"):
        fn = getattr(runnable, attr, None)
        if fn is not None and hasattr(fn, ROLE_ATTR):
            return fn
        bound = getattr(fn, "__self__", None)
        if bound is not None and hasattr(bound, ROLE_ATTR):
            return bound
    return runnable


def node_roles(graph: AnyGraph) -> dict[str, tuple[NodeRole | None, Any]]:
    """Each node's coimprove role (agent, gate, effect or None) and its node object."""
    builder = graph.builder if isinstance(graph, CompiledStateGraph) else graph
    out: dict[str, tuple[NodeRole | None, Any]] = {}
    for name, spec in builder.nodes.items():
        obj = _node_obj(spec)
        role = (spec.metadata or {}).get("coimprove_role") or getattr(obj, ROLE_ATTR, None)
        out[name] = (role, obj)
    return out


def _successors(builder: StateGraph[Any, Any, Any, Any]) -> dict[str, set[str]]:
    succ: dict[str, set[str]] = defaultdict(set)
    for src, dst in builder.edges:
        succ[src].add(dst)
    for starts, dst in builder.waiting_edges:
        for src in starts:
            succ[src].add(dst)
    for src, branches in builder.branches.items():
        for branch in branches.values():
            if branch.ends is None:
                succ[src].add(_ANYWHERE)  # a router without path_map: fail closed
            else:
                succ[src].update(branch.ends.values())
    for name, spec in builder.nodes.items():
        ends = spec.ends
        if isinstance(ends, dict):
            succ[name].update(ends.values())
        elif ends:
            succ[name].update(ends)
    return succ


def _path_avoiding(
    succ: dict[str, set[str]], nodes: set[str], source: str, target: str, avoid: str
) -> list[str] | None:
    """Shortest path source -> target that does not pass `avoid`, or None."""
    parent: dict[str, str | None] = {source: None}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        real = succ.get(node, set()) - {_ANYWHERE}
        nexts = real | nodes if _ANYWHERE in succ.get(node, set()) else real
        for nxt in sorted(nexts):
            if nxt in parent or nxt == avoid:
                continue
            parent[nxt] = node
            if nxt == target:
                path: list[str] = []
                cur: str | None = nxt
                while cur is not None:
                    prev = parent[cur]
                    path.append(cur)
                    if prev is not None and cur not in succ.get(prev, set()):
                        path.append(f"(router of {prev!r} has no path_map: it may go anywhere)")
                    cur = prev
                path.reverse()
                return path
            queue.append(nxt)
    return None


def check_gated(graph: AnyGraph) -> None:
    """Raise `UngatedEffectError` if START or an agent can reach an effect around its gate.

    Works on a `StateGraph` builder or a compiled graph (it reads the builder, never the drawn
    graph, which omits edges of untyped routers). A router without `path_map`/`Literal` return
    type counts as able to go anywhere.
    """
    builder = graph.builder if isinstance(graph, CompiledStateGraph) else graph
    roles = node_roles(builder)
    succ = _successors(builder)
    sources = [START, *sorted(n for n, (role, _) in roles.items() if role == "agent")]
    for name, (role, obj) in sorted(roles.items()):
        if role == "gate" and isinstance(obj, GateNode):
            src = obj.spec.proposal_from
            if roles.get(src, (None, None))[0] != "agent":
                raise GraphDefinitionError(
                    f"gate {name!r} reads proposals from {src!r}, which is not an agent node"
                )
            if _path_avoiding(succ, set(roles), src, name, avoid="") is None:
                raise GraphDefinitionError(
                    f"gate {name!r} cannot be reached from its agent {src!r}: its proposals "
                    f"would never be reviewed (add an edge {src!r} -> {name!r})"
                )
        if role != "effect":
            continue
        gate = getattr(obj, "gate", None)
        if gate is None or roles.get(gate, (None, None))[0] != "gate":
            raise GraphDefinitionError(f"effect {name!r} names gate {gate!r}, which is not a gate")
        for source in sources:
            path = _path_avoiding(succ, set(roles), source, name, gate)
            if path is not None:
                raise UngatedEffectError(path)


# -- the Workflow builder ---------------------------------------------------------------------


class Workflow:
    """A research workflow: agents propose, gates pause for reviewers, effects act on approvals."""

    def __init__(
        self,
        name: str,
        *,
        state: type[Any] = GatedState,
        policy: str = "default",
        description: str = "",
    ) -> None:
        self.name, self.policy, self.description = name, policy, description
        self.ref: str | None = None
        """How to load this workflow in another process (``path.py:attr``), if known."""
        self._builder: StateGraph[Any, Any, Any, Any] = StateGraph(state)
        self._agents: dict[str, AgentNode] = {}
        self._compiled: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @classmethod
    def from_graph(
        cls, builder: StateGraph[Any, Any, Any, Any], *, name: str, policy: str = "default"
    ) -> Workflow:
        """Wrap your own StateGraph (built with `add_agent`/`add_gate`/`add_effect`)."""
        wf = cls(name, policy=policy)
        wf._builder = builder
        check_gated(builder)
        return wf

    @classmethod
    def from_compiled(
        cls,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        *,
        name: str,
        policy: str = "default",
        description: str = "",
    ) -> Workflow:
        """Run a graph compiled elsewhere under coimprove, e.g. LangChain's ``create_agent``
        with `coimprove.GateMiddleware` on its tool calls.

        The runner gives it its own checkpointer (a copy of `graph`: the nodes, middleware
        and config, such as the agent's recursion limit, are kept; a checkpointer it was
        compiled with is replaced). Its gates are checked like any graph's.
        """
        if not isinstance(graph, CompiledStateGraph):
            raise GraphDefinitionError(
                f"Workflow.from_compiled({name!r}): expected a compiled LangGraph graph "
                f"(e.g. what create_agent returns), got {type(graph).__name__}"
            )
        check_gated(graph)
        wf = cls(name, policy=policy, description=description)
        wf._builder = graph.builder
        wf._compiled = graph
        return wf

    @property
    def builder(self) -> StateGraph[Any, Any, Any, Any]:
        return self._builder

    def agent(
        self,
        name: str,
        fn: AgentFn | None = None,
        *,
        kind: str | None = None,
        payload: type[BaseModel] | None = None,
    ) -> Any:
        """Add an agent node; usable as ``wf.agent("x", fn)`` or ``@wf.agent("x")``."""

        def register(f: AgentFn) -> AgentFn:
            self._agents[name] = add_agent(self._builder, name, f, kind=kind, payload=payload)
            return f

        return register(fn) if fn is not None else register

    def gate(
        self,
        name: str,
        *,
        proposal_from: str,
        on_approve: str,
        on_reject: str = END,
        category: str | None = None,
    ) -> GateNode:
        """Add a gate on `proposal_from`'s proposals. request_changes loops back to that agent."""
        agent = self._agents.get(proposal_from)
        schema = agent.payload_model.model_json_schema() if agent and agent.payload_model else None
        return add_gate(
            self._builder,
            name,
            proposal_from=proposal_from,
            on_approve=on_approve,
            on_reject=on_reject,
            category=category,
            payload_schema=schema,
        )

    def effect(
        self, name: str, fn: EffectFn | None = None, *, gate: str, idempotent: bool = False
    ) -> Any:
        """Add an effect node guarded by `gate`; usable directly or as a decorator."""

        def register(f: EffectFn) -> EffectFn:
            add_effect(self._builder, name, f, gate=gate, idempotent=idempotent)
            return f

        return register(fn) if fn is not None else register

    def node(self, name: str, fn: Callable[..., Any]) -> None:
        """Add an ordinary node (no proposals, no consequences outside the state)."""
        self._builder.add_node(name, fn)

    def edge(self, src: str | list[str], dst: str) -> None:
        """A static edge (or a join when `src` is a list)."""
        self._builder.add_edge(src, dst)

    def route(
        self,
        src: str,
        router: Callable[..., Hashable],
        path_map: dict[Hashable, str] | list[str],
    ) -> None:
        """A conditional edge. `path_map` is required so the gate check can see every target."""
        if not path_map:
            raise GraphDefinitionError(f"route from {src!r} needs a path_map of its targets")
        self._builder.add_conditional_edges(src, router, path_map)

    def compile(
        self, checkpointer: BaseCheckpointSaver[Any] | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Check gate coverage and compile to a LangGraph graph with `checkpointer`."""
        check_gated(self._builder)
        if self._compiled is not None:  # from_compiled: the same graph, our checkpointer
            return self._compiled.copy({"checkpointer": checkpointer, "name": self.name})
        try:
            return self._builder.compile(checkpointer=checkpointer, name=self.name)
        except ValueError as exc:
            raise GraphDefinitionError(f"workflow {self.name!r}: {exc}") from exc
