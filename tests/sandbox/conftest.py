"""Fixtures for the sandbox tests: a real Docker engine and the real `python` sandbox image.

Under CI (CI=true) a missing engine or an image that cannot be built FAILS the tests; elsewhere
they are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from coimprove.sandbox.docker import LABEL, LABEL_PID
from coimprove.sandbox.engine import connect
from coimprove.sandbox.errors import DockerUnavailableError, ImageBuildError
from coimprove.sandbox.images import BuiltImage, build_image


def in_ci() -> bool:
    """True on CI, where missing infrastructure is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: sandbox tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the local engine; at the end, no sandbox container of this process remains."""
    try:
        client = connect()
    except DockerUnavailableError as err:
        unavailable(str(err))
    yield client
    leaked = client.containers.list(
        all=True, filters={"label": [f"{LABEL}=1", f"{LABEL_PID}={os.getpid()}"]}
    )
    for c in leaked:
        c.remove(force=True, v=True)
    assert not leaked, f"sandbox containers leaked by the tests: {[c.name for c in leaked]}"


@pytest.fixture(scope="session")
def python_image(docker_client: docker.DockerClient) -> BuiltImage:
    """The `python` sandbox image, built by `coimprove sandbox build`'s code (reused)."""
    try:
        return build_image("python", client=docker_client)
    except ImageBuildError as err:
        unavailable(f"cannot build the python sandbox image: {err}")
        raise  # unreachable: unavailable() always raises
