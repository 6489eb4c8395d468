"""Graph tests use the real Docker engine and the real `python` sandbox image."""

from tests.sandbox.conftest import docker_client, python_image

__all__ = ["docker_client", "python_image"]
