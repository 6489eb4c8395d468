"""Evaluated prompt prefixes kept across calls of the in-process llama.cpp model.

llama.cpp reuses the key/value cache only for the prefix a prompt shares with the *previous*
call. The agents of a workflow take turns on one shared model (the method agent, then the
design agent, then the method agent's revision, ...), so each call started from scratch,
although it shares its system prompt and context with a call made a few turns earlier. On a
2-vCPU machine prompt evaluation of SmolLM2-135M runs at about 130 tokens/s, which made it
most of a demo's model time.

`PrefixStates` is llama-cpp-python's cache protocol (``Llama.set_cache``): after every
completion llama-cpp-python saves the context's state under its tokens; before the next one
it asks for the saved state sharing the longest prefix with the new prompt and loads it when
that prefix is longer than what the context holds, so only the rest is evaluated. Restoring a
state gives the same keys and values the prompt would have computed.

Unlike llama-cpp-python's ``LlamaRAMCache``, entries are slim (the saved logits, which a
restored state re-computes anyway, are cut to one row instead of ``n_batch`` x vocabulary
floats, 100 MB for SmolLM2), the capacity counts every byte kept, and a prefix shorter than
`min_prefix` tokens (the chat template's opening, shared by every prompt) is a miss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_CAPACITY_BYTES", "CacheStats", "PrefixStates"]

DEFAULT_CAPACITY_BYTES = 512 << 20
"""SmolLM2-135M keeps about 23 KB per evaluated token: some 30 prompts of 700 tokens."""


@dataclass
class CacheStats:
    """What a `PrefixStates` did: lookups that found a prefix, those that did not, and the
    prompt tokens the found prefixes covered (tokens not evaluated again, at most)."""

    hits: int = 0
    misses: int = 0
    reused_tokens: int = 0


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _size(state: Any) -> int:
    return int(state.llama_state_size) + int(state.scores.nbytes) + int(state.input_ids.nbytes)


class PrefixStates:
    """Saved llama.cpp context states by token sequence; the least recently used go first once
    `capacity_bytes` is passed. Not thread-safe: the caller holds the model's lock."""

    def __init__(
        self, capacity_bytes: int = DEFAULT_CAPACITY_BYTES, *, min_prefix: int = 32
    ) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, not {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.min_prefix = min_prefix
        self.stats = CacheStats()
        self._states: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._bytes = 0

    def __bool__(self) -> bool:  # llama-cpp-python tests `if self.cache:`
        return True

    def __len__(self) -> int:
        return len(self._states)

    @property
    def size_bytes(self) -> int:
        """Bytes held by the saved states."""
        return self._bytes

    def longest(self, tokens: Sequence[int]) -> tuple[tuple[int, ...], int] | None:
        """The saved key sharing the longest prefix with `tokens`, and that prefix's length."""
        best: tuple[tuple[int, ...], int] | None = None
        for key in self._states:
            n = _common_prefix(key, tokens)
            if n >= self.min_prefix and (best is None or n > best[1]):
                best = (key, n)
        return best

    def __getitem__(self, tokens: Sequence[int]) -> Any:
        found = self.longest(tokens)
        if found is None:
            self.stats.misses += 1
            raise KeyError("no saved state shares a long enough prefix")
        key, n = found
        self.stats.hits += 1
        self.stats.reused_tokens += n
        self._states.move_to_end(key)
        return self._states[key]

    def __contains__(self, tokens: Sequence[int]) -> bool:
        return self.longest(tokens) is not None

    def __setitem__(self, tokens: Sequence[int], state: Any) -> None:
        key = tuple(tokens)
        if len(key) < self.min_prefix:
            return
        # a loaded state is evaluated again from its last token, so one row of logits is enough
        state.scores = state.scores[-1:].copy()
        old = self._states.pop(key, None)
        if old is not None:
            self._bytes -= _size(old)
        self._states[key] = state
        self._bytes += _size(state)
        while self._bytes > self.capacity_bytes and len(self._states) > 1:
            _, dropped = self._states.popitem(last=False)
            self._bytes -= _size(dropped)

    def clear(self) -> None:
        """Forget every saved state."""
        self._states.clear()
        self._bytes = 0
