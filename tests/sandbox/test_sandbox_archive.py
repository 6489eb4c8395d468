"""Tar streams in and out: names are checked going in, and hostile archives coming out are
refused member by member (no symlinks, hardlinks, devices, absolute or `..` names, caps)."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import pytest

from coimprove.sandbox.archive import (
    pack_files,
    safe_relpath,
    shown_name,
    unpack_files,
    write_tree,
)
from coimprove.sandbox.errors import ArchiveError


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a/..", "a\\b", "a\x00b", "new\nline", ".", "./"],
)
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ArchiveError):
        safe_relpath(name)


@pytest.mark.parametrize(
    ("name", "shown", "reason"),
    [
        ("out/r\udcffsult.txt", "out/r\\xffsult.txt", "not UTF-8"),  # raw byte 0xff
        ("out/report\u202etxt.exe", "out/report\\u202etxt.exe", "bidi"),  # RIGHT-TO-LEFT OVERRIDE
        ("out/a\u2066b", "out/a\\u2066b", "bidi"),  # LEFT-TO-RIGHT ISOLATE
        ("out/zero\u200bwidth", "out/zero\\u200bwidth", "invisible"),
        ("out/next\x85line", "out/next\\x85line", "control"),  # NEXT LINE (NEL)
        ("out/line\u2028sep", "out/line\\u2028sep", "line separator"),
        ("out/para\u2029sep", "out/para\\u2029sep", "paragraph separator"),
        ("out/del\x7f", "out/del\\x7f", "control"),
    ],
)
def test_names_that_hide_or_reorder_text_are_refused_by_name(
    name: str, shown: str, reason: str
) -> None:
    with pytest.raises(ArchiveError, match=reason) as err:
        safe_relpath(name)
    assert err.value.member == shown
    assert repr(shown) in str(err.value)
    assert shown_name(name) == shown
    assert shown.isprintable()


def test_unpack_lists_bad_names_printably_and_keeps_the_rest() -> None:
    data = _tar([(_member("ok.txt"), b"ok"), (_member("x\u202eexe.txt"), b"evil")])
    unpacked = unpack_files(data)
    assert unpacked.files == {"ok.txt": b"ok"}
    assert list(unpacked.rejected) == ["x\\u202eexe.txt"]
    unpacked.model_dump_json()  # printable names: always valid JSON


def test_non_utf8_member_name_never_reaches_the_files() -> None:
    info = tarfile.TarInfo("placeholder")
    info.size = 1
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    name = b"bad\xff.txt"  # a raw non-UTF-8 byte in the name field
    header[: len(name) + 1] = name + b"\0"
    header[148:156] = b"        "
    header[148:155] = f"{sum(header):06o}\0".encode()
    data = bytes(header) + b"x".ljust(512, b"\0") + b"\0" * 1024
    unpacked = unpack_files(data)
    assert unpacked.files == {}
    assert list(unpacked.rejected) == ["bad\\xff.txt"]
    unpacked.model_dump_json()


def test_caps_name_the_member_at_fault() -> None:
    big = _tar([(_member("small"), b"x"), (_member("out/huge.bin"), b"x" * 2000)])
    with pytest.raises(ArchiveError, match=re.escape("'out/huge.bin' (2000 bytes)")) as err:
        unpack_files(big, max_bytes=1000)
    assert err.value.member == "out/huge.bin"
    many = _tar([(_member(f"f{i}"), b"") for i in range(20)])
    with pytest.raises(ArchiveError, match="refused at 'f10'"):
        unpack_files(many, max_files=10)


def test_safe_names_are_normalized() -> None:
    assert safe_relpath("./a//b/./c.txt") == "a/b/c.txt"
    assert safe_relpath("données/ü 😀.txt") == "données/ü 😀.txt"


def test_pack_and_unpack_round_trip_bytes_names_and_exec_bits() -> None:
    files = {"a/b/c.bin": bytes(range(256)), "ü 😀.txt": "héllo".encode(), "empty": b""}
    data = pack_files(files, executable=["a/b/c.bin"], dirs=["out/logs"])
    unpacked = unpack_files(data)
    assert unpacked.files == files
    assert unpacked.executable == {"a/b/c.bin"}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {"a", "a/b", "out", "out/logs"} <= {m.name for m in tar if m.isdir()}


def test_pack_refuses_file_dir_clash_and_unknown_exec() -> None:
    with pytest.raises(ArchiveError, match="both as file and directory"):
        pack_files({"a": b"x", "a/b": b"y"})
    with pytest.raises(ArchiveError, match="executable"):
        pack_files({"a": b"x"}, executable=["b"])
    with pytest.raises(ArchiveError):
        pack_files({"../escape": b"x"})


def test_hostile_members_are_dropped_with_reasons() -> None:
    data = _tar(
        [
            (_member("good.txt"), b"ok"),
            (_member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), None),
            (_member("hard", tarfile.LNKTYPE, linkname="good.txt"), None),
            (_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
            (_member("fifo", tarfile.FIFOTYPE), None),
            (_member("/abs.txt"), b"abs"),
            (_member("../up.txt"), b"up"),
        ]
    )
    unpacked = unpack_files(data)
    assert unpacked.files == {"good.txt": b"ok"}
    assert set(unpacked.rejected) == {"link", "hard", "dev", "fifo", "/abs.txt", "../up.txt"}


def test_size_and_count_caps_stop_reading() -> None:
    big = _tar([(_member("big"), b"x" * 2000)])
    with pytest.raises(ArchiveError, match="more than the cap of 1000"):
        unpack_files(big, max_bytes=1000)
    many = _tar([(_member(f"f{i}"), b"") for i in range(20)])
    with pytest.raises(ArchiveError, match="more than 10 files"):
        unpack_files(many, max_files=10)


def test_garbage_is_not_a_tar() -> None:
    with pytest.raises(ArchiveError, match="invalid tar"):
        unpack_files(b"\x01" * 1024)


def test_truncated_member_is_refused() -> None:
    data = _tar([(_member("f"), b"y" * 4096)])
    with pytest.raises(ArchiveError):
        unpack_files(data[:1024])


def test_write_tree_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "sub")
    with pytest.raises(ArchiveError, match="symlink"):
        write_tree(root, {"sub/x.txt": b"x"})
    os.symlink(outside / "target", root / "f")
    with pytest.raises(ArchiveError, match="symlink"):
        write_tree(root, {"f": b"x"})
    assert not any(outside.iterdir())
    written = write_tree(root, {"a/b.txt": b"b"})
    assert written == [root.resolve() / "a" / "b.txt"]
    assert (root / "a" / "b.txt").read_bytes() == b"b"
