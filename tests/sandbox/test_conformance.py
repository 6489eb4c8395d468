"""The conformance and escape suite, run against every Sandbox implementation (real Docker)."""

from __future__ import annotations

import docker
import pytest

from coimprove.sandbox.conformance import (
    CHECK_NAMES,
    CHECKS,
    IMPLEMENTATIONS,
    Check,
    ConformanceTarget,
)
from coimprove.sandbox.images import BuiltImage

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module", params=sorted(IMPLEMENTATIONS))
def target(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, python_image: BuiltImage
) -> ConformanceTarget:
    return IMPLEMENTATIONS[request.param](python_image.name, client=docker_client)


@pytest.mark.parametrize("check", CHECKS, ids=CHECK_NAMES)
async def test_sandbox_conforms(target: ConformanceTarget, check: Check) -> None:
    # A check raises ConformanceFailure with its evidence when the sandbox misbehaves.
    detail = await check.run(target)
    assert detail


def test_no_leftovers_runs_last() -> None:
    assert CHECK_NAMES[-1] == "no_leftovers"
