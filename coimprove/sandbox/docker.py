"""DockerSandbox: a hardened, long-lived container that runs an agent's commands.

Design (see notes/docker-sandbox.md for the verified engine behaviour behind each choice):

- One container per sandbox, started with a keepalive (`sleep <max_lifetime>`) as PID 1 under
  docker-init, running as uid 65534. Commands run with `exec` as uid 1000, so an agent can never
  kill the keepalive, while `kill -9 -1` run as uid 1000 kills every agent process (including
  ones that called setsid) and leaves the container reusable. If that fails (e.g. a fork bomb
  holds every pid), the container is killed from outside and the sandbox is closed.
- No network (`network_mode=none`) unless the caller passes an explicit grant; read-only root;
  size-capped tmpfs at /sandbox (exec allowed) and /tmp; all capabilities dropped;
  no-new-privileges; pids, memory (no swap) and CPU limits.
- Output is capped while it streams (head + tail kept). OOM kills are detected per exec from the
  container's cgroup counter (`oom_kill` in memory.oom_control on cgroup v1, memory.events on v2).
- Files go in and out as tar streams over exec (the archive API cannot see a tmpfs); what comes
  out is parsed as hostile (`archive.unpack_files`).
- Every container carries the label `coimprove.sandbox=1`, its run id and its owner process; a
  reaper removes the containers of dead owners at start-up (`coimprove sandbox prune` too), and an
  atexit hook removes this process's own.

All blocking engine calls run in worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Self

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from coimprove._log import get_logger
from coimprove.sandbox import archive
from coimprove.sandbox.engine import connect
from coimprove.sandbox.errors import (
    ArchiveError,
    ImageMissingError,
    NetworkNotAllowedError,
    SandboxClosedError,
    SandboxError,
    SandboxFileError,
    SandboxNotFoundError,
)
from coimprove.sandbox.images import load_sandbox, resolve_image
from coimprove.sandbox.protocol import (
    CappedBuffer,
    Command,
    EndedBy,
    ExecResult,
    NetworkMode,
    ResourceUse,
    SandboxLimits,
)

log = get_logger("coimprove.sandbox.docker")

LABEL = "coimprove.sandbox"
LABEL_RUN = "coimprove.run_id"
LABEL_PID = "coimprove.owner_pid"
LABEL_PID_START = "coimprove.owner_start"
LABEL_HOST = "coimprove.owner_host"
AGENT_USER = "1000:1000"
KEEPER_USER = "65534:65534"
WORKDIR = "/sandbox"
KILL_GRACE_S = 1.5
REMOVE_WAIT_S = 30.0
"""How long `close` waits for a removal another thread has started."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
READ_TIMEOUT_S = 60.0
"""Default time bound of one `read_archive` (the tar is killed after it)."""
MAX_READ_FILES = 10_000
"""Default cap on the files and directories one `read_archive` takes."""
# Ends every process of the agent's uid and verifies it (dash builtins only: it needs one pid
# even when a fork bomb holds the rest). One `kill -9 -1` is atomic against fork on Linux, but
# kill(-1) reports success whenever any other process exists (PID 1 included), so the check
# reads each /proc/<pid>/status: exit 0 when no live (non-zombie) uid-1000 process but this
# shell is left, exit 3 when some still are after 50 rounds (the caller retries).
_END_ALL = """n=0
while :; do
  kill -9 -1 2>/dev/null
  left=0
  for p in /proc/[0-9]*; do
    [ "$p" = "/proc/$$" ] && continue
    state=
    { while read -r k v rest; do
        case $k in
          State:) state=$v ;;
          Uid:) [ "$v" = UID ] && [ "$state" != Z ] && left=$((left+1)); break ;;
        esac
      done < "$p/status"; } 2>/dev/null
  done
  [ $left = 0 ] && exit 0
  n=$((n+1))
  [ $n -lt 50 ] || exit 3
done""".replace("UID", AGENT_USER.split(":")[0])
_CGROUP_FILES = (
    "/sys/fs/cgroup/memory/memory.oom_control",  # v1
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/cpuacct/cpuacct.usage",
    "/sys/fs/cgroup/memory.events",  # v2
    "/sys/fs/cgroup/memory.peak",
    "/sys/fs/cgroup/cpu.stat",
)


# -- owner identity and the reaper ------------------------------------------------------------


def _proc_start_ticks(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot), '' if unknown: guards pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL_PID: str(pid),
        LABEL_PID_START: _proc_start_ticks(pid),
        LABEL_HOST: socket.gethostname(),
    }


def _owner_alive(labels: Mapping[str, str]) -> bool | None:
    """True/False when the owner process is on this host; None when it is elsewhere."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return None
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = labels.get(LABEL_PID_START, "")
    return not start or _proc_start_ticks(pid) == start


def reap(
    client: docker.DockerClient | None = None,
    *,
    everything: bool = False,
    run_id: str | None = None,
) -> list[str]:
    """Remove labelled sandbox containers that nobody owns any more; returns their names.

    Removed: containers whose owner process (on this host) is gone, containers that have
    stopped (their keepalive expired), and with `everything=True` all labelled containers.
    With `run_id`, only that run's containers are considered, and all of them are removed.
    """
    client = client or connect()
    filters: dict[str, Any] = {"label": [f"{LABEL}=1"]}
    if run_id is not None:
        filters["label"].append(f"{LABEL_RUN}={run_id}")
    removed: list[str] = []
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        labels = container.labels or {}
        alive = _owner_alive(labels)
        stopped = container.status in ("exited", "dead", "created")
        if everything or run_id is not None or alive is False or stopped:
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
                removed.append(str(container.name))
    if removed:
        log.info("sandbox.reaped", count=len(removed), containers=removed)
    return removed


def count_containers(
    client: docker.DockerClient | None = None, *, run_id: str | None = None
) -> int:
    """How many labelled sandbox containers exist (for one run, or all)."""
    client = client or connect()
    labels = [f"{LABEL}=1"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
    return len(client.containers.list(all=True, filters={"label": labels}, ignore_removed=True))


_reaped_once = False
_reap_lock = threading.Lock()
_live: set[DockerSandbox] = set()  # strong: an unclosed sandbox is still removed at exit
_shared_client: docker.DockerClient | None = None
_image_cache: dict[str, str] = {}


def _client() -> docker.DockerClient:
    global _shared_client
    with _reap_lock:
        if _shared_client is None:
            _shared_client = connect()
        return _shared_client


def _reap_at_startup(client: docker.DockerClient) -> None:
    global _reaped_once
    with _reap_lock:
        if _reaped_once:
            return
        _reaped_once = True
    try:
        reap(client)
    except DockerException as err:  # never block a start on the reaper
        log.warning("sandbox.reap_failed", error=str(err))


@atexit.register
def _remove_live_sandboxes() -> None:
    for sandbox in list(_live):
        sandbox.close_sync()


# -- the sandbox ------------------------------------------------------------------------------


class _Watch:
    """Shared state between an exec's reader and the thread that watches its time and end."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.timed_out = False
        self.force_killed = False
        self.cancelled = False
        self.main_exited = False


class DockerSandbox:
    """A hardened Docker container for running untrusted commands. Create with `start()`."""

    def __init__(
        self,
        client: docker.DockerClient,
        container: Any,
        *,
        image: str,
        limits: SandboxLimits,
        run_id: str,
        env: Mapping[str, str],
    ) -> None:
        self._client = client
        self._container = container
        self.image = image
        self.limits = limits
        self.run_id = run_id
        self._env = dict(env)
        self._lock = asyncio.Lock()
        self._closed: str | None = None
        self._removed = threading.Event()
        self._oom_kills = 0
        _live.add(self)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        image: str = "python",
        *,
        limits: SandboxLimits | Mapping[str, object] | None = None,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        network: NetworkMode | None = None,
        allow_network: bool = False,
        client: docker.DockerClient | None = None,
    ) -> DockerSandbox:
        """Create and start a sandbox.

        `image` is a sandbox name or folder (its built image and sandbox.yaml limits are used)
        or a local image reference (never pulled). `limits` override the sandbox's own.
        A network other than `none` needs `allow_network=True` (a policy grant).
        """
        return await asyncio.to_thread(
            cls.start_sync,
            image,
            limits=limits,
            run_id=run_id,
            env=env,
            network=network,
            allow_network=allow_network,
            client=client,
        )

    @classmethod
    def start_sync(
        cls,
        image: str = "python",
        *,
        limits: SandboxLimits | Mapping[str, object] | None = None,
        run_id: str | None = None,
        env: Mapping[str, str] | None = None,
        network: NetworkMode | None = None,
        allow_network: bool = False,
        client: docker.DockerClient | None = None,
    ) -> DockerSandbox:
        """Blocking `start` (for threads and scripts)."""
        client = client or _client()
        _reap_at_startup(client)
        base_limits = SandboxLimits()
        base_env: dict[str, str] = {}
        base_network: NetworkMode = "none"
        try:
            source = load_sandbox(image)
        except SandboxNotFoundError:
            tag = image
            try:
                client.images.get(tag)
            except ImageNotFound as err:
                raise ImageMissingError(image, tag) from err
        else:
            cache_key = str(source.directory)
            tag = _image_cache.get(cache_key) or resolve_image(client, source.directory)
            _image_cache[cache_key] = tag
            base_limits = source.definition.limits
            base_env = dict(source.definition.env)
            base_network = source.definition.network
        lim = base_limits.merged(limits)
        net: NetworkMode = network or base_network
        if net != "none" and not allow_network:
            raise NetworkNotAllowedError(
                f"network {net!r} requested for sandbox {image!r} without a policy grant"
            )
        merged_env = {**base_env, **(env or {})}
        _check_env(merged_env)
        run_id = run_id or "adhoc"
        name = f"coimprove-{_slug(run_id)}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        try:
            container = client.containers.create(
                tag,
                command=["sleep", str(lim.max_lifetime_s)],
                name=name,
                hostname="sandbox",
                user=KEEPER_USER,
                working_dir=WORKDIR,
                network_mode=net,
                read_only=True,
                tmpfs={
                    WORKDIR: f"size={lim.tmpfs_mb}m,uid=1000,gid=1000,mode=0755,exec",
                    "/tmp": f"size={lim.tmp_mb}m,mode=1777,nosuid,nodev",
                },
                shm_size="8m",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=lim.pids,
                mem_limit=f"{lim.memory_mb}m",
                memswap_limit=f"{lim.memory_mb}m",
                nano_cpus=int(lim.cpus * 1e9),
                init=True,
                labels={LABEL: "1", LABEL_RUN: run_id, **_owner_labels()},
            )
        except ImageNotFound as err:
            raise ImageMissingError(image, tag) from err
        except APIError as err:
            raise SandboxError(f"could not create a sandbox from {tag}: {err}") from err
        sandbox = cls(client, container, image=tag, limits=lim, run_id=run_id, env=merged_env)
        try:
            container.start()
        except APIError as err:
            sandbox.close_sync()
            raise SandboxError(f"could not start sandbox {name}: {err}") from err
        log.debug("sandbox.started", name=name, image=tag, seconds=time.monotonic() - started)
        return sandbox

    @property
    def id(self) -> str:
        """The container id."""
        return str(self._container.id)

    @property
    def name(self) -> str:
        """The container name."""
        return str(self._container.name)

    @property
    def workdir(self) -> str:
        """The writable work directory inside the sandbox."""
        return WORKDIR

    @property
    def closed(self) -> bool:
        """True once closed (or force-killed)."""
        return self._closed is not None

    @property
    def closed_reason(self) -> str | None:
        """Why the sandbox closed ("closed", or why it was force-killed); None while open."""
        return self._closed

    async def close(self) -> None:
        """Remove the container (and its tmpfs). Idempotent."""
        if self._closed is None or self._container is not None:
            await asyncio.to_thread(self.close_sync)

    def close_sync(self, reason: str = "closed") -> None:
        """Blocking `close`."""
        if self._closed is None:
            self._closed = reason
        container, self._container = self._container, None
        _live.discard(self)
        if container is None:
            # Another thread may be removing it: return once that is done (so "closed"
            # always means the container is gone), bounded in case that thread is stuck.
            self._removed.wait(REMOVE_WAIT_S)
            return
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
        except DockerException as err:
            log.warning("sandbox.remove_failed", name=container.name, error=str(err))
        finally:
            self._removed.set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_open(self) -> Any:
        if self._closed is not None or self._container is None:
            raise SandboxClosedError(f"sandbox {self.run_id} is {self._closed or 'closed'}")
        return self._container

    # -- exec --------------------------------------------------------------------------------

    async def exec(
        self,
        cmd: Command,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - enforced by killing inside the box
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run `cmd` as uid 1000; see `Sandbox.exec`."""
        async with self._lock:
            watch = _Watch()
            try:
                return await asyncio.to_thread(
                    self._exec_blocking, cmd, timeout, env, workdir, watch
                )
            except asyncio.CancelledError:
                if not watch.done.is_set():
                    watch.cancelled = True
                    threading.Thread(target=self._kill_agent, args=(watch,), daemon=True).start()
                raise

    def exec_sync(
        self,
        cmd: Command,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Blocking `exec` (callers must not run two at once on one sandbox)."""
        return self._exec_blocking(cmd, timeout, env, workdir, _Watch())

    def _exec_blocking(
        self,
        cmd: Command,
        timeout: float | None,
        env: Mapping[str, str] | None,
        workdir: str | None,
        watch: _Watch,
    ) -> ExecResult:
        container = self._require_open()
        api = self._client.api
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise SandboxError("empty command")
        environment = {**self._env, **(env or {})}
        _check_env(environment)
        limit = self.limits.timeout_s if timeout is None else timeout
        out = CappedBuffer(self.limits.output_bytes)
        err = CappedBuffer(self.limits.output_bytes)
        started = time.monotonic()
        try:
            exec_id = api.exec_create(
                container.id,
                argv,
                stdout=True,
                stderr=True,
                user=AGENT_USER,
                environment=environment,
                workdir=_resolve_dir(workdir),
            )["Id"]
        except APIError as e:
            raise SandboxError(f"exec failed to start in {self.name}: {e}") from e
        watcher = threading.Thread(
            target=self._watch_exec, args=(exec_id, limit, watch), daemon=True
        )
        watcher.start()
        try:
            stream = api.exec_start(exec_id, stream=True, demux=True)
            for chunk_out, chunk_err in stream:
                if chunk_out:
                    out.write(chunk_out)
                if chunk_err:
                    err.write(chunk_err)
        except (DockerException, OSError) as e:
            if not (watch.timed_out or watch.force_killed or self._closed):
                raise SandboxError(f"exec stream failed in {self.name}: {e}") from e
        finally:
            watch.done.set()
        wall = time.monotonic() - started
        exit_code = self._exit_code(exec_id)
        ended_by = self._ended_by(exit_code, watch)
        # Whatever the command left running (setsid daemons, a process that would stop or
        # forge a later read) ends with it: nothing of one exec outlives it.
        self._end_leftovers()
        if ended_by != "exit":
            log.info("sandbox.exec_ended", name=self.name, ended_by=ended_by, exit=exit_code)
        return ExecResult(
            exit_code=exit_code,
            ended_by=ended_by,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            wall_s=wall,
        )

    def _watch_exec(self, exec_id: str, limit: float, watch: _Watch) -> None:
        """Kill the exec at its timeout; once its main process has ended, end what it left
        (a leftover holding stdout open would otherwise keep the stream, and the exec, going)."""
        deadline = time.monotonic() + limit
        interval = 0.05
        while True:
            left = deadline - time.monotonic()
            if watch.done.wait(max(0.0, min(interval, left))):
                return
            if time.monotonic() >= deadline:
                self._on_timeout(watch)
                return
            interval = min(interval * 2, 1.0)
            if not watch.main_exited and self._exec_state(exec_id)[0] is False:
                watch.main_exited = True
                self._end_leftovers()

    def _exec_state(self, exec_id: str) -> tuple[bool | None, int | None]:
        """(running, exit code) of an exec; (None, None) when the engine cannot say."""
        try:
            info = self._client.api.exec_inspect(exec_id)
        except DockerException:
            return None, None
        return bool(info.get("Running")), info.get("ExitCode")

    def _exit_code(self, exec_id: str) -> int | None:
        """The exit code once the exec is no longer running (it can lag the stream's end)."""
        deadline = time.monotonic() + KILL_GRACE_S
        while True:
            running, code = self._exec_state(exec_id)
            if running is not True or self._closed or time.monotonic() >= deadline:
                return code if running is False else None
            time.sleep(0.02)

    def _ended_by(self, exit_code: int | None, watch: _Watch) -> EndedBy:
        """Only our own kill is "killed"; a command's own `exit 137` (or a SIGKILL one of its
        processes sent) is an exit like any other."""
        if watch.timed_out:
            return "timeout"
        if watch.force_killed or watch.cancelled:
            return "killed"
        if self._closed is not None and not watch.main_exited:
            return "killed"
        if exit_code not in (None, 0):
            oom = self._read_oom_kills()
            if oom is not None and oom > self._oom_kills:
                self._oom_kills = oom
                return "oom"
        if exit_code is None:
            return "killed"
        return "exit"

    def _on_timeout(self, watch: _Watch) -> None:
        if watch.done.is_set():
            return
        watch.timed_out = True
        self._kill_agent(watch)

    def _kill_agent(self, watch: _Watch) -> None:
        """Kill every uid-1000 process; if the exec still runs after a grace, kill the box."""
        container = self._container
        if container is None:
            return
        started = time.monotonic()
        killer = threading.Thread(target=self._end_leftovers, daemon=True)
        killer.start()
        if watch.done.wait(KILL_GRACE_S):
            log.debug("sandbox.killed", name=container.name, seconds=time.monotonic() - started)
            return
        log.warning("sandbox.force_kill", name=container.name)
        watch.force_killed = True
        self._force_kill("force-killed after a command would not die")

    def _force_kill(self, reason: str) -> None:
        """Kill the container from outside (nothing inside can stop that); the sandbox closes."""
        self._closed = self._closed or reason
        container = self._container
        if container is not None:
            with contextlib.suppress(DockerException):
                container.kill()

    def _end_leftovers(self) -> bool:
        """End every uid-1000 process, verified: True when none is left.

        Runs `kill -9 -1` as uid 1000 in a loop (dash builtins only, so it needs one pid)
        until the kill finds no process left to signal. Each attempt is bounded in time (a
        leftover could SIGSTOP the killer itself); when none succeeds within the kill grace the
        container is killed from outside and the sandbox closed, so no process of the command
        can take part in anything that follows.
        """
        container = self._container
        if container is None or self._closed is not None:
            return True  # removed, or killed from outside: no process of it is left
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if self._run_killer(container, deadline):
                return True
            if self._closed is not None:  # force-killed meanwhile (e.g. by the timeout)
                return True
            time.sleep(0.02)
        log.warning("sandbox.leftovers_survived", name=container.name)
        self._force_kill("force-killed: processes a command left would not die")
        return False

    def _run_killer(self, container: Any, deadline: float) -> bool:
        api = self._client.api
        try:
            kid = api.exec_create(container.id, ["sh", "-c", _END_ALL], user=AGENT_USER)["Id"]
        except DockerException as e:  # e.g. no pid left for the kill (fork bomb)
            log.debug("sandbox.kill_retry", name=container.name, error=str(e))
            return False
        finished = threading.Event()

        def run() -> None:
            with contextlib.suppress(DockerException):
                api.exec_start(kid)
            finished.set()

        threading.Thread(target=run, daemon=True).start()
        if not finished.wait(max(0.05, deadline - time.monotonic())):
            return False
        for _ in range(25):  # the engine can report the end a moment after the stream closed
            running, code = self._exec_state(kid)
            if running is not True:
                return running is False and code == 0
            time.sleep(0.02)
        return False

    def _keeper_exec(self, argv: list[str]) -> str | None:
        container = self._container
        if container is None:
            return None
        try:
            res = container.exec_run(argv, user=KEEPER_USER, stdout=True, stderr=False)
        except DockerException:
            return None
        return bytes(res.output or b"").decode("utf-8", "replace")

    def _cgroup_values(self) -> dict[str, dict[str, int]]:
        text = self._keeper_exec(["grep", "-H", "", *_CGROUP_FILES])
        values: dict[str, dict[str, int]] = {}
        for line in (text or "").splitlines():
            path, _, rest = line.partition(":")
            parts = rest.split()
            name = path.rsplit("/", 1)[-1]
            with contextlib.suppress(ValueError):
                if len(parts) == 1:
                    values.setdefault(name, {})[""] = int(parts[0])
                elif len(parts) == 2:
                    values.setdefault(name, {})[parts[0]] = int(parts[1])
        return values

    def _read_oom_kills(self) -> int | None:
        values = self._cgroup_values()
        for name in ("memory.oom_control", "memory.events"):
            if "oom_kill" in values.get(name, {}):
                return values[name]["oom_kill"]
        return None

    async def resource_use(self) -> ResourceUse:
        """Peak memory, CPU seconds and OOM kills of this sandbox so far."""
        self._require_open()
        return await asyncio.to_thread(self.resource_use_sync)

    def resource_use_sync(self) -> ResourceUse:
        """Blocking `resource_use`."""
        v = self._cgroup_values()
        peak = v.get("memory.max_usage_in_bytes", {}).get("") or v.get("memory.peak", {}).get("")
        cpu_ns = v.get("cpuacct.usage", {}).get("")
        cpu_us = v.get("cpu.stat", {}).get("usage_usec")
        cpu = cpu_ns / 1e9 if cpu_ns is not None else (cpu_us / 1e6 if cpu_us is not None else None)
        oom = v.get("memory.oom_control", {}).get("oom_kill")
        if oom is None:
            oom = v.get("memory.events", {}).get("oom_kill", 0)
        return ResourceUse(peak_memory_bytes=peak, cpu_s=cpu, oom_kills=oom)

    # -- files -------------------------------------------------------------------------------

    async def write_files(
        self,
        files: Mapping[str, bytes],
        *,
        dest: str | None = None,
        executable: Sequence[str] = (),
        dirs: Sequence[str] = (),
    ) -> None:
        """Copy files in as one tar stream (names checked, parents created, owner uid 1000).

        `dirs` are extra (possibly empty) directories to create.
        """
        data = archive.pack_files(files, executable=executable, dirs=dirs)
        async with self._lock:
            await asyncio.to_thread(self.write_tar_sync, data, dest)

    def write_tar_sync(self, data: bytes, dest: str | None = None, timeout: float = 300) -> None:
        """Blocking: extract a tar (already checked) under `dest` inside the sandbox."""
        container = self._require_open()
        api = self._client.api
        target = _resolve_dir(dest)
        exec_id = api.exec_create(
            container.id,
            [
                "sh",
                "-c",
                'mkdir -p -- "$1" && exec tar -x -f - -C "$1" --no-same-owner',
                "sh",
                target,
            ],
            stdin=True,
            stdout=True,
            stderr=True,
            user=AGENT_USER,
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = _raw_socket(sock)
        output = CappedBuffer(64 << 10)
        try:
            raw.settimeout(timeout)
            raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
            while True:
                chunk = raw.recv(65536)
                if not chunk:
                    break
                output.write(chunk)
        except OSError as e:
            raise SandboxFileError(f"copying files into {self.name} failed: {e}") from e
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        code = api.exec_inspect(exec_id).get("ExitCode")
        if code != 0:
            message = _strip_frames(output.getvalue()).decode("utf-8", "replace").strip()
            raise SandboxFileError(
                f"copying files into {self.name}:{target} failed (tar exit {code}): {message}"
            )

    async def read_files(
        self,
        paths: Sequence[str],
        *,
        max_bytes: int = 64 << 20,
        missing_ok: bool = False,
    ) -> dict[str, bytes]:
        """Copy regular files out (directories recursively); see `Sandbox.read_files`."""
        unpacked = await self.read_archive(paths, max_bytes=max_bytes, missing_ok=missing_ok)
        return unpacked.files

    async def read_archive(
        self,
        paths: Sequence[str],
        *,
        max_bytes: int = 64 << 20,
        max_files: int = MAX_READ_FILES,
        missing_ok: bool = False,
        timeout: float = READ_TIMEOUT_S,  # noqa: ASYNC109 - enforced by killing inside the box
    ) -> archive.Unpacked:
        """Like `read_files`, also reporting refused members (symlinks, devices, bad names).

        Strict: the reading `tar` must exit 0 within `timeout` seconds and its stream must be
        a complete archive, or nothing is returned (`SandboxFileError`; `ArchiveError` for a
        cap, naming the file). No partial result is ever returned.
        """
        async with self._lock:
            return await asyncio.to_thread(
                self.read_archive_sync, paths, max_bytes, missing_ok, timeout, max_files
            )

    def read_archive_sync(
        self,
        paths: Sequence[str],
        max_bytes: int = 64 << 20,
        missing_ok: bool = False,
        timeout: float = READ_TIMEOUT_S,
        max_files: int = MAX_READ_FILES,
    ) -> archive.Unpacked:
        """Blocking `read_archive`.

        Between execs no process of the agent runs (each exec ends all it left), so nothing
        in the sandbox can stop, feed or race this read; the time bound and the strict exit
        check are the second line.
        """
        container = self._require_open()
        rels = _covering_paths([_relative_to_workdir(p) for p in paths])
        if not rels:
            return archive.Unpacked()
        api = self._client.api
        argv = ["tar", "-c", "-f", "-", "-C", WORKDIR]
        if missing_ok:
            argv.append("--ignore-failed-read")  # missing paths: a warning, exit status 0
        exec_id = api.exec_create(
            container.id, [*argv, "--", *rels], stdout=True, stderr=True, user=AGENT_USER
        )["Id"]
        cap = max_bytes + max_bytes // 8 + (1 << 20)  # tar headers and padding
        watch = _Watch()
        watcher = threading.Thread(
            target=self._watch_exec, args=(exec_id, timeout, watch), daemon=True
        )
        watcher.start()
        reader: _ExecStdout | None = None
        refused: ArchiveError | None = None
        unpacked = archive.Unpacked()
        try:
            reader = _ExecStdout(api.exec_start(exec_id, stream=True, demux=True), cap)
            try:
                unpacked = archive.unpack_files(reader, max_bytes=max_bytes, max_files=max_files)
                reader.drain_padding()
            except ArchiveError as e:
                refused = e
        except (DockerException, OSError) as e:
            if not (watch.timed_out or watch.force_killed or self._closed):
                raise SandboxFileError(f"reading {rels} from {self.name} failed: {e}") from e
        finally:
            if reader is not None:
                reader.close()
            if refused is not None and not watch.done.is_set():
                self._end_leftovers()  # stop the tar mid-stream
            watch.done.set()
        stderr = reader.stderr.text().strip() if reader is not None else ""
        if refused is not None and refused.member is not None:
            raise refused
        if watch.timed_out or watch.force_killed or self._closed:
            raise SandboxFileError(
                f"reading {rels} from {self.name} did not finish within {timeout:g} s "
                "(the reader was killed); nothing was read"
            )
        if refused is not None:
            if refused.member is None and self._exit_code(exec_id) != 0:
                raise SandboxFileError(
                    f"reading {rels} from {self.name} failed: {refused} ({stderr})"
                ) from refused
            raise refused
        code = self._exit_code(exec_id)
        if code != 0:
            raise SandboxFileError(
                f"reading {rels} from {self.name} failed (tar exit {code}): {stderr}"
            )
        if unpacked.rejected:
            log.warning("sandbox.files_rejected", name=self.name, rejected=unpacked.rejected)
        return unpacked


class _ExecStdout(io.RawIOBase):
    """The stdout of a demultiplexed exec stream as a file, capped; stderr kept aside."""

    def __init__(self, chunks: Any, cap: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._cap = cap
        self._pending = memoryview(b"")
        self.total = 0
        self.stderr = CappedBuffer(16 << 10)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                chunk_out, chunk_err = next(self._chunks)
            except StopIteration:
                return 0
            if chunk_err:
                self.stderr.write(chunk_err)
            if chunk_out:
                self.total += len(chunk_out)
                if self.total > self._cap:
                    raise ArchiveError(f"the files read exceed {self._cap} bytes with headers")
                self._pending = memoryview(chunk_out)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def drain_padding(self) -> None:
        """Read to the end: after the end-of-archive marker only zero padding may follow."""
        while True:
            data = self.read(1 << 16)
            if not data:
                return
            if data.strip(b"\0"):
                raise ArchiveError("data after the end of the archive")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._chunks.close()
        super().close()


# -- helpers ----------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)[:40] or "run"


def _check_env(env: Mapping[str, str]) -> None:
    for key, value in env.items():
        if not _ENV_NAME.match(key) or not isinstance(value, str) or "\x00" in value:
            raise SandboxError(f"invalid environment variable {key!r}")


def _resolve_dir(path: str | None) -> str:
    if path is None:
        return WORKDIR
    if path.startswith("/"):
        clean = str(PurePosixPath(path))
        if ".." in PurePosixPath(clean).parts:
            raise SandboxError(f"invalid directory {path!r}")
        return clean
    return f"{WORKDIR}/{archive.safe_relpath(path)}"


def _relative_to_workdir(path: str) -> str:
    if path.startswith(WORKDIR + "/"):
        path = path[len(WORKDIR) + 1 :]
    elif path in (WORKDIR, WORKDIR + "/", ".", "./"):
        return "."
    return archive.safe_relpath(path)


def _raw_socket(sock: object) -> socket.socket:
    """The OS socket under the SDK's exec socket wrapper (unix or TCP transports)."""
    raw = getattr(sock, "_sock", sock)
    if not isinstance(raw, socket.socket):
        raise SandboxFileError(f"cannot stream files over a {type(raw).__name__} transport")
    return raw


def _covering_paths(rels: Sequence[str]) -> list[str]:
    """`rels` without duplicates and without paths inside another listed directory."""
    if "." in rels:
        return ["."]
    unique = sorted(set(rels))
    return [p for p in unique if not any(p.startswith(q + "/") for q in unique if q != p)]


def _strip_frames(data: bytes) -> bytes:
    """The payload of a multiplexed docker stream (8-byte frame headers removed)."""
    out = bytearray()
    i = 0
    while i + 8 <= len(data) and data[i] in (0, 1, 2) and data[i + 1 : i + 4] == b"\0\0\0":
        size = int.from_bytes(data[i + 4 : i + 8], "big")
        out += data[i + 8 : i + 8 + size]
        i += 8 + size
    return bytes(out) if i else data
