"""Where built-in policies, reviewer profiles, graphs and sandboxes are found.

In a wheel they are package data under ``coimprove/_builtin/``; in a source checkout (editable
install) they are the repository's top-level folders next to the package.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache  # where the package is installed does not change while it runs
def builtin_dir(kind: str) -> Path:
    """The folder holding built-in `kind` ("policies", "graphs", "sandboxes", "reviewers")."""
    packaged = Path(str(resources.files("coimprove"))) / "_builtin" / kind
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / kind


def builtin_names(kind: str, suffix: str = ".yaml") -> list[str]:
    """Names of the built-in files of one kind, without suffix."""
    folder = builtin_dir(kind)
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(suffix) for p in folder.glob(f"*{suffix}"))
