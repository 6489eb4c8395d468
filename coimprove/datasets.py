"""Versioned dataset files: canonical JSONL, content-addressed versions, all-or-nothing writes.

```python
text = dataset_jsonl(rows)                      # one canonical JSON object per line, by id
version = content_version(text)                 # first 12 hex digits of its sha256
folder, created = write_version(root, "probes", version,
                                {"items.jsonl": text.encode(), "manifest.json": manifest})
```

A version folder ``root/name/version/`` appears whole or not at all: its files are written and
fsynced in a temporary folder beside it, which is then renamed into place. ``root/name/LATEST``
names the newest version (replaced atomically). Writing a version that exists with the same
items is a no-op, so an effect that publishes a dataset can be declared idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coimprove.errors import CoimproveError

ITEMS_FILE = "items.jsonl"


class DatasetError(CoimproveError):
    """A dataset version could not be written (or clashes with an existing one)."""


def dataset_jsonl(rows: Sequence[Mapping[str, Any]], *, key: str = "id") -> str:
    """One canonical JSON object per line (sorted keys, no spaces), rows sorted by `key`:
    equal content gives equal bytes."""
    try:
        ordered = sorted(rows, key=lambda r: str(r[key]))
    except KeyError as exc:
        raise DatasetError(f"every dataset row needs a {key!r} field") from exc
    return "".join(
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        for r in ordered
    )


def content_version(text: str | bytes) -> str:
    """The content-addressed version of a dataset file: 12 hex digits of its sha256."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:12]


def write_version(
    root: str | os.PathLike[str],
    name: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    identity: str = ITEMS_FILE,
) -> tuple[Path, bool]:
    """Write ``root/name/version/`` all at once and point ``LATEST`` at it.

    Returns the folder and whether this call created it. If the version exists, its `identity`
    file must hold the same bytes (then nothing is written); otherwise `DatasetError`.
    """
    for part in (name, version, *files):
        if not part or part.startswith(".") or "/" in part or "\\" in part:
            raise DatasetError(f"{part!r} is not a plain file or folder name")
    if identity not in files:
        raise DatasetError(f"the files of a version must include {identity!r}")
    final = Path(root) / name / version
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        current = final / identity
        if not current.is_file() or current.read_bytes() != files[identity]:
            raise DatasetError(f"{final} exists with other content (a content-address clash)")
        return final, False
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
    try:
        for fname, data in files.items():
            with open(tmp / fname, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        tmp.chmod(0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another writer published it first
            return write_version(root, name, version, files, identity=identity)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = final.parent / f".LATEST-{version}.tmp"
    pointer.write_text(version + "\n")
    os.replace(pointer, final.parent / "LATEST")
    return final, True
