"""DockerSandbox behaviour beyond the conformance suite: grants, env, files API, cancellation,
limits, the reaper after a SIGKILLed owner (real Docker)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import docker
import pytest

from coimprove.sandbox.docker import LABEL_RUN, DockerSandbox, count_containers, reap
from coimprove.sandbox.errors import (
    ArchiveError,
    ImageMissingError,
    NetworkNotAllowedError,
    SandboxClosedError,
    SandboxFileError,
)
from coimprove.sandbox.images import BuiltImage
from coimprove.sandbox.protocol import Sandbox

pytestmark = pytest.mark.docker


@pytest.fixture
async def sb(docker_client: docker.DockerClient, python_image: BuiltImage) -> DockerSandbox:
    box = await DockerSandbox.start("python", run_id="test-docker", client=docker_client)
    yield box  # type: ignore[misc]
    await box.close()


async def test_it_is_a_sandbox(sb: DockerSandbox) -> None:
    assert isinstance(sb, Sandbox)
    assert sb.workdir == "/sandbox"


async def test_container_is_hardened_as_configured(
    sb: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    host = docker_client.api.inspect_container(sb.id)["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == sb.limits.pids
    assert host["Memory"] == host["MemorySwap"] == sb.limits.memory_mb << 20
    assert host["Init"] is True
    assert not host.get("Binds")
    assert "size=64m" in host["Tmpfs"]["/sandbox"]


async def test_network_needs_an_explicit_grant(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    with pytest.raises(NetworkNotAllowedError):
        await DockerSandbox.start("python", network="bridge", client=docker_client)


async def test_env_and_workdir_reach_the_command(sb: DockerSandbox) -> None:
    await sb.write_files({"sub/x.txt": b"x"})
    r = await sb.exec(
        "echo $GREETING $OPENBLAS_NUM_THREADS; pwd; ls", env={"GREETING": "hi"}, workdir="sub"
    )
    assert r.stdout == "hi 1\n/sandbox/sub\nx.txt\n"


async def test_only_our_kill_is_reported_as_killed(sb: DockerSandbox) -> None:
    # The command's own `exit 137`, or a SIGKILL it sends itself, is its own exit (issue 31).
    r = await sb.exec("exit 137")
    assert (r.ended_by, r.exit_code) == ("exit", 137)
    r = await sb.exec("kill -9 $$")
    assert (r.ended_by, r.exit_code) == ("exit", 137)
    r = await sb.exec(["sleep", "100"], timeout=0.5)
    assert r.ended_by == "timeout"


async def test_cancelling_an_exec_kills_its_processes(sb: DockerSandbox) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sb.exec("sleep 1000 & sleep 1000"), timeout=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = await sb.exec("ls /proc | grep -c '^[0-9]'")
        # docker-init, the keepalive, this sh and grep (and ls) only
        if int(r.stdout) <= 5:
            break
        await asyncio.sleep(0.2)
    r = await sb.exec(["sh", "-c", "grep -l sleep /proc/[0-9]*/comm 2>/dev/null | wc -l"])
    assert r.stdout.strip() == "1"  # the keepalive `sleep` (uid 65534) only


async def test_files_api_edges(sb: DockerSandbox) -> None:
    await sb.write_files({"a.txt": b"A"}, dest="/tmp/in")
    r = await sb.exec(["cat", "/tmp/in/a.txt"])
    assert r.stdout == "A"
    with pytest.raises(ArchiveError):
        await sb.write_files({"../../etc/x": b"x"})
    with pytest.raises(SandboxFileError, match="Cannot stat"):
        await sb.read_files(["missing.txt"])
    assert await sb.read_files(["missing.txt"], missing_ok=True) == {}
    await sb.exec("head -c 3000000 /dev/urandom > big.bin")
    with pytest.raises(ArchiveError, match="more than the cap"):
        await sb.read_files(["big.bin"], max_bytes=1_000_000)
    assert len((await sb.read_files(["/sandbox/big.bin"]))["big.bin"]) == 3_000_000


async def test_write_past_the_tmpfs_cap_fails_loudly(sb: DockerSandbox) -> None:
    with pytest.raises(SandboxFileError, match="tar exit 2"):
        await sb.write_files({"huge.bin": b"\0" * (80 << 20)})


async def test_limit_overrides_apply(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    async with await DockerSandbox.start(
        "python", limits={"memory_mb": 128, "pids": 32, "timeout_s": 1}, client=docker_client
    ) as box:
        r = await box.exec(
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
        )
        assert r.stdout.split() == [str(128 << 20), "32"]
        slow = await box.exec(["sleep", "30"])  # the default timeout comes from the limits
        assert slow.ended_by == "timeout"
        assert slow.wall_s < 3


async def test_closed_sandbox_refuses_work_and_close_is_idempotent(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    box = await DockerSandbox.start("python", run_id="test-close", client=docker_client)
    await box.close()
    await box.close()
    assert count_containers(docker_client, run_id="test-close") == 0
    with pytest.raises(SandboxClosedError):
        await box.exec(["true"])


async def test_unknown_images_are_never_pulled(docker_client: docker.DockerClient) -> None:
    with pytest.raises(ImageMissingError, match="coimprove sandbox build"):
        await DockerSandbox.start("coimprove/no-such-image:1", client=docker_client)


def test_reaper_removes_containers_of_a_sigkilled_owner(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    run_id = f"orphan-{os.getpid()}"
    script = textwrap.dedent(
        f"""
        import os, signal
        from coimprove.sandbox.docker import DockerSandbox
        DockerSandbox.start_sync("python", run_id="{run_id}")
        print("started", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -9, proc.stderr
    assert count_containers(docker_client, run_id=run_id) == 1
    live = DockerSandbox.start_sync("python", run_id="live-owner", client=docker_client)
    try:
        removed = reap(docker_client)
        assert count_containers(docker_client, run_id=run_id) == 0
        assert any(run_id in name for name in removed)
        assert count_containers(docker_client, run_id="live-owner") == 1  # owner alive: kept
        labels = docker_client.containers.get(live.id).labels
        assert labels[LABEL_RUN] == "live-owner"
    finally:
        live.close_sync()


async def test_a_setsid_daemon_does_not_outlive_its_exec(sb: DockerSandbox) -> None:
    # Issue 31 item 5: whatever an exec leaves running ends with it, before anything else runs.
    r = await sb.exec("setsid sh -c 'trap \"\" HUP TERM; sleep 1000' </dev/null >/dev/null 2>&1 &")
    assert r.ok
    listing = "for p in /proc/[0-9]*; do grep -q '^Uid:.1000' $p/status && cat $p/comm; done"
    left = await sb.exec(["sh", "-c", listing + " 2>/dev/null; :"])
    assert left.ok
    assert "sleep" not in left.stdout.split(), left.stdout  # the daemon is gone
