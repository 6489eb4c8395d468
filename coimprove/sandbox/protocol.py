"""The Sandbox protocol: what every sandbox implementation offers, and the data it returns.

A sandbox is a long-lived, isolated place to run an agent's commands (one per run or per
experiment). Commands run with `exec`; files go in and out as byte maps. Every method is async:
implementations do their blocking work off the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

EndedBy = Literal["exit", "timeout", "oom", "killed"]
"""Why a command ended: it exited by itself (its own `exit 137`, or a signal one of its own
processes sent, is an exit with that status), hit its wall-clock timeout, was killed by the
out-of-memory killer, or was killed by the sandbox (cancelled, the container killed or closed)."""

NetworkMode = Literal["none", "bridge"]
"""`none` (default): loopback only. `bridge`: the engine's default network, which a sandbox
refuses unless the caller passes an explicit grant (policy decides, never the agent)."""

Command = str | Sequence[str]
"""A command: an argv list, or a string run with `sh -c`."""


class SandboxLimits(BaseModel):
    """Resource limits for one sandbox. Defaults suit small Python experiments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mb: int = Field(512, ge=16, description="memory limit, no swap; tmpfs counts too")
    pids: int = Field(128, ge=8, description="max processes+threads in the sandbox")
    cpus: float = Field(1.0, gt=0, description="CPU quota in cores")
    tmpfs_mb: int = Field(64, ge=1, description="size of the writable work dir /sandbox")
    tmp_mb: int = Field(16, ge=1, description="size of the scratch /tmp")
    timeout_s: float = Field(60.0, gt=0, description="default wall-clock timeout per exec")
    output_bytes: int = Field(1 << 20, ge=1024, description="cap on stdout and on stderr")
    max_lifetime_s: int = Field(
        86_400, ge=10, description="the container stops by itself after this (leak guard)"
    )

    def merged(self, override: SandboxLimits | Mapping[str, object] | None) -> SandboxLimits:
        """These limits with the fields explicitly set in `override` replacing them."""
        if override is None:
            return self
        if isinstance(override, SandboxLimits):
            data = override.model_dump(exclude_unset=True)
        else:
            data = dict(override)
        return SandboxLimits.model_validate({**self.model_dump(), **data})


class ExecResult(BaseModel):
    """The outcome of one command. Output is decoded as UTF-8 (invalid bytes replaced)."""

    model_config = ConfigDict(frozen=True)

    exit_code: int | None = Field(description="None when the command never reported one")
    ended_by: EndedBy
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = Field(0, description="bytes the command wrote to stdout in total")
    stderr_bytes: int = Field(0, description="bytes the command wrote to stderr in total")
    wall_s: float = Field(description="wall-clock seconds from start to end")

    @property
    def ok(self) -> bool:
        """The command exited by itself with status 0."""
        return self.ended_by == "exit" and self.exit_code == 0


class ResourceUse(BaseModel):
    """What a sandbox used over its life so far (None where the engine does not say)."""

    model_config = ConfigDict(frozen=True)

    peak_memory_bytes: int | None = None
    cpu_s: float | None = None
    oom_kills: int = 0


@runtime_checkable
class Sandbox(Protocol):
    """An isolated place to run commands. Use as `async with`; `close()` is idempotent."""

    @property
    def id(self) -> str:
        """A stable identifier (for a container: its id)."""
        ...

    @property
    def workdir(self) -> str:
        """The absolute path of the writable work directory (relative paths resolve here)."""
        ...

    async def exec(
        self,
        cmd: Command,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - enforced by killing inside the box
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run `cmd` to completion or until `timeout` seconds (default: the sandbox's limit).

        Execs on one sandbox are serialized. A timeout kills every process the command started
        (including ones that called setsid) and is reported as `ended_by="timeout"`.
        """
        ...

    async def write_files(
        self,
        files: Mapping[str, bytes],
        *,
        dest: str | None = None,
        executable: Sequence[str] = (),
    ) -> None:
        """Write `files` (relative path → bytes) under `dest` (default: the work dir)."""
        ...

    async def read_files(
        self,
        paths: Sequence[str],
        *,
        max_bytes: int = 64 << 20,
        missing_ok: bool = False,
    ) -> dict[str, bytes]:
        """Read regular files (directories recursively) relative to the work dir.

        The content is treated as hostile: symlinks, devices and unsafe names are dropped,
        and the total is capped at `max_bytes`.
        """
        ...

    async def resource_use(self) -> ResourceUse:
        """Peak memory, CPU time and OOM kills of the sandbox so far."""
        ...

    async def close(self) -> None:
        """Stop and remove the sandbox. Safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class CappedBuffer:
    """Keeps the head and the tail of a byte stream within `cap` bytes, counting the rest.

    Output is capped while it streams (never buffered whole): a 100 MB flood costs `cap` bytes.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._head_cap = cap // 2
        self._tail_cap = cap - self._head_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        """Append a chunk."""
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self._tail_cap:
                del self._tail[: len(self._tail) - self._tail_cap]

    @property
    def truncated(self) -> bool:
        """True when some bytes were dropped."""
        return self.total > len(self._head) + len(self._tail)

    def getvalue(self) -> bytes:
        """Head + a marker naming the dropped byte count + tail (or everything if it fit)."""
        if not self.truncated:
            return bytes(self._head + self._tail)
        dropped = self.total - len(self._head) - len(self._tail)
        marker = f"\n[... coimprove: {dropped} bytes truncated ...]\n".encode()
        return bytes(self._head) + marker + bytes(self._tail)

    def text(self) -> str:
        """The kept bytes decoded as UTF-8 with replacement characters."""
        return self.getvalue().decode("utf-8", errors="replace")
