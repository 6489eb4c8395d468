"""YAML loading that turns pydantic validation errors into ``file:line: field: problem``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from coimprove.errors import CoimproveError

M = TypeVar("M", bound=BaseModel)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node on the path `loc` (pydantic's error location)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_key(node: yaml.Node | None, path: tuple[str, ...] = ()) -> str | None:
    """``line: field`` of the first key repeated within one mapping (YAML lets the last one
    win without a word, so a second ``quorum:`` would silently replace the first), else None."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            if name in seen:
                field = ".".join((*path, str(name)))
                return f"{key.start_mark.line + 1}: {field}: duplicate key"
            seen.add(name)
            found = _duplicate_key(value, (*path, str(name)))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, str(i)))
            if found:
                return found
    return None


def load_yaml_model(
    model: type[M],
    source: str | Path,
    *,
    error: type[CoimproveError],
    text: str | None = None,
    context: dict[str, Any] | None = None,
) -> M:
    """Parse a YAML file (or `text` named `source`) into `model`, failing with file:line errors.

    `context` is handed to pydantic's validators (e.g. the folder relative paths start from).
    """
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise error(f"{name}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise error(
                f"{name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
            ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise error(f"{where}: invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{name}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{name}:1: expected a mapping at the top level, got {type(data).__name__}")
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        raise error(f"{name}:{duplicate}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if msg.startswith("@") and ": " in msg:
                # a model validator naming the field it is about: "@rules.1.roles: …"
                # (relative to the model that raised it, wherever that model is nested)
                hint, msg = msg[1:].split(": ", 1)
                loc = (*loc, *(int(p) if p.isdigit() else p for p in hint.split(".")))
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(node, loc)
            where = f"{name}:{line}" if line else name
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"{where}: {field}: {msg}")
        raise error("\n".join(lines)) from exc
