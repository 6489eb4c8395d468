"""`PrefixStates`: the saved prompt states llama.cpp resumes from (unit level, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from coimprove.agents.state_cache import PrefixStates


class State:
    """The fields of llama-cpp-python's ``LlamaState`` the cache reads."""

    def __init__(self, n_tokens: int, state_bytes: int = 1000, vocab: int = 8) -> None:
        self.n_tokens = n_tokens
        self.input_ids = np.zeros(16, dtype=np.intc)
        self.scores = np.ones((min(n_tokens, 4), vocab), dtype=np.single)
        self.llama_state = b"\0" * state_bytes
        self.llama_state_size = state_bytes


def tokens(*spans: tuple[int, int]) -> list[int]:
    return [t for start, n in spans for t in range(start, start + n)]


def test_the_state_sharing_the_longest_prefix_is_found_and_counted() -> None:
    cache = PrefixStates(min_prefix=4)
    system_a, system_b = tokens((0, 40)), tokens((1000, 40))
    cache[system_a + tokens((100, 20))] = a1 = State(60)
    cache[system_b + tokens((200, 20))] = State(60)
    cache[system_a + tokens((100, 10), (300, 5))] = a2 = State(55)
    assert cache[system_a + tokens((100, 20), (400, 9))] is a1  # 60 shared tokens
    assert cache[system_a + tokens((100, 10), (300, 3))] is a2  # 53 shared, a1 only 50
    assert cache.stats.hits == 2 and cache.stats.reused_tokens == 60 + 53
    with pytest.raises(KeyError):
        cache[tokens((5000, 50))]
    assert cache.stats.misses == 1 and bool(cache)  # an empty-looking cache is still on


def test_a_prefix_shorter_than_the_minimum_is_a_miss() -> None:
    cache = PrefixStates(min_prefix=32)
    cache[tokens((0, 40))] = State(40)
    with pytest.raises(KeyError):  # only the chat template's opening is shared
        cache[tokens((0, 31), (900, 100))]
    assert tokens((0, 32), (900, 1)) in cache
    cache[tokens((0, 10))] = State(10)  # too short to be worth keeping
    assert len(cache) == 1


def test_entries_keep_one_row_of_logits_and_the_capacity_counts_every_byte() -> None:
    one = State(60, state_bytes=1000, vocab=8)
    size = 1000 + 8 * 4 + 16 * 4  # state, one row of logits, the token ids
    cache = PrefixStates(capacity_bytes=2 * size, min_prefix=1)
    cache[tokens((0, 60))] = one
    assert one.scores.shape == (1, 8) and cache.size_bytes == size
    cache[tokens((100, 60))] = State(60)
    cache[tokens((0, 61))]  # the first is used: the second is now the least recent
    cache[tokens((200, 60))] = State(60)
    assert cache.size_bytes == 2 * size and len(cache) == 2
    assert tokens((100, 60)) not in cache and tokens((0, 60)) in cache
    cache[tokens((200, 60))] = State(60)  # saved again: replaced, not counted twice
    assert cache.size_bytes == 2 * size
    cache.clear()
    assert len(cache) == 0 and cache.size_bytes == 0


def test_a_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity_bytes must be positive, not 0"):
        PrefixStates(0)
