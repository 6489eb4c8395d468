"""Embeddings and the vector tools: WordLlama from its wheel with no network, the hashing
embedder, near-duplicates and k-means."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest

from coimprove.embeddings import (
    EmbeddingError,
    HashingEmbedder,
    WordLlamaEmbedder,
    kmeans,
    near_duplicates,
    resolve_embedder,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat.",
    "Stock markets fell sharply after the announcement.",
    "Shares dropped steeply following the news.",
]


def test_wordllama_loads_from_its_wheel_with_the_network_cut(monkeypatch: Any) -> None:
    from coimprove import embeddings

    embeddings._load_wordllama.cache_clear()

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    vectors = WordLlamaEmbedder().embed(SENTENCES)
    assert vectors.shape == (4, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 3]  # meaning, not just words


def test_resolve_embedder_specs() -> None:
    assert resolve_embedder(None).name == "wordllama:l2_supercat_256"
    assert resolve_embedder("wordllama:64").embed(["x"]).shape == (1, 64)
    assert resolve_embedder("hashing:32").embed(["a b"]).shape == (1, 32)
    custom = HashingEmbedder(16)
    assert resolve_embedder(custom) is custom
    with pytest.raises(EmbeddingError, match="unknown embedder"):
        resolve_embedder("word2vec")
    with pytest.raises(EmbeddingError, match="not a dimension"):
        resolve_embedder("hashing:big")


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    emb = HashingEmbedder(256)
    first, again = emb.embed(SENTENCES), emb.embed(SENTENCES)
    assert np.array_equal(first, again)
    assert float(first[0] @ first[1]) > float(first[0] @ first[2])
    assert not emb.embed([""]).any()  # an empty text is a zero row, not NaN


def test_near_duplicates_find_the_closest_earlier_or_reference_row() -> None:
    emb = resolve_embedder("wordllama")
    batch = emb.embed([SENTENCES[0], SENTENCES[2], "The cat sat on the mat!", SENTENCES[3]])
    reference = emb.embed(["The cat sat on a mat."])
    found = {d.index: d for d in near_duplicates(batch, 0.9, reference=reference)}
    assert 0 in found and found[0].reference and found[0].of == 0  # paraphrase of the reference
    assert 2 in found and found[2].similarity > 0.95  # "!" for "." (row 0, or the reference)
    assert 1 not in found and 3 not in found
    with pytest.raises(EmbeddingError):
        near_duplicates(batch, 1.5)


def test_kmeans_recovers_separated_groups_deterministically() -> None:
    rng = np.random.default_rng(1)
    centres = np.eye(3, 8, dtype=np.float32) * 5
    points = np.concatenate([c + rng.normal(0, 0.1, (20, 8)) for c in centres]).astype(np.float32)
    result = kmeans(points, 3, seed=7)
    groups = [set(result.labels[i * 20 : (i + 1) * 20].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3
    again = kmeans(points, 3, seed=7)
    assert np.array_equal(result.labels, again.labels) and result.inertia == again.inertia
    assert sorted(len(result.members(c)) for c in range(3)) == [20, 20, 20]


def test_kmeans_caps_k_at_the_distinct_rows_and_rejects_bad_input() -> None:
    points = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert kmeans(points, 5).k == 2
    with pytest.raises(EmbeddingError):
        kmeans(np.zeros((0, 2), dtype=np.float32), 2)
    with pytest.raises(EmbeddingError):
        kmeans(points, 0)
