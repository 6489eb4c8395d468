"""`coimprove sandbox …` commands, driven through typer's runner against the real engine."""

from __future__ import annotations

import json

import docker
import pytest
from typer.testing import CliRunner

from coimprove.sandbox.cli import sandbox_app
from coimprove.sandbox.docker import DockerSandbox, count_containers
from coimprove.sandbox.images import BuiltImage

pytestmark = pytest.mark.docker

runner = CliRunner()


def test_build_reports_an_up_to_date_image(python_image: BuiltImage) -> None:
    result = runner.invoke(sandbox_app, ["build", "python"])
    assert result.exit_code == 0, result.output
    assert f"python: {python_image.tag} (up to date)" in result.stdout


def test_list_shows_built_state(python_image: BuiltImage) -> None:
    result = runner.invoke(sandbox_app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    python = next(r for r in rows if r["name"] == "python")
    assert (python["tag"], python["built"]) == (python_image.tag, True)


def test_check_prints_a_table_and_passes(python_image: BuiltImage) -> None:
    result = runner.invoke(sandbox_app, ["check", "--only", "exit_codes", "--only", "no_network"])
    assert result.exit_code == 0, result.output
    for name in ("exit_codes", "no_network", "no_leftovers"):
        assert name in result.stdout
    assert "FAIL" not in result.stdout


def test_check_rejects_unknown_checks(python_image: BuiltImage) -> None:
    result = runner.invoke(sandbox_app, ["check", "--only", "teleport"])
    assert result.exit_code == 1
    assert "unknown checks" in result.stderr


def test_prune_run_removes_that_runs_containers(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    box = DockerSandbox.start_sync("python", run_id="prune-me", client=docker_client)
    try:
        result = runner.invoke(sandbox_app, ["prune", "--run", "prune-me"])
        assert result.exit_code == 0, result.output
        assert "removed 1 container(s)" in result.stdout
        assert count_containers(docker_client, run_id="prune-me") == 0
    finally:
        box.close_sync()
