"""Run one experiment spec in a fresh sandbox and bring its results back as artifacts.

`run_experiment` is what the experiment effect node calls after a gate approved the spec (and,
for code, the commit): a fresh `DockerSandbox`, exactly the files of that commit copied in (plus
the spec's own inline files, which may not replace any of them), the command run under the
spec's limits, then the metrics JSON, result files, output and resource use collected.
Everything that comes out is treated as hostile (regular files only, capped).
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
from pydantic import BaseModel, ConfigDict, Field

from coimprove._log import get_logger
from coimprove.model import Artifact, sha256_digest
from coimprove.sandbox import archive
from coimprove.sandbox.docker import DockerSandbox
from coimprove.sandbox.errors import SandboxError
from coimprove.sandbox.protocol import EndedBy, ResourceUse, SandboxLimits
from coimprove.sandbox.workspace import GitWorkspace

log = get_logger("coimprove.sandbox.experiment")

INLINE_TEXT_MAX = 64 << 10


class ExperimentSpec(BaseModel):
    """What to run: the data an experiment gate shows and approves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | list[str] = Field(description="argv, or a string run with `sh -c`")
    files: dict[str, str] = Field(
        default_factory=dict, description="inline text files (path under /sandbox → content)"
    )
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = Field(None, description="relative to /sandbox (default: /sandbox)")
    timeout_s: float = Field(60.0, gt=0)
    limits: SandboxLimits | None = Field(None, description="overrides the sandbox's limits")
    expected_outcome: str = Field("", description="what the proposer expects to see")
    metrics_file: str = Field("out/metrics.json", description="JSON object the command writes")
    collect: list[str] = Field(
        default_factory=lambda: ["out"], description="paths under /sandbox returned as artifacts"
    )
    max_result_bytes: int = Field(16 << 20, ge=0, description="cap on collected files")


class ExperimentResult(BaseModel):
    """What came back: exit, output, metrics, resource use and result files with digests."""

    model_config = ConfigDict(frozen=True)

    image: str
    commit: str | None = None
    inputs_digest: str = Field(description="sha256 over the names and digests of files sent in")
    exit_code: int | None
    ended_by: EndedBy
    wall_s: float
    setup_s: float = Field(description="sandbox start + copying files in")
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    metrics: dict[str, Any] | None = None
    metrics_error: str | None = None
    resources: ResourceUse = Field(default_factory=ResourceUse)
    artifacts: list[Artifact] = Field(default_factory=list)
    rejected: dict[str, str] = Field(
        default_factory=dict, description="result files refused (symlinks, bad names) and why"
    )

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0."""
        return self.ended_by == "exit" and self.exit_code == 0


def inputs_digest(files: Mapping[str, bytes]) -> str:
    """A digest of a file set: sha256 of the sorted (path, sha256) list."""
    listing = sorted((path, sha256_digest(data)) for path, data in files.items())
    return sha256_digest(json.dumps(listing, separators=(",", ":")).encode())


async def run_experiment(
    spec: ExperimentSpec,
    *,
    image: str = "python",
    workspace: GitWorkspace | None = None,
    commit: str | None = None,
    limits: SandboxLimits | Mapping[str, object] | None = None,
    run_id: str | None = None,
    out_dir: Path | None = None,
    client: docker.DockerClient | None = None,
) -> ExperimentResult:
    """Run `spec` in a fresh sandbox of `image` and collect its results.

    With a `workspace`, the sandbox gets exactly the files of `commit` (default: the run
    branch's head) before the spec's inline files, which may only add new paths. With
    `out_dir`, collected files are also written there (safely) and artifacts carry `file://`
    URIs; otherwise small text files are inlined and the rest carry digest and size only.
    """
    files: dict[str, bytes] = {}
    executable: frozenset[str] = frozenset()
    sha: str | None = None
    if workspace is not None:
        snap = workspace.snapshot(commit or workspace.head)
        sha, files, executable = snap.commit, dict(snap.files), snap.executable
    elif commit is not None:
        raise SandboxError("an experiment commit needs the workspace that holds it")
    for name, text in spec.files.items():
        rel = archive.safe_relpath(name)
        if rel in files:
            raise SandboxError(
                f"spec file {rel!r} would replace the file of commit {sha} at that path"
            )
        files[rel] = text.encode()
    digest = inputs_digest(files)
    lim = _overrides(spec.limits, limits)
    started = time.monotonic()
    sandbox = await DockerSandbox.start(
        image, limits=lim, run_id=run_id or "experiment", client=client
    )
    async with sandbox:
        out_parent = str(Path(spec.metrics_file).parent)
        await sandbox.write_files(
            files,
            executable=sorted(executable),
            dirs=[out_parent] if out_parent not in (".", "") else [],
        )
        setup_s = time.monotonic() - started
        result = await sandbox.exec(
            spec.command, timeout=spec.timeout_s, env=spec.env, workdir=spec.workdir
        )
        log.info(
            "experiment.ran",
            image=sandbox.image,
            commit=sha,
            ended_by=result.ended_by,
            exit=result.exit_code,
            seconds=round(result.wall_s, 3),
        )
        resources = ResourceUse()
        collected = archive.Unpacked()
        metrics: dict[str, Any] | None = None
        metrics_error: str | None = None
        if sandbox.closed:
            metrics_error = "the sandbox was killed; no result files could be read"
        else:
            resources = await sandbox.resource_use()
            wanted = list(dict.fromkeys([*spec.collect, spec.metrics_file]))
            collected = await sandbox.read_archive(
                wanted, max_bytes=spec.max_result_bytes, missing_ok=True
            )
            metrics, metrics_error = _parse_metrics(collected.files, spec.metrics_file)
        image_ref = sandbox.image
    artifacts = _artifacts(collected.files, out_dir)
    return ExperimentResult(
        image=image_ref,
        commit=sha,
        inputs_digest=digest,
        exit_code=result.exit_code,
        ended_by=result.ended_by,
        wall_s=result.wall_s,
        setup_s=setup_s,
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        metrics=metrics,
        metrics_error=metrics_error,
        resources=resources,
        artifacts=artifacts,
        rejected=collected.rejected,
    )


def _overrides(*parts: SandboxLimits | Mapping[str, object] | None) -> dict[str, object]:
    """The explicitly set limit fields of each part, later parts winning."""
    merged: dict[str, object] = {}
    for part in parts:
        if isinstance(part, SandboxLimits):
            merged.update(part.model_dump(exclude_unset=True))
        elif part is not None:
            merged.update(part)
    return merged


def _parse_metrics(
    files: Mapping[str, bytes], path: str
) -> tuple[dict[str, Any] | None, str | None]:
    rel = archive.safe_relpath(path)
    if rel not in files:
        return None, f"{rel} was not written"
    try:
        value = json.loads(files[rel].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{rel} is not valid JSON: {err}"
    if not isinstance(value, dict):
        return None, f"{rel} holds a {type(value).__name__}, not a JSON object"
    return value, None


def _artifacts(files: Mapping[str, bytes], out_dir: Path | None) -> list[Artifact]:
    uris: dict[str, str] = {}
    if out_dir is not None and files:
        for name, written in zip(files, archive.write_tree(out_dir, files), strict=True):
            uris[name] = written.resolve().as_uri()
    result: list[Artifact] = []
    for name, data in sorted(files.items()):
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        content: str | None = None
        if len(data) <= INLINE_TEXT_MAX:
            try:
                content = data.decode("utf-8")
            except UnicodeDecodeError:
                content = None
            else:
                if media_type == "application/octet-stream":
                    media_type = "text/plain"
        result.append(
            Artifact(
                name=name,
                media_type=media_type,
                digest=sha256_digest(data),
                size=len(data),
                content=content,
                uri=uris.get(name),
            )
        )
    return result
