"""The embedded models (`coimprove.agents.embedded`: SmolLM2-135M-Instruct by default, Gemma 3
270M) run in-process with ``llama-cpp-python``. No network, no API key, no download at run time.

The weights are loaded once per process (per file and context size) and shared by every
`LocalChatModel`; generation is serialised with a lock because a llama.cpp context is not
thread-safe. ``response_format={"type": "json_object", "schema": ...}`` constrains decoding
with a grammar compiled from the JSON schema, so even this tiny model emits parseable JSON.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import field_validator

from coimprove._log import get_logger
from coimprove.agents.embedded import (
    DEFAULT_EMBEDDED,
    EMBEDDED,
    LOCAL_EXTRA_HINT,
    SMOLLM2_FILE,
    SMOLLM2_PACKAGE,
    PromptFormat,
    embedded_model,
    known_embedded,
    smollm2_path,
)
from coimprove.agents.errors import MissingExtraError, ModelError
from coimprove.agents.state_cache import PrefixStates

log = get_logger("coimprove.agents.local")

__all__ = [
    "LOCAL_EXTRA_HINT",
    "SMOLLM2_FILE",
    "SMOLLM2_PACKAGE",
    "LocalChatModel",
    "grammar_safe_schema",
    "prefix_states",
    "shared_llama",
    "smollm2_path",
]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}

_lock = threading.Lock()
_loaded: dict[tuple[str, int, str], Any] = {}
load_seconds: dict[tuple[str, int, str], float] = {}
"""How long each shared model took to load, by (path, n_ctx, prompt format)."""


def _llama_cpp(extra_hint: str) -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise MissingExtraError(
            f"the local models need llama-cpp-python, which is not installed ({exc}): {extra_hint}"
        ) from exc


def gemma_turns(messages: list[dict[str, Any]]) -> str:
    """Chat messages as Gemma's turns: ``<start_of_turn>user\n…<end_of_turn>\n`` per message
    (``model`` for the assistant), the system text opening the first user turn (Gemma has no
    system role), ending with an open model turn. The tokenizer adds ``<bos>``."""
    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    turns: list[str] = []
    for m in messages:
        if m["role"] == "system":
            continue
        role = "model" if m["role"] == "assistant" else "user"
        text = str(m["content"])
        if system and role == "user":
            text, system = f"{system}\n\n{text}", ""
        turns.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    if system:  # system text and no user turn
        turns.insert(0, f"<start_of_turn>user\n{system}<end_of_turn>\n")
    return "".join(turns) + "<start_of_turn>model\n"


def plain_transcript(messages: list[dict[str, Any]]) -> str:
    """Chat messages as a plain document for a pretrained (not instruction-tuned) model: the
    system text as a preamble, then ``Question: …`` / ``Answer: …`` lines, ending with an open
    ``Answer:``. No special tokens: a pretrained model has not learnt any turn markers."""
    blocks: list[str] = []
    for m in messages:
        text = str(m["content"]).strip()
        if m["role"] == "system":
            blocks.append(f"{text}\n\n")
        elif m["role"] == "assistant":
            blocks.append(f"Answer: {text}\n\n")
        else:
            blocks.append(f"Question: {text}\n")
    return "".join(blocks) + "Answer:"


_FORMATTERS: dict[str, tuple[Callable[[list[dict[str, Any]]], str], str]] = {
    "gemma-turns": (gemma_turns, "<end_of_turn>"),
    "plain": (plain_transcript, "\nQuestion:"),
}
"""Each non-``gguf`` prompt format: how messages become the prompt, and its stop text."""


def _chat_handler(llama_cpp: Any, prompt_format: PromptFormat) -> Any:
    """llama-cpp-python's handler for `prompt_format` (None for ``gguf``: the GGUF's own chat
    template). Built on its generic chat-completion handler, so ``response_format`` with a
    JSON schema constrains decoding exactly as with the GGUF's template."""
    if prompt_format == "gguf":
        return None
    formats = llama_cpp.llama_chat_format
    render, stop = _FORMATTERS[prompt_format]

    def formatter(messages: list[dict[str, Any]], **_: Any) -> Any:
        return formats.ChatFormatterResponse(prompt=render(messages), stop=stop)

    return formats.chat_formatter_to_chat_completion_handler(formatter)


def generation_threads() -> int:
    """Threads llama.cpp generates with: every core this process may run on. (llama.cpp's
    own default is half the cores, which on a 2-core machine generates 1.7x slower: 120 tokens
    of SmolLM2-135M took 3.4 s on one thread and 2.0 s on two.)"""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def shared_llama(
    path: Path,
    n_ctx: int,
    prompt_format: PromptFormat = "gguf",
    *,
    extra_hint: str = LOCAL_EXTRA_HINT,
) -> Any:
    """The process-wide llama.cpp model for (path, n_ctx, prompt format), loaded on first use.
    `extra_hint` is what a missing llama-cpp-python tells the user to install."""
    key = (str(path), n_ctx, prompt_format)
    with _lock:
        llm = _loaded.get(key)
        if llm is None:
            llama_cpp = _llama_cpp(extra_hint)
            started = time.perf_counter()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_threads=generation_threads(),
                    seed=0,
                    verbose=False,
                    chat_handler=_chat_handler(llama_cpp, prompt_format),
                )
            except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
                raise ModelError(f"cannot load the local model {path}: {exc}") from exc
            # agents take turns on this model: keep their evaluated prompts, not only the last
            llm.set_cache(PrefixStates())
            load_seconds[key] = time.perf_counter() - started
            log.info("model.loaded", path=str(path), seconds=round(load_seconds[key], 3))
            _loaded[key] = llm
        return llm


def prefix_states(llm: Any) -> PrefixStates | None:
    """The prompt-state cache of a model `shared_llama` loaded (None for another model)."""
    cache = getattr(llm, "cache", None)
    return cache if isinstance(cache, PrefixStates) else None


GRAMMAR_MAX_REPEAT = 1000
"""llama.cpp refuses a grammar whose bounded repetitions exceed its limit (a string
``maxLength`` of about 1,000+), and a refused grammar crashes the process at sampling time."""


def grammar_safe_schema(schema: Any, *, max_string: int = 600, max_items: int = 4) -> Any:
    """`schema` as a decoding constraint a small model can finish within its token budget.

    Every free-text string gets ``maxLength <= max_string`` and every array ``maxItems <=
    max_items`` (never above what llama.cpp accepts). Tighter than the schema, so whatever the
    grammar lets through still validates against the schema itself; without a bound, a tiny
    model that starts repeating itself runs into ``max_tokens`` mid-string.
    """
    max_string = min(max_string, GRAMMAR_MAX_REPEAT)
    max_items = min(max_items, GRAMMAR_MAX_REPEAT)

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: visit(v) for k, v in node.items()}
        kind = out.get("type")
        if kind == "string" and "pattern" not in out and "enum" not in out and "format" not in out:
            out["maxLength"] = min(int(out.get("maxLength", max_string)), max_string)
            if int(out.get("minLength", 0)) > out["maxLength"]:
                out["minLength"] = out["maxLength"]
        elif kind == "array":
            out["maxItems"] = min(int(out.get("maxItems", max_items)), max_items)
            if int(out.get("minItems", 0)) > out["maxItems"]:
                out["minItems"] = out["maxItems"]
        return out

    return visit(schema)


class LocalChatModel(BaseChatModel):
    """A langchain-core chat model over an in-process llama.cpp GGUF (SmolLM2 by default)."""

    coimprove_json_schema: ClassVar[bool] = True

    embedded: str = DEFAULT_EMBEDDED
    """Which embedded model (`coimprove.agents.embedded.EMBEDDED`) to run when `model_path` is
    empty."""
    model_path: str = ""
    """Path to a GGUF file; empty means the `embedded` model's file."""
    prompt_format: PromptFormat | None = None
    """How messages become the prompt; None: the embedded model's format (``gguf`` for a
    `model_path`: the chat template in the file)."""
    n_ctx: int = 4096
    max_tokens: int = 1024
    temperature: float = 0.2
    repeat_penalty: float = 1.0
    seed: int = 0
    grammar_max_string: int = 600
    """Longest free-text string the decoding grammar allows (see `grammar_safe_schema`)."""
    grammar_max_items: int = 4
    """Longest array the decoding grammar allows."""

    @field_validator("embedded")
    @classmethod
    def _known_embedded(cls, name: str) -> str:
        if name not in EMBEDDED:
            raise ValueError(
                f"unknown local model {name!r}: the embedded models are {known_embedded()}"
            )
        return name

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def model_name(self) -> str:
        return f"local:{self.path.stem}"

    @property
    def path(self) -> Path:
        """The GGUF file (an embedded one is found, or assembled, on first use)."""
        return Path(self.model_path) if self.model_path else embedded_model(self.embedded).find()

    @property
    def effective_prompt_format(self) -> PromptFormat:
        if self.prompt_format is not None:
            return self.prompt_format
        return "gguf" if self.model_path else embedded_model(self.embedded).prompt_format

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "n_ctx": self.n_ctx}

    def load(self) -> Any:
        """Load (or reuse) the shared llama.cpp model."""
        hint = LOCAL_EXTRA_HINT if self.model_path else embedded_model(self.embedded).install_hint
        return shared_llama(self.path, self.n_ctx, self.effective_prompt_format, extra_hint=hint)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llm = self.load()
        chat = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]
        params: dict[str, Any] = {
            "max_tokens": kwargs.pop("max_tokens", self.max_tokens),
            "temperature": kwargs.pop("temperature", self.temperature),
            "seed": kwargs.pop("seed", self.seed),
            "repeat_penalty": kwargs.pop("repeat_penalty", self.repeat_penalty),
            "stop": stop,
        }
        response_format = kwargs.pop("response_format", None)
        if response_format is not None:
            if isinstance(response_format, dict) and "schema" in response_format:
                response_format = {
                    **response_format,
                    "schema": grammar_safe_schema(
                        response_format["schema"],
                        max_string=self.grammar_max_string,
                        max_items=self.grammar_max_items,
                    ),
                }
            params["response_format"] = response_format
        with _lock:
            out = llm.create_chat_completion(messages=chat, **params)
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        usage = out.get("usage") or {}
        usage_md = UsageMetadata(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        )
        message = AIMessage(
            content=text,
            usage_metadata=usage_md,
            response_metadata={"finish_reason": choice.get("finish_reason")},
        )
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"model_name": self.model_name, "token_usage": usage},
        )
