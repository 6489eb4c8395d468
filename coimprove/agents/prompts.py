"""Prompt files shipped with the package (``coimprove/agents/prompts/*.md``)."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from pathlib import Path

from coimprove.agents.errors import ModelError


@lru_cache(maxsize=64)
def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.md``; `name` may also be a path to the user's own file."""
    path = Path(name)
    if path.suffix == ".md" and path.is_file():
        return path.read_text(encoding="utf-8").strip()
    resource = importlib.resources.files("coimprove.agents").joinpath("prompts", f"{name}.md")
    if not resource.is_file():
        raise ModelError(f"no prompt named {name!r} (looked for prompts/{name}.md)")
    return resource.read_text(encoding="utf-8").strip()
