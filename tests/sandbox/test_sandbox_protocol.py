"""Sandbox data: output capping while streaming, limit overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coimprove.sandbox.protocol import CappedBuffer, ExecResult, SandboxLimits


def test_capped_buffer_keeps_head_and_tail_and_counts_everything() -> None:
    buf = CappedBuffer(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrstuvwxyz"):
        buf.write(chunk)
    assert buf.total == 26
    assert buf.truncated
    value = buf.getvalue()
    assert value.startswith(b"abcde")
    assert value.endswith(b"vwxyz")
    assert b"16 bytes truncated" in value


def test_capped_buffer_under_the_cap_is_exact() -> None:
    buf = CappedBuffer(100)
    buf.write("héllo ✓".encode())
    assert not buf.truncated
    assert buf.text() == "héllo ✓"


def test_capped_buffer_memory_stays_bounded() -> None:
    buf = CappedBuffer(1024)
    for _ in range(1000):
        buf.write(b"x" * 65536)
    assert len(buf.getvalue()) < 1024 + 100
    assert buf.total == 65536 * 1000


def test_limit_overrides_replace_only_the_fields_given() -> None:
    base = SandboxLimits(memory_mb=512, pids=128, tmpfs_mb=64)
    merged = base.merged(SandboxLimits(memory_mb=256))
    assert (merged.memory_mb, merged.pids, merged.tmpfs_mb) == (256, 128, 64)
    assert base.merged({"pids": 32}).pids == 32
    assert base.merged(None) is base
    with pytest.raises(ValidationError):
        base.merged({"memory_mb": 1})
    with pytest.raises(ValidationError):
        base.merged({"unknown": 1})


def test_exec_result_ok_needs_exit_zero_by_itself() -> None:
    assert ExecResult(exit_code=0, ended_by="exit", wall_s=0.1).ok
    assert not ExecResult(exit_code=0, ended_by="timeout", wall_s=0.1).ok
    assert not ExecResult(exit_code=2, ended_by="exit", wall_s=0.1).ok
