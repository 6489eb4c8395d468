"""Model-call telemetry: a LangChain callback handler that reports every chat-model call.

`ModelCallRecorder(sink)` calls ``sink(record)`` once per finished (or failed) model call with
a JSON-ready dict: ``model``, ``agent`` (the graph node, when called inside one), ``latency_s``,
``input_tokens``, ``output_tokens``, ``total_tokens``, ``tokens_per_s``, ``ok`` and, on failure,
``error``. The runner attaches one per run whose sink appends ``model.called`` to the ledger, so
reports can put model time beside human time; agents attach one whose sink writes the log.
A sink's own failure is logged and never breaks the model call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from coimprove._log import get_logger

log = get_logger("coimprove.agents.telemetry")

ModelCallSink = Callable[[dict[str, Any]], None]

AGENT_KEY = "coimprove_agent"
"""Run metadata key naming the agent (or reviewer) a model call belongs to."""


def _model_name(
    serialized: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
) -> str:
    for source, key in (
        (metadata, "ls_model_name"),
        (params, "model_name"),
        (params, "model"),
        (params, "_type"),
    ):
        value = (source or {}).get(key)
        if isinstance(value, str) and value:
            return value
    ident = (serialized or {}).get("id")
    return str(ident[-1]) if isinstance(ident, list) and ident else "unknown"


def _usage(response: LLMResult) -> dict[str, int]:
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    found = False
    for generations in response.generations:
        for gen in generations:
            usage = (
                getattr(gen.message, "usage_metadata", None)
                if isinstance(gen, ChatGeneration)
                else None
            )
            if usage:
                found = True
                for key in totals:
                    totals[key] += int(usage.get(key, 0) or 0)
    if not found:
        token_usage = (response.llm_output or {}).get("token_usage") or {}
        totals["input_tokens"] = int(token_usage.get("prompt_tokens", 0) or 0)
        totals["output_tokens"] = int(token_usage.get("completion_tokens", 0) or 0)
        totals["total_tokens"] = int(
            token_usage.get("total_tokens", 0) or totals["input_tokens"] + totals["output_tokens"]
        )
    return totals


class ModelCallRecorder(BaseCallbackHandler):
    """Times every chat-model call and hands a record to `sink` (see the module docstring)."""

    run_inline = True  # in the caller's thread/loop: a sink may write to a ledger connection
    raise_error = False
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, sink: ModelCallSink, *, name: str = "model-calls") -> None:
        self.sink, self.name = sink, name
        self._open: dict[UUID, tuple[float, str, str | None]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, serialized, kwargs.get("invocation_params"), metadata)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, serialized, kwargs.get("invocation_params"), metadata)

    def _start(
        self,
        run_id: UUID,
        serialized: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        meta = metadata or {}
        agent = meta.get(AGENT_KEY) or meta.get("langgraph_node")
        with self._lock:
            self._open[run_id] = (
                time.perf_counter(),
                _model_name(serialized, params, meta),
                str(agent) if agent else None,
            )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        record = self._finish(run_id)
        if record is None:
            return
        record.update(_usage(response))
        latency = record["latency_s"]
        record["tokens_per_s"] = (
            round(record["output_tokens"] / latency, 2) if latency > 0 else None
        )
        record["ok"] = True
        self._emit(record)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        record = self._finish(run_id)
        if record is None:
            return
        record.update(
            input_tokens=0,
            output_tokens=0,
            total_tokens=0,
            tokens_per_s=None,
            ok=False,
            error=f"{type(error).__name__}: {error}"[:500],
        )
        self._emit(record)

    def _finish(self, run_id: UUID) -> dict[str, Any] | None:
        with self._lock:
            opened = self._open.pop(run_id, None)
        if opened is None:
            return None
        started, model, agent = opened
        return {
            "model": model,
            "agent": agent,
            "latency_s": round(time.perf_counter() - started, 6),
        }

    def _emit(self, record: dict[str, Any]) -> None:
        try:
            self.sink(record)
        except Exception as exc:  # a telemetry failure must not fail the model call
            log.warning("model.record_failed", recorder=self.name, error=repr(exc))


def log_sink(record: dict[str, Any]) -> None:
    """A sink that writes each call to the ``coimprove.agents`` log (INFO; WARNING on error)."""
    if record.get("ok"):
        agents_log.info("model.called", **record)
    else:
        agents_log.warning("model.called", **record)


agents_log = get_logger("coimprove.agents")


_ACTIVE: ContextVar[ModelCallRecorder | None] = ContextVar("coimprove_model_recorder", default=None)
register_configure_hook(_ACTIVE, inheritable=True)


@contextmanager
def recording(recorder: ModelCallRecorder) -> Iterator[ModelCallRecorder]:
    """Attach `recorder` to every chat-model call made inside this block (and the tasks and
    threads it starts), without putting callbacks on the whole graph: only code that runs
    inside the block pays for them."""
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)
