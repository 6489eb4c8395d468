"""YAML loading that turns pydantic validation errors into ``file:line: field: problem``.

Every YAML file the project reads goes through :func:`load_yaml_data` (or
:func:`load_yaml_model` on top of it), which bounds what a hostile file can make the loader do
and keeps the data to JSON's types:

- size: at most :data:`MAX_BYTES` of text;
- depth: at most :data:`MAX_DEPTH` nested collections (PyYAML's composer recurses per level);
- aliases: at most :data:`MAX_ALIASES` uses of ``*anchor``, no alias to a collection that is
  still being read (a self-reference), and at most :data:`MAX_NODES` nodes once every alias is
  expanded (a billion-laughs file is refused before anything walks the expanded tree);
- tags: only JSON's types (null, bool, int, float, str, sequence, mapping, and ``<<`` merge
  keys). ``!!binary`` (bytes), ``!!timestamp`` (dates), ``!!set``, ``!!omap``, ``!!pairs`` and any
  local ``!tag`` are refused; a bare date like ``2024-01-01`` stays a string; an integer of more
  than :data:`MAX_INT_DIGITS` digits is refused (Python refuses to convert it anyway).

Each refusal names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from coimprove.errors import CoimproveError

M = TypeVar("M", bound=BaseModel)

MAX_BYTES = 1 << 20
"""Longest YAML text accepted (characters)."""
MAX_DEPTH = 64
"""Deepest nesting of sequences and mappings accepted."""
MAX_ALIASES = 1000
"""Most ``*alias`` uses accepted in one file."""
MAX_NODES = 200_000
"""Most nodes accepted once every alias is expanded."""
MAX_INT_DIGITS = 1000
"""Longest integer literal accepted."""

MAX_ERRORS_SHOWN = 20
"""Most validation problems listed in one error."""

_TAG = "tag:yaml.org,2002:"
_JSON_TAGS = frozenset(
    _TAG + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "merge")
)


class _Refused(yaml.MarkedYAMLError):
    """A bound or a type the hardened loader does not accept (carries the node's mark)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with bounded depth and aliases, JSON's types only, dates kept as strings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._open_anchors: set[str] = set()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases", event.start_mark)
            if event.anchor in self._open_anchors:
                raise _Refused(
                    f"alias *{event.anchor} refers to a collection that contains it",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        if not isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise _Refused(
                f"an integer of more than {MAX_INT_DIGITS} digits",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor(_TAG + "int", _BoundedLoader.construct_yaml_int)
# dates stay strings: JSON has no date type, and a model field typed str must not get one
_BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _check_tree(root: yaml.Node) -> None:
    """Refuse non-JSON tags and trees that expand to more than MAX_NODES nodes."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order, each distinct node once (aliases share nodes)
        node, children_done = stack.pop()
        if id(node) in sizes and not children_done:
            continue
        if not children_done:
            if node.tag not in _JSON_TAGS:
                tag = node.tag.replace(_TAG, "!!") if node.tag.startswith(_TAG) else node.tag
                raise _Refused(
                    f"tag {tag} is not allowed (only JSON's types: null, bool, "
                    "numbers, strings, lists, mappings)",
                    node.start_mark,
                )
            stack.append((node, True))
            for child in _children(node):
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        total = 1 + sum(sizes[id(c)] for c in _children(node))
        if total > MAX_NODES:
            raise _Refused(
                f"expands to more than {MAX_NODES} values (aliases repeat what they name)",
                node.start_mark,
            )
        sizes[id(node)] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml_data(
    source: str | Path, *, error: type[CoimproveError], text: str | None = None
) -> tuple[Any, yaml.Node | None]:
    """The data in a YAML file (or `text` named `source`) and its node tree, within the bounds
    above; any problem is raised as `error` naming the file and line."""
    name = str(source)
    if text is None:
        try:
            with Path(source).open(encoding="utf-8") as fh:
                text = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise error(f"{name}: cannot read: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise error(
                f"{name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
            ) from None
    if len(text) > MAX_BYTES:
        raise error(f"{name}: larger than {MAX_BYTES} characters; refused")
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # its reader refuses unprintable characters already
        node = loader.get_single_node()
        if node is not None:
            _check_tree(node)
            data: Any = loader.construct_document(node)
        else:
            data = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        kind = "refused YAML" if isinstance(exc, _Refused) else "invalid YAML"
        raise error(f"{where}: {kind}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{name}: invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_duplicate_keys(node, name, error)
    return data, node


def _check_duplicate_keys(node: yaml.Node | None, name: str, error: type[CoimproveError]) -> None:
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        raise error(f"{name}:{duplicate}")


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


def _duplicate_key(node: yaml.Node | None) -> str | None:
    """``line: field`` of the first key repeated within one mapping (YAML lets the last one
    win without a word, so a second ``quorum:`` would silently replace the first), else None.
    Each distinct node is checked once (an alias names one already checked)."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(node, ())] if node is not None else []
    while stack:
        current, path = stack.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        children: list[tuple[yaml.Node, tuple[str, ...]]] = []
        if isinstance(current, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
                if name in seen:
                    field = ".".join((*path, str(name)))
                    return f"{key.start_mark.line + 1}: {field}: duplicate key"
                seen.add(name)
                children.append((value, (*path, str(name))))
        elif isinstance(current, yaml.SequenceNode):
            children = [(item, (*path, str(i))) for i, item in enumerate(current.value)]
        stack.extend(reversed(children))
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
    data, node = load_yaml_data(source, error=error, text=text)
    return validate_yaml_data(model, data, node, source, error=error, context=context)


def validate_yaml_data(
    model: type[M],
    data: Any,
    node: yaml.Node | None,
    source: str | Path,
    *,
    error: type[CoimproveError],
    context: dict[str, Any] | None = None,
) -> M:
    """`data` read by `load_yaml_data` from `source` (with its node tree) as `model`: a
    validation problem is raised as `error` naming the file, the line and the field."""
    name = str(source)
    if not isinstance(data, dict):
        raise error(f"{name}:1: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        for err in errors[:MAX_ERRORS_SHOWN]:
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
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"{name}: … and {len(errors) - MAX_ERRORS_SHOWN} more problem(s)")
        raise error("\n".join(lines)) from exc
