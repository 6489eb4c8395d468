"""run_experiment: exactly the approved commit's files go in; metrics, resource use and result
files with digests come back (real Docker, real git)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import docker
import pytest

from coimprove.model import sha256_digest
from coimprove.sandbox.errors import SandboxError
from coimprove.sandbox.experiment import ExperimentSpec, inputs_digest, run_experiment
from coimprove.sandbox.images import BuiltImage
from coimprove.sandbox.protocol import SandboxLimits
from coimprove.sandbox.workspace import GitWorkspace

pytestmark = pytest.mark.docker

TRAIN = """\
import json, os, numpy as np
rng = np.random.default_rng(int(os.environ.get("SEED", "0")))
x = rng.normal(size=10_000)
with open("out/metrics.json", "w") as fh:
    json.dump({"mean": float(x.mean()), "variant": open("variant.txt").read().strip()}, fh)
with open("out/log.txt", "w") as fh:
    fh.write("trained\\n")
with open("out/weights.bin", "wb") as fh:
    fh.write(bytes(range(256)))
print("done", sorted(os.listdir(".")))
"""


def _read_uri(uri: str) -> bytes:
    return Path(uri.removeprefix("file://")).read_bytes()


@pytest.fixture
def ws(tmp_path: Path) -> GitWorkspace:
    return GitWorkspace.create(
        tmp_path / "ws",
        run_id="exp",
        files={"train.py": TRAIN.encode(), "variant.txt": b"baseline\n", "old.txt": b"old\n"},
    )


async def test_runs_exactly_the_given_commit(
    ws: GitWorkspace, docker_client: docker.DockerClient, python_image: BuiltImage, tmp_path: Path
) -> None:
    approved = ws.propose_commit(
        files={"variant.txt": "approved\n", "old.txt": None}, message="a", author="agent"
    )
    ws.propose_commit(files={"variant.txt": "other\n"}, message="b", author="agent")
    spec = ExperimentSpec(command=["python3", "train.py"], env={"SEED": "1"}, timeout_s=60)
    result = await run_experiment(
        spec, workspace=ws, commit=approved, client=docker_client, out_dir=tmp_path / "results"
    )
    assert result.ok, result.stderr
    assert result.commit == approved
    assert result.image == python_image.tag
    assert result.inputs_digest == inputs_digest(ws.files_at(approved))
    assert result.metrics is not None
    assert result.metrics["variant"] == "approved"
    assert "old.txt" not in result.stdout  # files of other commits never reach the sandbox
    assert "'train.py', 'variant.txt'" in result.stdout
    by_name = {a.name: a for a in result.artifacts}
    assert set(by_name) == {"out/metrics.json", "out/log.txt", "out/weights.bin"}
    assert json.loads(by_name["out/metrics.json"].content or "") == result.metrics
    weights = by_name["out/weights.bin"]
    assert weights.content is None
    assert weights.digest == "sha256:" + hashlib.sha256(bytes(range(256))).hexdigest()
    assert weights.uri is not None
    assert _read_uri(weights.uri) == bytes(range(256))
    assert result.resources.peak_memory_bytes
    assert result.resources.peak_memory_bytes > 1 << 20
    assert result.resources.cpu_s
    assert result.resources.cpu_s > 0
    assert result.resources.oom_kills == 0


async def test_default_commit_is_the_run_branch_head(
    ws: GitWorkspace, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    spec = ExperimentSpec(command="python3 train.py")
    result = await run_experiment(spec, workspace=ws, client=docker_client)
    assert result.commit == ws.head
    assert result.metrics is not None
    assert result.metrics["variant"] == "baseline"


async def test_inline_files_without_workspace_and_metric_errors(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    spec = ExperimentSpec(
        command="python3 go.py",
        files={"go.py": "open('out/metrics.json','w').write('[1, 2]')\n"},
    )
    result = await run_experiment(spec, client=docker_client)
    assert result.ok
    assert result.commit is None
    assert result.inputs_digest == inputs_digest({"go.py": spec.files["go.py"].encode()})
    assert result.metrics is None
    assert result.metrics_error is not None
    assert "not a JSON object" in result.metrics_error
    missing = await run_experiment(ExperimentSpec(command="true"), client=docker_client)
    assert missing.metrics_error == "out/metrics.json was not written"
    assert missing.artifacts == []


async def test_timeouts_and_ooms_are_reported(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    slow = await run_experiment(
        ExperimentSpec(command="sleep 100", timeout_s=1), client=docker_client
    )
    assert slow.ended_by == "timeout"
    hog = await run_experiment(
        ExperimentSpec(
            command=["python3", "-c", "x = b'x' * (400 << 20)"],
            limits=SandboxLimits(memory_mb=128),
        ),
        client=docker_client,
    )
    assert hog.ended_by == "oom"
    assert hog.resources.oom_kills == 1


async def test_spec_files_may_not_replace_commit_files(
    ws: GitWorkspace, docker_client: docker.DockerClient
) -> None:
    spec = ExperimentSpec(command="true", files={"train.py": "print('swapped')"})
    with pytest.raises(SandboxError, match="would replace"):
        await run_experiment(spec, workspace=ws, client=docker_client)
    with pytest.raises(SandboxError, match="needs the workspace"):
        await run_experiment(ExperimentSpec(command="true"), commit=ws.head, client=docker_client)


def test_inputs_digest_depends_on_names_and_bytes() -> None:
    a = inputs_digest({"a": b"1", "b": b"2"})
    assert a == inputs_digest({"b": b"2", "a": b"1"})
    assert a != inputs_digest({"a": b"1", "b": b"3"})
    assert a != inputs_digest({"a": b"1", "c": b"2"})
    assert a.startswith("sha256:")
    assert sha256_digest(b"") != a
