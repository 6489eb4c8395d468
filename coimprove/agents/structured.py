"""Structured output: a chat model's reply validated against a pydantic schema, with retries.

`generate_structured` asks for one JSON object matching the schema. Models that declare
``coimprove_json_schema`` (the local llama.cpp model, the fake) also get the schema as a
decoding constraint (``response_format``). Two bounded tenacity loops:

- transient errors (timeouts, dropped connections, rate limits, 5xx) are retried with
  exponential backoff, ``retry.transient_attempts`` times per model call;
- output that is not JSON or fails validation is sent back to the model with the validation
  error (a re-prompt), ``retry.max_attempts`` times in all.

After the bound the call fails with `AgentOutputError` naming the agent, the model and the last
invalid output — never a silent default. Every model call is timed and logged (model, tokens,
latency) by a `ModelCallRecorder`, and reaches any recorder the caller's config carries (the
runner's, which writes ``model.called`` to the ledger).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_none,
)

from coimprove.agents.errors import AgentOutputError, ModelError
from coimprove.agents.models import model_label
from coimprove.agents.telemetry import AGENT_KEY, ModelCallRecorder, log_sink

T = TypeVar("T", bound=BaseModel)

_TRANSIENT_NAMES = (
    "RateLimit",
    "Timeout",
    "APIConnection",
    "ServiceUnavailable",
    "InternalServer",
    "Overloaded",
    "TemporarilyUnavailable",
)
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

_LOG_RECORDER = ModelCallRecorder(log_sink, name="log")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the two retry loops (see the module docstring)."""

    max_attempts: int = 3
    """Model replies in all, the first included, before `AgentOutputError`."""
    transient_attempts: int = 4
    """Tries per model call on transient errors."""
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.transient_attempts < 1:
            raise ValueError("retry bounds must be at least 1")


@dataclass(frozen=True)
class Structured(Generic[T]):
    """A validated reply: the value, the raw text it came from, and how many replies it took."""

    value: T
    raw: str
    attempts: int
    model: str


class _Invalid(Exception):
    def __init__(self, raw: str, error: str) -> None:
        super().__init__(error)
        self.raw, self.error = raw, error


def is_transient(exc: BaseException) -> bool:
    """Whether a model-call error is worth retrying unchanged (timeouts, rate limits, 5xx)."""
    if isinstance(exc, ModelError):
        return False
    if isinstance(exc, (TimeoutError, ConnectionError, asyncio.TimeoutError)):
        return True
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    return any(name in type(exc).__name__ for name in _TRANSIENT_NAMES)


def schema_brief(schema: type[BaseModel]) -> str:
    """The fields of `schema` as short lines (name, type, description) for a prompt."""
    js = schema.model_json_schema()
    defs = js.get("$defs", {})
    lines = []
    for name, prop in js.get("properties", {}).items():
        lines.append(f"- {name} ({_type_of(prop, defs)}): {prop.get('description', '')}".rstrip())
    return "\n".join(lines)


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        inner = ", ".join(target.get("properties", {}))
        return f"object with {inner}"
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if "anyOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["anyOf"])
    return str(prop.get("type", "value"))


def extract_json(text: str) -> Any:
    """The JSON object in a reply: the whole text, a fenced block, or the outermost {...}."""
    candidates = [text.strip()]
    candidates += [m.strip() for m in _FENCE.findall(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)  # raw newlines inside strings
        except json.JSONDecodeError as exc:
            error = error or exc
    raise ValueError(f"not JSON ({error})" if error else "no JSON object in the reply")


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:8]:
        loc = ".".join(str(p) for p in err["loc"]) or "(object)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_output(schema: type[T], text: str) -> T:
    """Validate a reply against `schema`; raises ValueError with a re-promptable message."""
    try:
        data = extract_json(text)
    except ValueError as exc:
        raise ValueError(f"the reply is {exc}") from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"the JSON does not fit the schema: {_validation_summary(exc)}") from None


def json_instructions(schema: type[BaseModel]) -> str:
    """The output instructions appended to a prompt."""
    return "Reply with exactly one JSON object and nothing else. Its fields:\n" + schema_brief(
        schema
    )


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The llama.cpp-style ``response_format`` that constrains decoding to `schema`."""
    return {"type": "json_object", "schema": schema.model_json_schema()}


async def generate_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: list[BaseMessage],
    *,
    agent: str,
    retry: RetryPolicy | None = None,
    native: bool | None = None,
    config: RunnableConfig | None = None,
) -> Structured[T]:
    """Ask `model` for a `schema` instance; re-prompt with the validation error when invalid.

    `agent` names the caller in logs, ledger records and errors. `native` forces (True) or
    disables (False) schema-constrained decoding; by default models that declare support get it.
    """
    policy = retry or RetryPolicy()
    label = model_label(model)
    use_native = getattr(model, "coimprove_json_schema", False) if native is None else native
    runnable: Any = model.bind(response_format=response_format(schema)) if use_native else model
    cfg = merge_configs(
        ensure_config(config),
        {"callbacks": [_LOG_RECORDER], "metadata": {AGENT_KEY: agent}},
    )
    history = list(messages)
    attempts = 0
    last = _Invalid("", "no reply")

    async def call_once() -> str:
        wait = (
            wait_exponential(
                multiplier=policy.backoff_initial_s,
                min=policy.backoff_initial_s,
                max=policy.backoff_max_s,
            )
            if policy.backoff_initial_s > 0
            else wait_none()
        )
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(policy.transient_attempts),
                wait=wait,
                retry=retry_if_exception(is_transient),
                reraise=True,
            ):
                with attempt:
                    reply = await runnable.ainvoke(history, cfg)
        except Exception as exc:
            if is_transient(exc):
                raise ModelError(
                    f"agent {agent!r}: model {label!r} kept failing after "
                    f"{policy.transient_attempts} tries: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        content = reply.content if isinstance(reply, AIMessage) else reply
        return content if isinstance(content, str) else json.dumps(content)

    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts),
            retry=retry_if_exception_type(_Invalid),
            wait=wait_none(),
        ):
            with attempt:
                attempts += 1
                raw = await call_once()
                try:
                    value = parse_output(schema, raw)
                except ValueError as exc:
                    last = _Invalid(raw, str(exc))
                    history += [
                        AIMessage(content=raw),
                        HumanMessage(
                            content=f"That reply was invalid: {exc}. Reply again with only "
                            f"the corrected JSON object.\n{json_instructions(schema)}"
                        ),
                    ]
                    raise last from None
                return Structured(value=value, raw=raw, attempts=attempts, model=label)
    except RetryError:
        pass
    raise AgentOutputError(
        agent=agent, model=label, attempts=attempts, last_output=last.raw, last_error=last.error
    )
