"""Text embedders for memory retrieval: a Protocol, WordLlama (weights in its wheel), none.

The `Embedder` protocol has the same shape as the shared embeddings module's, so either can
stand in for the other: ``name`` and ``embed(texts)`` returning L2-normalised float32 rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from coimprove.errors import CoimproveError

Vectors = npt.NDArray[np.float32]


class EmbedderError(CoimproveError):
    """An embedder could not be loaded."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors (one row per text)."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def normalise(matrix: Any) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    out = np.asarray(matrix, dtype=np.float32)
    if out.ndim != 2:
        raise EmbedderError(f"embeddings must be a 2-d array, got shape {out.shape}")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    return result


class WordLlamaEmbedder:
    """WordLlama's 256-d embeddings, loaded offline from the files its PyPI wheel ships."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    @property
    def name(self) -> str:
        return f"wordllama:{self.dim}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise(_wordllama(self.dim).embed(items, norm=True))


@lru_cache(maxsize=2)
def _wordllama(dim: int) -> Any:
    try:
        module = importlib.import_module("wordllama")
    except ImportError as exc:
        raise EmbedderError("embedding memory needs wordllama (pip install wordllama)") from exc
    folder = Path(str(module.__file__)).parent
    try:
        # WordLlama.load() alone looks for its tokenizer in a misspelled folder and then tries
        # to download it; the package folder as cache with downloads disabled works offline.
        return module.WordLlama.load(cache_dir=folder, disable_download=True, dim=dim)
    except Exception as exc:
        raise EmbedderError(
            f"cannot load WordLlama (dim {dim}) from {folder} without a download: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def resolve_embedder(spec: str | Embedder) -> Embedder:
    """``wordllama`` (or ``wordllama:DIM``), or any object with the `Embedder` protocol."""
    if not isinstance(spec, str):
        return spec
    name, _, dim = spec.partition(":")
    if name == "wordllama":
        return WordLlamaEmbedder(int(dim) if dim else 256)
    raise EmbedderError(f"unknown embedder {spec!r} (use 'wordllama' or an Embedder object)")
