"""Versioned dataset files: canonical JSONL, content versions, all-or-nothing writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from coimprove.datasets import DatasetError, content_version, dataset_jsonl, write_version

ROWS = [{"id": "b", "x": 2}, {"id": "a", "x": 1, "note": "é"}]


def test_equal_rows_give_equal_bytes_and_version_whatever_their_order() -> None:
    text = dataset_jsonl(ROWS)
    assert text == dataset_jsonl(list(reversed(ROWS)))
    assert text.splitlines()[0] == '{"id":"a","note":"é","x":1}'
    assert (
        content_version(text) == content_version(text.encode()) and len(content_version(text)) == 12
    )
    assert content_version(dataset_jsonl(ROWS[:1])) != content_version(text)
    with pytest.raises(DatasetError, match="'id'"):
        dataset_jsonl([{"x": 1}])


def files(text: str) -> dict[str, bytes]:
    return {"items.jsonl": text.encode(), "manifest.json": b"{}\n"}


def test_a_version_appears_whole_and_latest_points_at_it(tmp_path: Path) -> None:
    text = dataset_jsonl(ROWS)
    version = content_version(text)
    folder, created = write_version(tmp_path, "probes", version, files(text))
    assert created and folder == tmp_path / "probes" / version
    assert (folder / "items.jsonl").read_text() == text
    assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert (tmp_path / "probes" / "LATEST").read_text() == version + "\n"
    assert sorted(p.name for p in (tmp_path / "probes").iterdir()) == ["LATEST", version]


def test_writing_the_same_version_again_changes_nothing(tmp_path: Path) -> None:
    text = dataset_jsonl(ROWS)
    version = content_version(text)
    write_version(tmp_path, "probes", version, files(text))
    folder, created = write_version(
        tmp_path, "probes", version, {"items.jsonl": text.encode(), "manifest.json": b"other"}
    )
    assert not created and (folder / "manifest.json").read_bytes() == b"{}\n"
    with pytest.raises(DatasetError, match="clash"):
        write_version(tmp_path, "probes", version, files("different\n"))


def test_a_failed_write_leaves_no_version_and_no_temporary_folder(
    tmp_path: Path, monkeypatch: Any
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_version(tmp_path, "probes", "abc123", files("x\n"))
    assert list((tmp_path / "probes").iterdir()) == []


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a\\b"])
def test_names_must_be_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="plain"):
        write_version(tmp_path, name, "v1", files("x\n"))
    with pytest.raises(DatasetError):
        write_version(tmp_path, "ok", "v1", {"items.jsonl": b"", name or ".x": b""})
