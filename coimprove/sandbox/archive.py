"""Tar streams in and out of sandboxes, with everything coming out treated as hostile.

In: `pack_files` builds a tar (PAX, UTF-8 names) from a relative-path → bytes map after checking
every name. Out: `unpack_files` reads a tar *as a stream*, keeps regular files only (no symlinks,
hardlinks, devices, absolute or `..` names), caps total bytes and file count, and never extracts
to disk by itself; `write_tree` writes a checked map under a host directory without following
links.
"""

from __future__ import annotations

import io
import os
import tarfile
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from coimprove.sandbox.errors import ArchiveError

MAX_NAME_BYTES = 4096
_REFUSED_CATEGORIES = {
    "Cc": "control character",
    "Cf": "invisible format character (e.g. a bidi override)",
    "Cs": "byte that is not UTF-8",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}


def _refused(char: str) -> str | None:
    """Why `char` may not appear in a file name, or None when it may."""
    if char == "\\":
        return "backslash"
    return _REFUSED_CATEGORIES.get(unicodedata.category(char))


def shown_name(name: str) -> str:
    """`name` as printable text for messages and reports: every character a file name may not
    hold is shown escaped (`\\xff` for a byte that is not UTF-8, `\\u202e`, `\\n`, `\\\\`), so a
    name can neither break JSON nor reorder or hide text where it is shown."""
    out: list[str] = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif _refused(char) is not None:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def safe_relpath(name: str) -> str:
    """Return `name` normalized as a safe relative POSIX path, or raise `ArchiveError`.

    Refused: empty names, absolute paths, `..` components, backslashes, bytes that are not
    UTF-8, and control, format (bidi overrides, zero-width), line and paragraph separator
    characters (U+0085, U+2028, …). The message shows the name with those escaped.
    """
    shown = shown_name(name)
    if not name or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise ArchiveError(f"unsafe path {shown!r}: empty or too long", member=shown)
    for char in name:
        reason = _refused(char)
        if reason is not None:
            raise ArchiveError(
                f"unsafe path {shown!r}: {reason} {shown_name(char)!r}", member=shown
            )
    if name.startswith("/"):
        raise ArchiveError(f"unsafe path {shown!r}: absolute", member=shown)
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts:
        raise ArchiveError(f"unsafe path {shown!r}: names no file", member=shown)
    if ".." in parts:
        raise ArchiveError(f"unsafe path {shown!r}: contains '..'", member=shown)
    return "/".join(parts)


def pack_files(
    files: Mapping[str, bytes],
    *,
    executable: Iterable[str] = (),
    dirs: Iterable[str] = (),
    mtime: int = 0,
) -> bytes:
    """A tar archive holding `files` (names checked), parent directories and `dirs` included."""
    execs = {safe_relpath(p) for p in executable}
    extra_dirs = {safe_relpath(d) for d in dirs}
    clean: dict[str, bytes] = {}
    for name, data in files.items():
        rel = safe_relpath(name)
        if rel in clean:
            raise ArchiveError(f"duplicate path {rel!r}")
        clean[rel] = bytes(data)
    unknown = execs - clean.keys()
    if unknown:
        raise ArchiveError(f"executable paths not among the files: {sorted(unknown)}")
    all_dirs = {str(p) for rel in clean for p in PurePosixPath(rel).parents if str(p) != "."}
    for d in extra_dirs:
        all_dirs |= {d} | {str(p) for p in PurePosixPath(d).parents if str(p) != "."}
    dir_list = sorted(all_dirs)
    clash = all_dirs & clean.keys()
    if clash:
        raise ArchiveError(f"paths used both as file and directory: {sorted(clash)}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for d in dir_list:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = mtime
            tar.addfile(info)
        for rel, data in sorted(clean.items()):
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755 if rel in execs else 0o644
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Unpacked(BaseModel):
    """Files accepted from an untrusted archive, and what was refused and why."""

    files: dict[str, bytes] = Field(default_factory=dict)
    executable: set[str] = Field(default_factory=set)
    rejected: dict[str, str] = Field(default_factory=dict, description="name → reason")


def unpack_files(
    data: bytes | io.RawIOBase | io.BufferedIOBase,
    *,
    max_bytes: int = 64 << 20,
    max_files: int = 10_000,
    strip_prefix: str = "",
) -> Unpacked:
    """Read an untrusted tar stream into memory: regular files only, names checked, capped.

    Refused members are listed in `rejected` under their printable names (`shown_name`).
    Raises `ArchiveError` naming the member at fault when the accepted files would exceed
    `max_bytes` (judged from the header, before the data is read) or there are more than
    `max_files` members, or when the stream is not a valid tar.
    """
    fileobj = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    out = Unpacked()
    total = 0
    members = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="r|", encoding="utf-8") as tar:
            for info in tar:
                members += 1
                name = info.name
                if strip_prefix and name.startswith(strip_prefix):
                    name = name[len(strip_prefix) :]
                shown = shown_name(name)
                if members > max_files:
                    raise ArchiveError(
                        f"more than {max_files} files and directories to read "
                        f"(refused at {shown!r})",
                        member=shown,
                    )
                if info.isdir():
                    continue
                try:
                    rel = safe_relpath(name)
                except ArchiveError as err:
                    out.rejected[shown] = str(err)
                    continue
                if not info.isreg():
                    out.rejected[rel] = f"not a regular file (tar type {info.type!r})"
                    continue
                if rel in out.files:
                    out.rejected[rel] = "duplicate member"
                    continue
                total += info.size
                if total > max_bytes:
                    raise ArchiveError(
                        f"{rel!r} ({info.size} bytes) would bring the files read to "
                        f"{total} bytes, more than the cap of {max_bytes}",
                        member=rel,
                    )
                member = tar.extractfile(info)
                if member is None:  # pragma: no cover - regular files always have data
                    out.rejected[rel] = "no data"
                    continue
                content = member.read(info.size + 1)
                if len(content) != info.size:
                    raise ArchiveError(
                        f"member {rel!r} is shorter or longer than its header", member=rel
                    )
                out.files[rel] = content
                if info.mode & 0o111:
                    out.executable.add(rel)
    except tarfile.TarError as err:
        raise ArchiveError(f"invalid tar stream: {err}") from err
    return out


def write_tree(root: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write `files` under the host directory `root` without following any symlink.

    Each name is checked; every parent must be a real directory inside `root`; files are created
    with O_NOFOLLOW and never overwrite a symlink. Returns the written paths.
    """
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, data in files.items():
        rel = safe_relpath(name)
        target = root.joinpath(*rel.split("/"))
        parent = root
        for part in rel.split("/")[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise ArchiveError(f"refusing to write through symlink {parent}")
            parent.mkdir(exist_ok=True)
        if target.is_symlink():
            raise ArchiveError(f"refusing to overwrite symlink {target}")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        written.append(target)
    return written
