"""The sandbox conformance suite: what any `Sandbox` implementation must guarantee.

Each check starts its own sandboxes from a `ConformanceTarget`, tries to break out or break
something, and raises `ConformanceFailure` with the evidence when it succeeds. Used by
`tests/sandbox/test_conformance.py` (parametrized by implementation) and by
`coimprove sandbox check` (a user's own machine). The target image must provide `python3`.
"""

from __future__ import annotations

import asyncio
import json
import resource
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException
from pydantic import BaseModel

from coimprove.sandbox.docker import KILL_GRACE_S, DockerSandbox, count_containers
from coimprove.sandbox.engine import connect
from coimprove.sandbox.errors import ArchiveError, SandboxError, SandboxNotFoundError
from coimprove.sandbox.images import load_sandbox
from coimprove.sandbox.protocol import ExecResult, Sandbox, SandboxLimits

MiB = 1 << 20


class ConformanceFailure(SandboxError):
    """A conformance check found the sandbox not doing what it must."""


@dataclass
class ConformanceTarget:
    """An implementation under test: how to start a sandbox and how to count leftovers."""

    name: str
    start: Callable[[], Awaitable[Sandbox]]
    leftovers: Callable[[], Awaitable[int]]
    limits: SandboxLimits
    host_addresses: Sequence[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    """One conformance check; `run` returns a short description of the evidence."""

    name: str
    description: str
    run: Callable[[ConformanceTarget], Awaitable[str]]


class CheckResult(BaseModel):
    """The outcome of one check."""

    name: str
    description: str
    passed: bool
    detail: str
    seconds: float


def expect(condition: bool, message: str) -> None:
    """Raise `ConformanceFailure(message)` unless `condition`."""
    if not condition:
        raise ConformanceFailure(message)


def _brief(r: ExecResult) -> str:
    return (
        f"exit={r.exit_code} ended_by={r.ended_by} wall={r.wall_s:.2f}s "
        f"stdout={r.stdout[:200]!r} stderr={r.stderr[:200]!r}"
    )


# Lists the processes of the command's own uid other than the lister itself.
_AGENT_PROCS = r"""
import os
me, uid, found = os.getpid(), os.getuid(), []
for p in os.listdir('/proc'):
    if not p.isdigit() or int(p) == me:
        continue
    try:
        status = open(f'/proc/{p}/status').read()
    except OSError:
        continue
    fields = dict(l.split(':', 1) for l in status.splitlines() if ':' in l)
    if int(fields['Uid'].split()[0]) == uid:
        found.append(fields['Name'].strip())
print(len(found), ' '.join(found))
"""


async def _no_agent_processes_left(sb: Sandbox, target: ConformanceTarget) -> str:
    """After a timeout: the sandbox is gone, or it works and no agent process survived."""
    closed = getattr(sb, "closed", False)
    if closed:
        return "container was killed and removed"
    r = await sb.exec(["python3", "-c", _AGENT_PROCS], timeout=20)
    expect(r.ok, f"sandbox unusable after the timeout: {_brief(r)}")
    count = int(r.stdout.split()[0])
    expect(count == 0, f"{count} agent processes survived the timeout: {r.stdout.strip()}")
    return "container reused, no agent process left"


# -- the checks -------------------------------------------------------------------------------


async def check_exit_codes(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        for code in (0, 1, 3, 42, 255):
            r = await sb.exec(f"exit {code}")
            expect(r.exit_code == code and r.ended_by == "exit", f"exit {code}: {_brief(r)}")
        r = await sb.exec(["false"])
        expect(r.exit_code == 1 and r.ended_by == "exit", f"false: {_brief(r)}")
    return "0 1 3 42 255 and argv `false` reported exactly"


async def check_output_capture(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        r = await sb.exec("printf 'out h\\303\\251llo \\342\\234\\223\\n'; printf 'err\\n' >&2")
        expect(r.stdout == "out héllo ✓\n", f"stdout wrong: {_brief(r)}")
        expect(r.stderr == "err\n", f"stderr wrong: {_brief(r)}")
        expect(not (r.stdout_truncated or r.stderr_truncated), "small output marked truncated")
    return "stdout and stderr separate, UTF-8 intact"


async def check_output_flood(t: ConformanceTarget) -> str:
    cap = t.limits.output_bytes
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with await t.start() as sb:
        r = await sb.exec(
            "head -c 100000000 /dev/zero; head -c 20000000 /dev/zero >&2", timeout=120
        )
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb) / 1024
    expect(r.ended_by == "exit" and r.exit_code == 0, f"flood did not finish: {_brief(r)}")
    expect(r.stdout_truncated and r.stderr_truncated, "a 100 MB flood was not marked truncated")
    expect(len(r.stdout.encode()) <= cap + 256, f"kept {len(r.stdout.encode())} B > cap {cap}")
    expect(r.stdout_bytes == 100_000_000, f"counted {r.stdout_bytes} stdout bytes, not 1e8")
    expect(grown_mb < 64, f"host process grew by {grown_mb:.0f} MB while reading the flood")
    return f"100 MB stdout + 20 MB stderr kept to {cap} B each in {r.wall_s:.1f}s"


async def check_timeout_sleep(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        started = time.monotonic()
        r = await sb.exec(["sleep", "1000"], timeout=1)
        took = time.monotonic() - started
        expect(r.ended_by == "timeout", f"sleep 1000 with timeout 1: {_brief(r)}")
        expect(took <= 3.0, f"took {took:.2f}s (> timeout + 2 s)")
        after = await _no_agent_processes_left(sb, t)
    return f"killed after {took:.2f}s; {after}"


async def check_timeout_busy_loop(t: ConformanceTarget) -> str:
    cmd = "setsid sh -c 'while :; do :; done' & sleep 1000 & while :; do :; done"
    async with await t.start() as sb:
        started = time.monotonic()
        r = await sb.exec(cmd, timeout=1)
        took = time.monotonic() - started
        expect(r.ended_by == "timeout", f"busy loop with timeout 1: {_brief(r)}")
        expect(took <= 3.0, f"took {took:.2f}s (> timeout + 2 s)")
        after = await _no_agent_processes_left(sb, t)
    return f"busy loop + setsid child killed after {took:.2f}s; {after}"


_FORK_BOMB = (
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
)


async def check_fork_bomb(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        started = time.monotonic()
        r = await sb.exec(["python3", "-c", _FORK_BOMB], timeout=3)
        took = time.monotonic() - started
        expect(r.ended_by in ("timeout", "killed"), f"fork bomb: {_brief(r)}")
        # No pid may be left for the in-container kill, so stopping can take the kill grace
        # (then the container itself is killed) on top of timeout + 2 s.
        bound = 3 + KILL_GRACE_S + 2.0
        expect(took <= bound, f"fork bomb took {took:.2f}s to stop (> {bound:.1f} s)")
        after = await _no_agent_processes_left(sb, t)
    async with await t.start() as fresh:
        ok = await fresh.exec(["true"], timeout=30)
        expect(ok.ok, f"a new sandbox does not work after the fork bomb: {_brief(ok)}")
    return f"contained by pids={t.limits.pids}, stopped after {took:.2f}s; {after}"


async def check_memory_bomb(t: ConformanceTarget) -> str:
    size_mb = t.limits.memory_mb * 2
    async with await t.start() as sb:
        r = await sb.exec(["python3", "-c", f"x = b'x' * ({size_mb} * 1024 * 1024)"], timeout=60)
        expect(r.ended_by == "oom", f"allocating {size_mb} MB: {_brief(r)}")
        ok = await sb.exec(["true"])
        expect(ok.ok, f"sandbox unusable after the OOM kill: {_brief(ok)}")
    return f"{size_mb} MB allocation reported as oom (limit {t.limits.memory_mb} MB)"


async def check_disk_fill(t: ConformanceTarget) -> str:
    cap = t.limits.tmpfs_mb * MiB
    want = cap + 64 * MiB
    async with await t.start() as sb:
        r = await sb.exec(
            f"head -c {want} /dev/zero > fill; echo rc=$?; stat -c %s fill", timeout=60
        )
        expect(r.ended_by == "exit", f"disk fill: {_brief(r)}")
        lines = r.stdout.split()
        expect(len(lines) == 2 and lines[0] != "rc=0", f"writing past the cap worked: {_brief(r)}")
        size = int(lines[1])
        expect(size <= cap, f"wrote {size} B, more than the {cap} B cap")
        expect("No space left" in r.stderr, f"no ENOSPC reported: {_brief(r)}")
    return f"stopped at {size / MiB:.0f} MiB (cap {t.limits.tmpfs_mb} MiB) with ENOSPC"


async def check_readonly_root(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        for cmd in (
            "touch /evil",
            "echo x >> /etc/passwd",
            "mkdir /usr/evil",
            "cp /bin/sh /usr/local/bin/sh2",
        ):
            r = await sb.exec(cmd)
            expect(r.exit_code not in (0, None), f"`{cmd}` succeeded: {_brief(r)}")
        r = await sb.exec("echo ok > inwork && cat inwork")
        expect(r.ok and r.stdout == "ok\n", f"the work dir is not writable: {_brief(r)}")
    return "writes to /, /etc, /usr fail; the work dir is writable"


_NET_PROBE = r"""
import json, socket, sys
out = {"ifaces": [], "dns": None, "tcp": {}}
for line in open('/proc/net/dev').read().splitlines()[2:]:
    out["ifaces"].append(line.split(':')[0].strip())
try:
    socket.getaddrinfo("deb.debian.org", 80)
    out["dns"] = "resolved"
except OSError as e:
    out["dns"] = f"failed: {e}"
for addr in sys.argv[1:]:
    for port in (22, 80, 443, 2375, 2376):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((addr, port))
            out["tcp"][f"{addr}:{port}"] = "connected"
        except ConnectionRefusedError:
            out["tcp"][f"{addr}:{port}"] = "refused (reachable!)"
        except OSError as e:
            out["tcp"][f"{addr}:{port}"] = f"failed: {e}"
        finally:
            s.close()
print(json.dumps(out))
"""


async def check_no_network(t: ConformanceTarget) -> str:
    addrs = [*t.host_addresses, "1.1.1.1"]
    async with await t.start() as sb:
        r = await sb.exec(["python3", "-c", _NET_PROBE, *addrs], timeout=60)
    expect(r.ok, f"network probe failed to run: {_brief(r)}")
    probe = json.loads(r.stdout)
    expect(probe["ifaces"] == ["lo"], f"interfaces besides lo: {probe['ifaces']}")
    expect(str(probe["dns"]).startswith("failed"), f"DNS lookup worked: {probe['dns']}")
    reached = {k: v for k, v in probe["tcp"].items() if not v.startswith("failed")}
    expect(not reached, f"TCP reached the outside: {reached}")
    return f"only lo; DNS fails; TCP to {', '.join(addrs)} fails"


async def check_no_docker_socket(t: ConformanceTarget) -> str:
    probe = (
        "import os\n"
        "hits = [os.path.join(d, f) for d, _, fs in os.walk('/')"
        " if not d.startswith(('/proc', '/sys')) for f in fs if 'docker' in f and 'sock' in f]\n"
        "print(repr(hits), os.environ.get('DOCKER_HOST'))\n"
    )
    async with await t.start() as sb:
        r = await sb.exec(["python3", "-c", probe], timeout=60)
    expect(r.ok, f"probe failed: {_brief(r)}")
    expect(r.stdout.strip() == "[] None", f"docker socket or DOCKER_HOST visible: {r.stdout!r}")
    return "no docker socket anywhere in the filesystem, no DOCKER_HOST"


async def check_non_root(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        r = await sb.exec("id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status")
        expect(r.ok, f"probe failed: {_brief(r)}")
        lines = r.stdout.split("\n")
        expect(lines[0] != "0", f"commands run as root: {r.stdout!r}")
        expect("0000000000000000" in r.stdout, f"capabilities not dropped: {r.stdout!r}")
        expect("NoNewPrivs:\t1" in r.stdout, f"no-new-privileges not set: {r.stdout!r}")
        k = await sb.exec("kill -9 1")
        expect(k.exit_code != 0, f"the command could kill PID 1: {_brief(k)}")
        ok = await sb.exec(["true"])
        expect(ok.ok, f"sandbox broke after trying to kill PID 1: {_brief(ok)}")
    return f"uid {lines[0]}, CapEff 0, NoNewPrivs 1, cannot signal PID 1"


def _make_marker() -> tuple[Path, str]:
    """A directory on the host holding a file with a random secret (removed by the caller)."""
    secret = secrets.token_hex(16)
    base = Path.home() if Path.home().is_dir() else Path(tempfile.gettempdir())
    marker_dir = Path(tempfile.mkdtemp(prefix=".coimprove-conformance-", dir=base))
    (marker_dir / "marker.txt").write_text(secret)
    return marker_dir, secret


_OWN_SOURCE = str(Path(__file__).resolve())


async def check_host_invisible(t: ConformanceTarget) -> str:
    marker_dir, secret = _make_marker()
    paths = [str(marker_dir / "marker.txt"), str(marker_dir), _OWN_SOURCE]
    try:
        async with await t.start() as sb:
            r = await sb.exec(
                [
                    "sh",
                    "-c",
                    'for p in "$@"; do test -e "$p" && echo "visible: $p"; done; :',
                    "sh",
                    *paths,
                ]
            )
            g = await sb.exec(
                ["sh", "-c", f"grep -rIl {secret} /etc /home /root /sandbox /tmp 2>/dev/null; :"]
            )
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)
    expect(r.ok and r.stdout == "", f"host paths visible: {r.stdout!r} {_brief(r)}")
    expect(g.stdout == "", f"host marker content found: {g.stdout!r}")
    return "a host marker file and the host's source tree are not visible"


def _roundtrip_files() -> dict[str, bytes]:
    rng = secrets.token_bytes
    return {
        "bin/all-bytes.bin": bytes(range(256)) * 64,
        "bin/random.bin": rng(3 * MiB + 7),
        "données/ünïcödé 😀 name.txt": "héllo wörld ✓\n".encode(),
        "a/b/c/d/e/deep.txt": b"deep\n",
        "empty.txt": b"",
        "spaces and 'quotes'.txt": b"q\n",
    }


async def check_files_roundtrip(t: ConformanceTarget) -> str:
    files = _roundtrip_files()
    async with await t.start() as sb:
        await sb.write_files(files)
        back = await sb.read_files(sorted({p.split("/")[0] for p in files}))
        expect(set(back) == set(files), f"names differ: {sorted(set(back) ^ set(files))}")
        bad = [p for p in files if back[p] != files[p]]
        expect(not bad, f"content differs for {bad}")
        r = await sb.exec("ln -s /etc/passwd evil-link && mkdir -p d && ln -s / d/root-link")
        expect(r.ok, f"could not create the symlinks: {_brief(r)}")
        hostile = await sb.read_files(["evil-link", "d"])
        expect(not hostile, f"symlinks came out of the sandbox: {sorted(hostile)}")
    return f"{len(files)} files (binary, unicode, nested, empty) byte-exact; symlinks refused"


async def check_concurrent(t: ConformanceTarget) -> str:
    async def one(i: int) -> str:
        async with await t.start() as sb:
            r = await sb.exec(["python3", "-c", f"print({i} * 7)"], timeout=60)
            expect(r.ok and r.stdout == f"{i * 7}\n", f"sandbox {i}: {_brief(r)}")
            return r.stdout

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(8)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    expect(not failures, f"{len(failures)} of 8 failed: {failures[:2]}")
    return f"8 sandboxes at once in {time.monotonic() - started:.1f}s"


async def check_exec_ends_its_daemons(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        r = await sb.exec("setsid sh -c 'sleep 1000' </dev/null >/dev/null 2>&1 & echo started")
        expect(r.ok and r.stdout == "started\n", f"could not start the daemon: {_brief(r)}")
        expect(r.wall_s < 10, f"the exec waited for its daemon: {_brief(r)}")
        left = await sb.exec(["python3", "-c", _AGENT_PROCS], timeout=20)
        expect(left.ok, f"sandbox unusable after the exec: {_brief(left)}")
        count = int(left.stdout.split()[0])
        expect(count == 0, f"{count} processes outlived their exec: {left.stdout.strip()}")
    return "a setsid daemon ends with the exec that started it"


async def check_own_exit_137(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        for cmd in ("exit 137", "kill -9 $$"):
            r = await sb.exec(cmd, timeout=20)
            expect(
                r.exit_code == 137 and r.ended_by == "exit",
                f"`{cmd}` (the command's own doing) was not reported as an exit: {_brief(r)}",
            )
    return "`exit 137` and a SIGKILL the command sends itself are exits, not our kill"


STALL_PROBE = """\
import os, signal, time
me = os.getpid()
while True:
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != me:
            try:
                if open(f"/proc/{p}/cmdline", "rb").read().startswith(b"tar\\0"):
                    os.kill(int(p), signal.SIGSTOP)
            except OSError:
                pass
    time.sleep(0.005)
"""
"""A detached process that SIGSTOPs every `tar` it sees (issue 29's stalling probe)."""

FORGE_PROBE = """\
import io, os, signal, tarfile, time
data = b'{"accuracy": 1.0, "forged": true}'
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
    info = tarfile.TarInfo("out/metrics.json"); info.size = len(data); info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))
forged = buf.getvalue()
me = os.getpid()
while True:
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            if open(f"/proc/{p}/cmdline", "rb").read().startswith(b"tar\\0"):
                os.kill(int(p), signal.SIGSTOP)
                with open(f"/proc/{p}/fd/1", "wb") as fh:
                    fh.write(forged)
                os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.002)
"""
"""A detached process that stops `tar`, writes its own archive into the tar's stdout and kills
it (issue 31's forged result)."""

_GENUINE = b'{"accuracy": 0.1}'
_READ_BOUND_S = 30.0


def _detached(payload: str) -> list[str]:
    """argv: write the genuine metrics, start `payload` in its own session, wait until it
    runs, exit 0."""
    launch = (
        "import os, subprocess, sys, time\n"
        "open('out/metrics.json', 'wb').write(sys.argv[1].encode())\n"
        "subprocess.Popen([sys.executable, '-c', sys.argv[2]], start_new_session=True,"
        " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "end = time.monotonic() + 10\n"
        "while not os.path.exists('ready') and time.monotonic() < end:\n"
        "    time.sleep(0.01)\n"
    )
    return ["python3", "-c", launch, _GENUINE.decode(), "open('ready', 'w').close()\n" + payload]


async def _read_after(t: ConformanceTarget, payload: str) -> tuple[dict[str, bytes] | str, float]:
    """Run `payload` detached, then read out/ as result collection does (missing paths allowed):
    the files, or why the read failed."""
    async with await t.start() as sb:
        await sb.exec("mkdir -p out")
        r = await sb.exec(_detached(payload), timeout=20)
        expect(r.ok, f"the probe did not start: {_brief(r)}")
        started = time.monotonic()
        try:
            files: dict[str, bytes] | str = await asyncio.wait_for(
                sb.read_files(["out"], missing_ok=True), _READ_BOUND_S
            )
        except TimeoutError:
            files = f"the read did not return within {_READ_BOUND_S:g} s"
        except SandboxError as err:
            files = f"{type(err).__name__}: {err}"
        return files, time.monotonic() - started


async def check_collection_stall(t: ConformanceTarget) -> str:
    files, took = await _read_after(t, STALL_PROBE)
    expect(not isinstance(files, str), f"a detached tar-stopper broke the read: {files}")
    assert not isinstance(files, str)
    expect(files.get("out/metrics.json") == _GENUINE, f"read back {files!r}")
    return f"a detached tar-stopper did not stall the read ({took:.2f}s, genuine file)"


async def check_collection_forge(t: ConformanceTarget) -> str:
    files, took = await _read_after(t, FORGE_PROBE)
    if isinstance(files, str):  # a refused read is safe; only a forged success is not
        expect("did not return" not in files, f"the forger stalled the read: {files}")
        return f"the read was refused, not forged: {files}"
    got = files.get("out/metrics.json")
    expect(got == _GENUINE, f"the read returned forged content: {got!r}")
    return f"a detached tar-forger could not change what was read ({took:.2f}s)"


async def check_flood_after_exit(t: ConformanceTarget) -> str:
    flood = "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"
    launch = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {flood!r}], start_new_session=True)\n"
    )
    cmd = ["python3", "-c", launch]
    async with await t.start() as sb:
        r = await sb.exec(cmd, timeout=30)
        expect(r.ended_by == "exit" and r.exit_code == 0, f"flood after exit: {_brief(r)}")
        kept = len(r.stdout.encode())
        expect(kept <= t.limits.output_bytes + 256, f"kept {kept} B of stdout, over the cap")
        after = await _no_agent_processes_left(sb, t)
    return f"ended with its main process after {r.wall_s:.2f}s; {after}"


_NAMES_PROBE = (
    "import os\n"
    "os.makedirs(b'names', exist_ok=True)\n"
    "for name in (b'names/bad-\\xff.txt', 'names/evil-\\u202etxt.exe'.encode(),\n"
    "             'names/nel-\\u0085.txt'.encode(), b'names/good.txt'):\n"
    "    open(name, 'wb').write(b'x')\n"
)


async def check_unsafe_result_names(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        r = await sb.exec(["python3", "-c", _NAMES_PROBE], timeout=20)
        expect(r.ok, f"could not create the files: {_brief(r)}")
        back = await sb.read_files(["names"])
        expect(set(back) == {"names/good.txt"}, f"read back {sorted(map(ascii, back))}")
    return "non-UTF-8, bidi-override and U+0085 names are refused; the safe file is read"


async def check_too_many_result_files(t: ConformanceTarget) -> str:
    async with await t.start() as sb:
        r = await sb.exec(
            [
                "python3",
                "-c",
                "import os\nos.makedirs('many')\n"
                "for i in range(12000): open(f'many/f{i}', 'w').close()\n",
            ],
            timeout=60,
        )
        expect(r.ok, f"could not create the files: {_brief(r)}")
        try:
            back = await sb.read_files(["many"])
        except ArchiveError as err:
            expect("more than" in str(err), f"refused without saying why: {err}")
            return f"12,000 files refused with a clear error: {err}"
        raise AssertionError(f"12,000 files were read ({len(back)}), past the file cap")


async def check_no_leftovers(t: ConformanceTarget) -> str:
    left = await t.leftovers()
    expect(left == 0, f"{left} sandbox containers of this suite are still there")
    return "zero labelled containers left by the suite"


CHECKS: tuple[Check, ...] = (
    Check("exit_codes", "exit codes are reported exactly", check_exit_codes),
    Check("output_capture", "stdout and stderr captured separately", check_output_capture),
    Check("output_flood", "a 100 MB output flood is truncated, host fine", check_output_flood),
    Check("timeout_sleep", "timeout kills `sleep 1000` within timeout+2s", check_timeout_sleep),
    Check(
        "timeout_busy_loop",
        "timeout kills a busy loop and setsid children",
        check_timeout_busy_loop,
    ),
    Check("fork_bomb", "a fork bomb is contained by the pids limit", check_fork_bomb),
    Check("memory_bomb", "a memory bomb is reported as oom", check_memory_bomb),
    Check("disk_fill", "filling the disk stops at the tmpfs cap", check_disk_fill),
    Check("readonly_root", "writes to / fail", check_readonly_root),
    Check("no_network", "no DNS, no TCP to the host or the internet", check_no_network),
    Check("no_docker_socket", "the docker socket is absent", check_no_docker_socket),
    Check("non_root", "commands run as non-root without capabilities", check_non_root),
    Check("host_invisible", "host files are not visible", check_host_invisible),
    Check(
        "files_roundtrip", "files round-trip byte-exactly; symlinks refused", check_files_roundtrip
    ),
    Check("concurrent", "8 sandboxes at once all succeed", check_concurrent),
    Check(
        "exec_ends_its_daemons",
        "a setsid daemon does not outlive its exec",
        check_exec_ends_its_daemons,
    ),
    Check("own_exit_137", "a command's own exit 137 is an exit", check_own_exit_137),
    Check(
        "collection_stall",
        "a detached process cannot stall reading files out",
        check_collection_stall,
    ),
    Check(
        "collection_forge",
        "a detached process cannot forge the files read out",
        check_collection_forge,
    ),
    Check(
        "flood_after_exit",
        "an exec ends with its main process despite a stdout flood",
        check_flood_after_exit,
    ),
    Check(
        "unsafe_result_names",
        "result files with unsafe names are refused",
        check_unsafe_result_names,
    ),
    Check(
        "too_many_result_files",
        "12,000 result files are refused, saying why",
        check_too_many_result_files,
    ),
    Check("no_leftovers", "no labelled containers remain", check_no_leftovers),
)
CHECK_NAMES = tuple(c.name for c in CHECKS)


async def run_check(check: Check, target: ConformanceTarget) -> CheckResult:
    """Run one check; failures and errors become a failed `CheckResult`."""
    started = time.monotonic()
    try:
        detail = await check.run(target)
        passed = True
    except ConformanceFailure as err:
        detail, passed = str(err), False
    except (SandboxError, DockerException, OSError, ValueError, KeyError) as err:
        detail, passed = f"{type(err).__name__}: {err}", False
    return CheckResult(
        name=check.name,
        description=check.description,
        passed=passed,
        detail=detail,
        seconds=time.monotonic() - started,
    )


async def run_conformance(
    target: ConformanceTarget,
    *,
    only: Collection[str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run the checks (all, or `only` those named) in order; `no_leftovers` always runs last."""
    unknown = set(only or ()) - set(CHECK_NAMES)
    if unknown:
        raise SandboxError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECK_NAMES)}")
    results: list[CheckResult] = []
    for check in CHECKS:
        if only and check.name not in only and check.name != "no_leftovers":
            continue
        result = await run_check(check, target)
        results.append(result)
        if on_result:
            on_result(result)
    return results


# -- the Docker implementation as a target ----------------------------------------------------


def host_addresses(client: docker.DockerClient) -> list[str]:
    """Addresses of the host as a container could try to reach it: the bridge gateway and the
    host's own outward-facing address."""
    found: list[str] = []
    try:
        for cfg in client.networks.get("bridge").attrs.get("IPAM", {}).get("Config") or []:
            if cfg.get("Gateway"):
                found.append(str(cfg["Gateway"]))
    except DockerException:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for a UDP connect
            found.append(s.getsockname()[0])
        except OSError:
            pass
    return list(dict.fromkeys(a for a in found if not a.startswith("127.")))


def docker_target(
    image: str = "python", *, client: docker.DockerClient | None = None
) -> ConformanceTarget:
    """A target that starts `DockerSandbox`es of `image` under a run id of its own."""
    client = client or connect()
    run_id = f"conformance-{uuid.uuid4().hex[:8]}"
    try:
        limits = load_sandbox(image).definition.limits
    except SandboxNotFoundError:
        limits = SandboxLimits()

    async def start() -> Sandbox:
        return await DockerSandbox.start(image, run_id=run_id, client=client)

    async def leftovers() -> int:
        return await asyncio.to_thread(count_containers, client, run_id=run_id)

    return ConformanceTarget(
        name=f"docker:{image}",
        start=start,
        leftovers=leftovers,
        limits=limits,
        host_addresses=host_addresses(client),
    )


IMPLEMENTATIONS: dict[str, Callable[..., ConformanceTarget]] = {"docker": docker_target}
"""Every Sandbox implementation the conformance tests run against."""
