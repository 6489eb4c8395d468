"""Connecting to the Docker engine, with one clear error when it is not there."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from coimprove.sandbox.errors import DockerUnavailableError

DEFAULT_TIMEOUT_S = 120


def connect(timeout: int = DEFAULT_TIMEOUT_S) -> docker.DockerClient:
    """A client for the engine named by the environment (DOCKER_HOST or the local socket).

    Raises `DockerUnavailableError` when the engine does not answer a ping.
    """
    try:
        client = docker.from_env(timeout=timeout, max_pool_size=32)
        client.ping()
    except DockerException as err:
        raise DockerUnavailableError(str(err)) from err
    except OSError as err:  # pragma: no cover - socket errors not wrapped by the SDK
        raise DockerUnavailableError(str(err)) from err
    return client


def cgroup_version(client: docker.DockerClient) -> int:
    """1 or 2: which cgroup hierarchy the engine's containers live in."""
    info = client.info()
    return int(info.get("CgroupVersion") or 1)
