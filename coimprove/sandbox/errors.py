"""Errors raised by coimprove's sandboxes, images and git workspaces."""

from __future__ import annotations

from coimprove.errors import CoimproveError


class SandboxError(CoimproveError):
    """A sandbox could not be created, used or cleaned up."""


class DockerUnavailableError(SandboxError):
    """The Docker engine cannot be reached."""

    def __init__(self, detail: str = "") -> None:
        msg = (
            "Docker is not running or not reachable: start the Docker engine "
            "(or set DOCKER_HOST) and try again"
        )
        super().__init__(f"{msg} ({detail})" if detail else msg)


class ImageMissingError(SandboxError):
    """The sandbox image has not been built (or its inputs changed since)."""

    def __init__(self, name: str, tag: str) -> None:
        self.name = name
        self.tag = tag
        super().__init__(
            f"sandbox image {tag} for {name!r} is missing or out of date: "
            f"run `coimprove sandbox build {name}`"
        )


class SandboxNotFoundError(SandboxError):
    """No sandbox definition (sandboxes/<name>/sandbox.yaml) with that name or path."""


class SandboxDefinitionError(SandboxError):
    """A sandbox.yaml is malformed; the message names the file and the field."""


class ImageBuildError(SandboxError):
    """Building a sandbox image failed (debootstrap, import or Dockerfile build)."""


class SandboxClosedError(SandboxError):
    """The sandbox was closed (or force-killed) and cannot run anything more."""


class NetworkNotAllowedError(SandboxError):
    """Network access was requested without an explicit grant from policy."""


class ArchiveError(SandboxError):
    """A tar archive or member name was unsafe or over its size cap.

    `member` is the (printable) name of the file at fault, when one is.
    """

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class SandboxFileError(SandboxError):
    """Files could not be copied into or out of a sandbox."""


class WorkspaceError(SandboxError):
    """A git workspace operation failed (bad patch, unknown commit, merge conflict)."""


class MergeConflictError(WorkspaceError):
    """An approved proposal cannot be merged into the run branch without conflicts."""
