"""`MergedDict`: the LangGraph channel behind `GatedState`'s keyed maps.

Every coimprove step reads and checkpoints these channels, so they are lean: LangGraph's
generic `BinaryOperatorAggregate` re-derives its value type and builds an empty default each
time it is copied or restored from a checkpoint; this channel only copies a reference. The
values it stores are plain dicts, exactly what the reducer channel stored, so checkpoints
written with either restore with the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from langgraph.channels.base import BaseChannel
from langgraph.errors import InvalidUpdateError
from langgraph.types import Overwrite

_OVERWRITE = "__overwrite__"  # LangGraph's dict form of `Overwrite` (JSON-safe)


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: later writes win per key; a value of ``None`` deletes the key."""
    out = dict(left or {})
    for key, value in (right or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _overwritten(update: Any) -> tuple[bool, Any]:
    """Whether `update` replaces the value instead of merging into it (LangGraph's `Overwrite`,
    in any of the forms a reducer channel accepts), and with what."""
    if isinstance(update, Overwrite):
        return True, update.value
    if isinstance(update, dict) and len(update) == 1 and _OVERWRITE in update:
        return True, update[_OVERWRITE]
    if isinstance(update, dict) and update.get("type") == _OVERWRITE and "value" in update:
        return True, update["value"]
    return False, None


class MergedDict(BaseChannel[dict[str, Any], dict[str, Any], dict[str, Any]]):
    """A dict channel that merges each update into its value with `merge` (always available:
    it starts empty). Use as ``Annotated[dict[str, Any], MergedDict()]``."""

    __slots__ = ("value",)

    def __init__(self, typ: Any = dict, key: str = "") -> None:
        super().__init__(typ, key)
        self.value: dict[str, Any] = {}

    @property
    def ValueType(self) -> Any:
        return self.typ

    @property
    def UpdateType(self) -> Any:
        return self.typ

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MergedDict)

    def __hash__(self) -> int:
        return hash(MergedDict)

    def _like(self, value: dict[str, Any]) -> Self:
        new = object.__new__(type(self))
        new.typ, new.key, new.value = self.typ, self.key, value
        return new

    def copy(self) -> Self:
        return self._like(self.value)  # values are replaced on update, never changed in place

    def from_checkpoint(self, checkpoint: Any) -> Self:
        return self._like(checkpoint if isinstance(checkpoint, dict) else {})

    def get(self) -> dict[str, Any]:
        return self.value

    def is_available(self) -> bool:
        return True

    def checkpoint(self) -> dict[str, Any]:
        return self.value

    def update(self, values: Sequence[dict[str, Any]]) -> bool:
        if not values:
            return False
        out: dict[str, Any] | None = None
        replaced = False
        for update in values:
            overwrite, value = _overwritten(update)
            if overwrite:
                if replaced:
                    raise InvalidUpdateError(
                        f"channel {self.key!r} can receive only one Overwrite value per step"
                    )
                out, replaced = dict(value or {}), True
            elif not replaced:
                out = merge(self.value if out is None else out, update)
        if out is not None:
            self.value = out
        return True
