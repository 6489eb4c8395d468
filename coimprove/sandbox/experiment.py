"""Run one experiment spec in a fresh sandbox and bring its results back as artifacts.

`run_experiment` is what the experiment effect node calls after a gate approved the spec (and,
for code, the commit): a fresh `DockerSandbox`, exactly the files of that commit copied in (plus
the spec's own inline files, which may not replace any of them), the command run under the
spec's limits, then the metrics JSON, result files, output and resource use collected.
Everything that comes out is treated as hostile (regular files only, names checked, capped).

What the command leaves running ends with it, before any file is read (`DockerSandbox.exec`),
so no process of the experiment can stop, feed or race the collection. Collection runs in two
strict steps — the metrics file (at most `METRICS_MAX_BYTES`), then the `collect` paths — each
bounded in time and size; a step that does not end cleanly is a failed collection
(`collection_error`), never a partial success, and the run's exit, output and (when its own step
was clean) metrics are kept. The whole call returns within `spec.timeout_s + EXPERIMENT_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import docker
from pydantic import BaseModel, ConfigDict, Field

from coimprove._log import get_logger
from coimprove.model import Artifact, sha256_digest
from coimprove.sandbox import archive
from coimprove.sandbox.docker import KILL_GRACE_S, DockerSandbox
from coimprove.sandbox.errors import ArchiveError, SandboxError, SandboxFileError
from coimprove.sandbox.protocol import EndedBy, ExecResult, ResourceUse, SandboxLimits
from coimprove.sandbox.workspace import GitWorkspace

log = get_logger("coimprove.sandbox.experiment")

INLINE_TEXT_MAX = 64 << 10
METRICS_MAX_BYTES = 1 << 20
"""Cap on the metrics file, read in a step of its own before the other result files."""
EXPERIMENT_GRACE_S = 30.0
"""`run_experiment` returns within `spec.timeout_s + EXPERIMENT_GRACE_S` seconds of being
called. The grace covers starting the sandbox, copying files in, killing what the command left,
collecting results and removing the container; past it the container is removed and the result
says what did not finish (`collection_error`)."""
_REMOVAL_S = 5.0  # the part of the grace kept for removing the container after an overrun
_CLOSE_S = 3.0  # the part kept for closing the sandbox after a collection step overran


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
        default_factory=dict,
        description="result files refused (symlinks, bad names, over a cap) and why; "
        "names shown printably",
    )
    collection_error: str | None = Field(
        None,
        description="why the results could not be collected (a step did not end cleanly, a "
        "cap refused files, the call ran past its bound); None when collection succeeded",
    )

    @property
    def ok(self) -> bool:
        """Exited by itself with status 0 and every result was collected."""
        return self.ended_by == "exit" and self.exit_code == 0 and self.collection_error is None


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
    bound = spec.timeout_s + EXPERIMENT_GRACE_S
    progress = _Progress(deadline=time.monotonic() + bound - _REMOVAL_S)
    task = asyncio.ensure_future(
        _run_in_sandbox(
            spec,
            files=files,
            executable=executable,
            image=image,
            limits=lim,
            run_id=run_id,
            client=client,
            progress=progress,
        )
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=bound - _REMOVAL_S)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        outcome = task.result()
    else:
        task.add_done_callback(_ignore_outcome)
        task.cancel()
        removed = await _remove(progress.sandbox, _REMOVAL_S)
        outcome = progress.overrun(bound, removed)
    return outcome.result(sha, digest, out_dir)


@dataclass
class _Progress:
    """How far an experiment got: what an overrun can still report."""

    deadline: float
    stage: Literal["setup", "run", "collect"] = "setup"
    sandbox: DockerSandbox | None = None
    image: str = ""
    started: float = field(default_factory=time.monotonic)
    setup_s: float = 0.0
    run: ExecResult | None = None
    resources: ResourceUse = field(default_factory=ResourceUse)
    metrics: dict[str, Any] | None = None
    metrics_error: str | None = None
    metrics_file: dict[str, bytes] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)

    def left(self) -> float:
        """Seconds left for the next collection step, keeping time for the kill that ends an
        overrunning step (the kill grace) and for closing the sandbox after it."""
        return max(0.5, self.deadline - time.monotonic() - KILL_GRACE_S - _CLOSE_S)

    def overrun(self, bound: float, removed: bool) -> _Outcome:
        removal = "removed" if removed else "being removed (the reaper finishes it)"
        if self.stage == "setup":
            raise SandboxError(
                f"starting the sandbox and copying the files in did not finish within the "
                f"{bound:g} s bound of the experiment; nothing ran (the container is {removal})"
            )
        run = self.run or ExecResult(
            exit_code=None, ended_by="killed", wall_s=time.monotonic() - self.started
        )
        what = (
            "the command did not end"
            if self.run is None
            else "collecting the results did not finish"
        )
        return _Outcome(
            image=self.image,
            setup_s=self.setup_s,
            run=run,
            resources=self.resources,
            metrics=self.metrics,
            metrics_error=self.metrics_error or ("not collected" if self.metrics is None else None),
            files=dict(self.metrics_file),
            rejected=self.rejected,
            collection_error=(
                f"{what} within the {bound:g} s bound of the call (timeout_s + "
                f"{EXPERIMENT_GRACE_S:g} s grace); the container is {removal} and nothing "
                "collected after that point is used"
            ),
        )


@dataclass
class _Outcome:
    image: str
    setup_s: float
    run: ExecResult
    resources: ResourceUse
    metrics: dict[str, Any] | None
    metrics_error: str | None
    files: dict[str, bytes]
    rejected: dict[str, str]
    collection_error: str | None

    def result(self, sha: str | None, digest: str, out_dir: Path | None) -> ExperimentResult:
        return ExperimentResult(
            image=self.image,
            commit=sha,
            inputs_digest=digest,
            exit_code=self.run.exit_code,
            ended_by=self.run.ended_by,
            wall_s=self.run.wall_s,
            setup_s=self.setup_s,
            stdout=self.run.stdout,
            stderr=self.run.stderr,
            stdout_truncated=self.run.stdout_truncated,
            stderr_truncated=self.run.stderr_truncated,
            metrics=self.metrics,
            metrics_error=self.metrics_error,
            resources=self.resources,
            artifacts=_artifacts(self.files, out_dir),
            rejected=self.rejected,
            collection_error=self.collection_error,
        )


async def _run_in_sandbox(
    spec: ExperimentSpec,
    *,
    files: dict[str, bytes],
    executable: frozenset[str],
    image: str,
    limits: Mapping[str, object],
    run_id: str | None,
    client: docker.DockerClient | None,
    progress: _Progress,
) -> _Outcome:
    sandbox = await DockerSandbox.start(
        image, limits=limits, run_id=run_id or "experiment", client=client
    )
    progress.sandbox, progress.image = sandbox, sandbox.image
    async with sandbox:
        out_parent = str(Path(spec.metrics_file).parent)
        await sandbox.write_files(
            files,
            executable=sorted(executable),
            dirs=[out_parent] if out_parent not in (".", "") else [],
        )
        progress.setup_s = time.monotonic() - progress.started
        progress.stage = "run"
        run = await sandbox.exec(
            spec.command, timeout=spec.timeout_s, env=spec.env, workdir=spec.workdir
        )
        progress.run, progress.stage = run, "collect"
        log.info(
            "experiment.ran",
            image=sandbox.image,
            ended_by=run.ended_by,
            exit=run.exit_code,
            seconds=round(run.wall_s, 3),
        )
        collected, collection_error = await _collect(sandbox, spec, progress)
    if collection_error:
        log.warning("experiment.collection_failed", image=progress.image, error=collection_error)
    return _Outcome(
        image=progress.image,
        setup_s=progress.setup_s,
        run=run,
        resources=progress.resources,
        metrics=progress.metrics,
        metrics_error=progress.metrics_error,
        files={**progress.metrics_file, **collected},
        rejected=progress.rejected,
        collection_error=collection_error,
    )


async def _collect(
    sandbox: DockerSandbox, spec: ExperimentSpec, progress: _Progress
) -> tuple[dict[str, bytes], str | None]:
    """The metrics file, then the `collect` paths: each step strict, bounded, all or nothing."""
    if sandbox.closed:
        progress.metrics_error = "not collected: the sandbox was killed"
        return {}, (
            f"the sandbox was killed ({sandbox.closed_reason}) before its results could be "
            "read; no result file was read"
        )
    progress.resources = await sandbox.resource_use()
    metrics_rel = archive.safe_relpath(spec.metrics_file)
    try:
        step = await sandbox.read_archive(
            [metrics_rel], max_bytes=METRICS_MAX_BYTES, missing_ok=True, timeout=progress.left()
        )
    except (ArchiveError, SandboxFileError) as err:
        _refuse(progress, err)
        progress.metrics_error = f"not collected: {err}"
        return {}, f"reading the metrics file failed: {err}"
    progress.rejected.update(step.rejected)
    progress.metrics_file = {k: v for k, v in step.files.items() if k == metrics_rel}
    progress.metrics, progress.metrics_error = _parse_metrics(step.files, spec.metrics_file)
    if not spec.collect:
        return {}, None
    try:
        step = await sandbox.read_archive(
            spec.collect,
            max_bytes=spec.max_result_bytes,
            missing_ok=True,
            timeout=progress.left(),
        )
    except (ArchiveError, SandboxFileError) as err:
        _refuse(progress, err)
        return {}, f"reading the result files {spec.collect} failed: {err}"
    progress.rejected.update(step.rejected)
    return step.files, None


def _refuse(progress: _Progress, err: SandboxError) -> None:
    member = getattr(err, "member", None)
    if member:
        progress.rejected[member] = str(err)


async def _remove(sandbox: DockerSandbox | None, within: float) -> bool:
    """Remove the container (from a thread the stuck one cannot hold up); True when done."""
    if sandbox is None:
        return True
    removal = asyncio.ensure_future(asyncio.to_thread(sandbox.close_sync, "past its bound"))
    done, _ = await asyncio.wait({removal}, timeout=within)
    return bool(done) and removal.exception() is None


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled overrun's outcome so it is not reported as never retrieved."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


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
