"""A deterministic chat model for tests (re-exported by `coimprove.testing`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field, PrivateAttr


def _default_responses() -> list[str | BaseException]:
    return ["ok"]


def _count_tokens(text: str) -> int:
    """A stand-in token count (whitespace-separated words), deterministic."""
    return len(text.split())


class _RecordingChatModel(BaseChatModel):
    """What both fakes share: a `model_name` and every call's messages, kept in `calls`."""

    model_name: str = "fake"
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The messages of every call so far."""
        return self._calls


class FakeChatModel(_RecordingChatModel):
    """A chat model that answers from a script: deterministic, offline, and inspectable.

    `responses` are returned in order (cycling); or give `respond`, a function from the
    messages to the reply text. Every call is kept in `calls` and its keyword arguments
    (e.g. the ``response_format`` a structured-output caller bound) in `call_kwargs`. A
    response that is an exception instance is raised instead of returned (to script
    transient failures). Replies carry word-count `usage_metadata`, so telemetry has tokens.
    """

    coimprove_json_schema: ClassVar[bool] = True
    """Accepts ``response_format={"type": "json_object", "schema": ...}`` (and records it)."""

    responses: list[str | BaseException] = Field(default_factory=lambda: _default_responses())
    respond: Callable[[list[BaseMessage]], str] | None = None
    _kwargs: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "coimprove-fake"

    @property
    def call_kwargs(self) -> list[dict[str, Any]]:
        """The keyword arguments of every call so far (``stop`` included)."""
        return self._kwargs

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls.append(list(messages))
        self._kwargs.append({"stop": stop, **kwargs})
        if self.respond is not None:
            reply: str | BaseException = self.respond(list(messages))
        else:
            if not self.responses:
                raise ValueError("FakeChatModel has no responses")
            reply = self.responses[(len(self._calls) - 1) % len(self.responses)]
        if isinstance(reply, BaseException):
            raise reply
        prompt_tokens = sum(_count_tokens(str(m.content)) for m in messages)
        out_tokens = _count_tokens(reply)
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=out_tokens,
            total_tokens=prompt_tokens + out_tokens,
        )
        message = AIMessage(content=reply, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _done() -> list[ScriptedTurn]:
    return ["done"]


ScriptedTurn = Annotated[str | list[dict[str, Any]] | AIMessage, Field(union_mode="left_to_right")]
"""One turn of a `FakeToolCallingModel`: plain text, tool calls (``{"name", "args"}`` dicts,
``"id"`` optional) or a whole `AIMessage`."""


class FakeToolCallingModel(_RecordingChatModel):
    """A deterministic chat model for tool-calling agents (LangChain's `create_agent`).

    It answers turn *n* of a conversation (*n* = the AI messages already in it) with
    ``script[n]`` (the last entry once the script is used up), or with ``respond(messages)``
    when given. A turn is text, a list of tool calls (``{"name": ..., "args": {...}}``) or an
    `AIMessage`. Because the
    reply depends on the conversation only, every run of an agent gets the same script,
    whichever process or call order it runs in. Tool calls without an id get
    ``call_<turn>_<index>``. `bind_tools` keeps the tools' names (`bound_tools`) and returns
    the model itself; every call's messages are kept in `calls`.
    """

    script: list[ScriptedTurn] = Field(default_factory=lambda: _done())
    respond: Callable[[list[BaseMessage]], ScriptedTurn] | None = None
    model_name: str = "fake-tools"
    _tools: list[str] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "coimprove-fake-tools"

    @property
    def bound_tools(self) -> list[str]:
        """Names of the tools last bound with `bind_tools`."""
        return self._tools

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeToolCallingModel:
        self._tools = [str(getattr(t, "name", None) or getattr(t, "__name__", t)) for t in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls.append(list(messages))
        turn = sum(isinstance(m, AIMessage) for m in messages)
        if self.respond is not None:
            reply = self.respond(list(messages))
        elif not self.script:
            raise ValueError("FakeToolCallingModel has an empty script")
        else:
            reply = self.script[min(turn, len(self.script) - 1)]
        if isinstance(reply, str):
            message = AIMessage(content=reply)
        else:
            content = reply.content if isinstance(reply, AIMessage) else ""
            made = reply.tool_calls if isinstance(reply, AIMessage) else reply
            calls = [
                {
                    "name": call["name"],
                    "args": dict(call.get("args") or {}),
                    "id": call.get("id") or f"call_{turn}_{i}",
                    "type": "tool_call",
                }
                for i, call in enumerate(made)
            ]
            message = AIMessage(content=content, tool_calls=calls)
        words = _count_tokens(str(message.content))
        prompt = sum(_count_tokens(str(m.content)) for m in messages)
        message.usage_metadata = UsageMetadata(
            input_tokens=prompt, output_tokens=words, total_tokens=prompt + words
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
