"""Sandboxes for agent code and experiments: Docker containers, local image builds, git workspaces.

Layering: this package imports only `coimprove.errors`, `coimprove.model` and third-party
libraries, never the engine (workflow, gates, runner, ledger).
"""

from __future__ import annotations

from coimprove.sandbox.archive import Unpacked, pack_files, safe_relpath, unpack_files
from coimprove.sandbox.docker import DockerSandbox, count_containers, reap
from coimprove.sandbox.engine import connect
from coimprove.sandbox.errors import (
    ArchiveError,
    DockerUnavailableError,
    ImageBuildError,
    ImageMissingError,
    MergeConflictError,
    NetworkNotAllowedError,
    SandboxClosedError,
    SandboxDefinitionError,
    SandboxError,
    SandboxFileError,
    SandboxNotFoundError,
    WorkspaceError,
)
from coimprove.sandbox.experiment import ExperimentResult, ExperimentSpec, run_experiment
from coimprove.sandbox.images import (
    BuiltImage,
    SandboxDefinition,
    build_image,
    list_sandboxes,
    load_sandbox,
    resolve_image,
)
from coimprove.sandbox.protocol import (
    EndedBy,
    ExecResult,
    NetworkMode,
    ResourceUse,
    Sandbox,
    SandboxLimits,
)
from coimprove.sandbox.workspace import GitWorkspace, TreeSnapshot

__all__ = [
    "ArchiveError",
    "BuiltImage",
    "DockerSandbox",
    "DockerUnavailableError",
    "EndedBy",
    "ExecResult",
    "ExperimentResult",
    "ExperimentSpec",
    "GitWorkspace",
    "ImageBuildError",
    "ImageMissingError",
    "MergeConflictError",
    "NetworkMode",
    "NetworkNotAllowedError",
    "ResourceUse",
    "Sandbox",
    "SandboxClosedError",
    "SandboxDefinition",
    "SandboxDefinitionError",
    "SandboxError",
    "SandboxFileError",
    "SandboxLimits",
    "SandboxNotFoundError",
    "TreeSnapshot",
    "Unpacked",
    "WorkspaceError",
    "build_image",
    "connect",
    "count_containers",
    "list_sandboxes",
    "load_sandbox",
    "pack_files",
    "reap",
    "resolve_image",
    "run_experiment",
    "safe_relpath",
    "unpack_files",
]
