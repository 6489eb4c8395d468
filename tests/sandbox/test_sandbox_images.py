"""Sandbox definitions, mirror discovery from apt sources, content-hashed tags, local builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest

from coimprove.sandbox import images
from coimprove.sandbox.errors import (
    ImageBuildError,
    ImageMissingError,
    SandboxDefinitionError,
    SandboxNotFoundError,
)
from coimprove.sandbox.images import (
    BuiltImage,
    SandboxDefinition,
    base_tag,
    build_base,
    build_image,
    builtin_sandboxes_dir,
    find_debian_mirror,
    image_tag,
    load_sandbox,
    resolve_image,
)


def _apt(tmp_path: Path, sources: dict[str, str], main: str | None = None) -> Path:
    d = tmp_path / "apt"
    (d / "sources.list.d").mkdir(parents=True)
    if main is not None:
        (d / "sources.list").write_text(main)
    for name, text in sources.items():
        (d / "sources.list.d" / name).write_text(text)
    return d


DEB822 = """\
Types: deb
# http://snapshot.example/archive
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_comes_from_deb822_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(images.MIRROR_ENV, raising=False)
    apt = _apt(tmp_path, {"debian.sources": DEB822})
    assert find_debian_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_with_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(images.MIRROR_ENV, raising=False)
    main = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian/ bookworm main\n"
    )
    apt = _apt(tmp_path, {"other.list": "deb http://x.example/ubuntu jammy main\n"}, main)
    assert find_debian_mirror("bookworm", apt) == "https://one.example/debian"


def test_disabled_and_foreign_sources_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(images.MIRROR_ENV, raising=False)
    disabled = DEB822.replace("Types: deb\n#", "Types: deb\nEnabled: no\n#", 1)
    apt = _apt(
        tmp_path,
        {
            "a.sources": disabled,
            "b.list.disabled-by-admin": "deb http://nope.example/debian bookworm main\n",
        },
    )
    with pytest.raises(ImageBuildError, match="--mirror"):
        find_debian_mirror("bookworm", apt)
    monkeypatch.setenv(images.MIRROR_ENV, "http://env.example/debian")
    assert find_debian_mirror("bookworm", apt) == "http://env.example/debian"


def test_builtin_python_sandbox_is_found_and_valid() -> None:
    root = builtin_sandboxes_dir()
    assert root is not None
    assert (root / "python" / "Dockerfile").is_file()
    source = load_sandbox("python")
    assert source.definition.network == "none"
    assert {"python3", "python3-numpy"} <= set(source.definition.packages)
    assert source.definition.limits.memory_mb > source.definition.limits.tmpfs_mb


def _copy_python(tmp_path: Path) -> Path:
    root = builtin_sandboxes_dir()
    assert root is not None
    dest = tmp_path / "mybox"
    shutil.copytree(root / "python", dest)
    return dest


def test_tags_are_content_hashes_of_the_inputs(tmp_path: Path) -> None:
    folder = _copy_python(tmp_path)
    first = image_tag(load_sandbox(folder))
    assert first == image_tag(load_sandbox(folder))
    assert first.startswith("coimprove/sandbox-python:")
    with (folder / "Dockerfile").open("a") as fh:
        fh.write("# changed\n")
    assert image_tag(load_sandbox(folder)) != first
    d = load_sandbox(folder).definition
    assert base_tag(d) == base_tag(d.model_copy(update={"packages": list(reversed(d.packages))}))
    assert base_tag(d) != base_tag(d.model_copy(update={"packages": [*d.packages, "curl"]}))


def test_bad_definitions_name_file_and_field(tmp_path: Path) -> None:
    folder = _copy_python(tmp_path)
    (folder / "sandbox.yaml").write_text("name: python\nlimits:\n  memory_mb: lots\n")
    with pytest.raises(SandboxDefinitionError, match=r"sandbox\.yaml:3: limits\.memory_mb"):
        load_sandbox(folder)
    (folder / "sandbox.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SandboxDefinitionError, match="invalid YAML"):
        load_sandbox(folder)
    with pytest.raises(SandboxNotFoundError, match="built-in: python"):
        load_sandbox("no-such-sandbox")


@pytest.mark.docker
def test_build_reuses_an_unchanged_image(
    docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    again = build_image("python", client=docker_client)
    assert again.reused
    assert again.tag == python_image.tag
    assert resolve_image(docker_client, "python") == python_image.tag


@pytest.mark.docker
def test_changed_inputs_mean_missing_image_with_build_hint(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    folder = _copy_python(tmp_path)
    with (folder / "Dockerfile").open("a") as fh:
        fh.write("# changed\n")
    with pytest.raises(ImageMissingError, match="run `coimprove sandbox build python`"):
        resolve_image(docker_client, folder)


@pytest.mark.docker
@pytest.mark.slow
def test_a_changed_dockerfile_builds_on_the_cached_base(
    tmp_path: Path, docker_client: docker.DockerClient, python_image: BuiltImage
) -> None:
    folder = _copy_python(tmp_path)
    with (folder / "Dockerfile").open("a") as fh:
        fh.write('LABEL org.coimprove.test="rebuilt"\n')
    built = build_image(folder, client=docker_client)
    try:
        assert not built.reused
        assert built.base_tag == python_image.base_tag
        image = docker_client.images.get(built.tag)
        assert image.labels["org.coimprove.test"] == "rebuilt"
        assert image.labels["coimprove.base"] == python_image.base_tag
    finally:
        docker_client.images.remove(built.tag, force=True)


@pytest.mark.docker
def test_missing_debootstrap_is_a_clear_error(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "find_debootstrap", lambda: None)
    definition = SandboxDefinition(name="nobase", packages=["python3", "coimprove-test-absent"])
    with pytest.raises(ImageBuildError, match="apt-get install debootstrap"):
        build_base(docker_client, definition)
