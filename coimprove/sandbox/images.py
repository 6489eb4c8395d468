"""Sandbox definitions and local image builds (no registry needed).

A sandbox lives in `sandboxes/<name>/`: a `sandbox.yaml` (Debian packages, limits, network) and a
`Dockerfile` whose `FROM ${BASE}` is filled in with a base image built here:

1. `debootstrap --variant=minbase --include=<packages> <suite>` into a temporary rootfs, from the
   mirror this machine's apt sources name (never a hard-coded host);
2. `docker import` of that rootfs as `coimprove/base:<hash of suite+packages+arch>`;
3. the Dockerfile built on it with the legacy builder and no network, tagged
   `coimprove/sandbox-<name>:<hash of base tag + every file in the folder>`.

Each step is skipped when an image with its content-hashed tag already exists.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import docker
from docker.errors import APIError, BuildError, ImageNotFound
from pydantic import BaseModel, ConfigDict, Field

from coimprove._log import get_logger
from coimprove._yaml import load_yaml_data, validate_yaml_data
from coimprove.sandbox.errors import (
    ImageBuildError,
    ImageMissingError,
    SandboxDefinitionError,
    SandboxNotFoundError,
)
from coimprove.sandbox.protocol import NetworkMode, SandboxLimits

log = get_logger("coimprove.sandbox.images")

BASE_REPOSITORY = "coimprove/base"
IMAGE_REPOSITORY_PREFIX = "coimprove/sandbox-"
MIRROR_ENV = "COIMPROVE_DEBIAN_MIRROR"
APT_SOURCES = Path("/etc/apt")
_IGNORED_PARTS = {"__pycache__", ".git", ".mypy_cache", ".ruff_cache"}

Progress = Callable[[str], None]


class SandboxDefinition(BaseModel):
    """The contents of a `sandbox.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    suite: str = Field("bookworm", description="Debian suite for the base rootfs")
    variant: Literal["minbase"] = "minbase"
    packages: list[str] = Field(default_factory=list, description="debootstrap --include")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    network: NetworkMode = "none"
    env: dict[str, str] = Field(default_factory=dict, description="extra env for every exec")


class SandboxSource(BaseModel):
    """A sandbox definition and the folder it was read from."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    definition: SandboxDefinition

    @property
    def name(self) -> str:
        """The sandbox's name."""
        return self.definition.name


class BuiltImage(BaseModel):
    """The result of `build_image`."""

    name: str
    tag: str
    base_tag: str
    reused: bool = Field(description="True when the image already existed and nothing was built")
    seconds: float = 0.0


# -- finding definitions ----------------------------------------------------------------------


def builtin_sandboxes_dir() -> Path | None:
    """The built-in `sandboxes/` folder: the wheel's package data, else the source tree's."""
    try:
        packaged = importlib.resources.files("coimprove") / "_builtin" / "sandboxes"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - broken install
        pass
    source = Path(__file__).resolve().parents[2] / "sandboxes"
    return source if source.is_dir() else None


def list_sandboxes() -> list[SandboxSource]:
    """Every built-in sandbox definition, sorted by name."""
    root = builtin_sandboxes_dir()
    if root is None:
        return []
    return [load_sandbox(p) for p in sorted(root.iterdir()) if (p / "sandbox.yaml").is_file()]


def load_sandbox(name_or_path: str | Path) -> SandboxSource:
    """A sandbox by built-in name (`python`) or by the path of its folder."""
    path = Path(name_or_path)
    candidates: list[Path] = []
    if isinstance(name_or_path, Path) or "/" in str(name_or_path) or path.is_dir():
        candidates.append(path)
    else:
        root = builtin_sandboxes_dir()
        if root is not None:
            candidates.append(root / str(name_or_path))
    for directory in candidates:
        spec_file = directory / "sandbox.yaml"
        if spec_file.is_file():
            return SandboxSource(directory=directory.resolve(), definition=_parse(spec_file))
    known = ", ".join(s.name for s in list_sandboxes()) or "none"
    raise SandboxNotFoundError(
        f"no sandbox {str(name_or_path)!r} (a folder with sandbox.yaml); built-in: {known}"
    )


def _parse(spec_file: Path) -> SandboxDefinition:
    """`sandbox.yaml` through the bounded YAML loader; errors name the file, line and field."""
    data, node = load_yaml_data(spec_file, error=SandboxDefinitionError)
    if isinstance(data, dict):
        data.setdefault("name", spec_file.parent.name)
    return validate_yaml_data(
        SandboxDefinition, data, node, spec_file, error=SandboxDefinitionError
    )


# -- content hashes ---------------------------------------------------------------------------


def _digest(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def base_tag(definition: SandboxDefinition) -> str:
    """`coimprove/base:<hash>` for the suite, variant, packages and architecture."""
    payload = {
        "suite": definition.suite,
        "variant": definition.variant,
        "packages": sorted(set(definition.packages)),
        "arch": platform.machine(),
        "recipe": 1,
    }
    return f"{BASE_REPOSITORY}:{_digest(payload)}"


def _context_files(directory: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part in _IGNORED_PARTS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            yield rel.as_posix(), path


def image_tag(source: SandboxSource) -> str:
    """`coimprove/sandbox-<name>:<hash>` of the base tag and every file in the folder."""
    files = {
        rel: hashlib.sha256(path.read_bytes()).hexdigest()
        for rel, path in _context_files(source.directory)
    }
    payload = {"base": base_tag(source.definition), "files": files, "recipe": 1}
    return f"{IMAGE_REPOSITORY_PREFIX}{source.name}:{_digest(payload)}"


# -- resolving and building -------------------------------------------------------------------


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except ImageNotFound:
        return None


def _drop_replaced(client: docker.DockerClient, old_id: str | None, tag: str) -> None:
    """After a forced rebuild, remove the image `tag` used to name if nothing else names it."""
    if old_id is None or old_id == _image_id(client, tag):
        return
    try:
        if not client.images.get(old_id).tags:
            client.images.remove(old_id)
    except (ImageNotFound, APIError) as err:  # in use by a container, or already gone
        log.info("image.keep_replaced", image=old_id, reason=str(err))


def resolve_image(client: docker.DockerClient, name_or_path: str | Path) -> str:
    """The tag of the up-to-date built image for a sandbox; `ImageMissingError` if absent."""
    source = load_sandbox(name_or_path)
    tag = image_tag(source)
    if not _image_exists(client, tag):
        raise ImageMissingError(source.name, tag)
    return tag


def find_debian_mirror(suite: str, apt_dir: Path = APT_SOURCES) -> str:
    """The first apt source on this machine that serves `suite` (env COIMPROVE_DEBIAN_MIRROR wins).

    Reads `sources.list`, `sources.list.d/*.list` (one-line style) and
    `sources.list.d/*.sources` (deb822). Raises `ImageBuildError` when none serves the suite.
    """
    override = os.environ.get(MIRROR_ENV)
    if override:
        return override
    files: list[Path] = []
    if (apt_dir / "sources.list").is_file():
        files.append(apt_dir / "sources.list")
    d = apt_dir / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries = _deb822_entries(text) if f.suffix == ".sources" else _one_line_entries(text)
        for uri, suites in entries:
            if suite in suites and uri.split(":", 1)[0] in ("http", "https", "file"):
                return uri.rstrip("/")
    raise ImageBuildError(
        f"no apt source on this machine serves Debian {suite!r} (looked in {apt_dir}/sources.list"
        f" and sources.list.d/); pass --mirror URL or set {MIRROR_ENV}"
    )


def _one_line_entries(text: str) -> Iterator[tuple[str, set[str]]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        if words[1].startswith("["):  # options: deb [arch=amd64 signed-by=…] uri suite …
            while words and not words[1].endswith("]"):
                del words[1]
            del words[1]
        if len(words) >= 3:
            yield words[1], {words[2]}


def _deb822_entries(text: str) -> Iterator[tuple[str, set[str]]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        suites = set(fields.get("suites", "").split())
        for uri in fields.get("uris", "").split():
            yield uri, suites


def find_debootstrap() -> str | None:
    """The debootstrap executable (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("debootstrap")
    if found is None and Path("/usr/sbin/debootstrap").is_file():
        found = "/usr/sbin/debootstrap"
    return found


def build_base(
    client: docker.DockerClient,
    definition: SandboxDefinition,
    *,
    mirror: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[str, bool]:
    """Build (or reuse) the base image; returns (tag, reused)."""
    tag = base_tag(definition)
    old_id = _image_id(client, tag)
    if not force and old_id is not None:
        return tag, True
    say = progress or (lambda _msg: None)
    debootstrap = find_debootstrap()
    if debootstrap is None:
        raise ImageBuildError(
            "debootstrap is not installed; install it (Debian/Ubuntu: "
            "`sudo apt-get install debootstrap`) and run `coimprove sandbox build` again"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "building the base image runs debootstrap, which needs root: "
            "run `sudo coimprove sandbox build` (once; later builds reuse the image)"
        )
    mirror = mirror or find_debian_mirror(definition.suite)
    with tempfile.TemporaryDirectory(prefix="coimprove-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [debootstrap, f"--variant={definition.variant}"]
        if definition.packages:
            cmd.append("--include=" + ",".join(sorted(set(definition.packages))))
        cmd += [definition.suite, str(rootfs), mirror]
        say(f"debootstrap {definition.suite} from {mirror} (about a minute)")
        log.info("debootstrap.start", cmd=cmd)
        _run(cmd, "debootstrap")
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "-f", str(tarball), "."], "tar")
        say(f"docker import as {tag}")
        repository, _, version = tag.partition(":")
        try:
            client.api.import_image(src=str(tarball), repository=repository, tag=version)
        except APIError as err:
            raise ImageBuildError(f"docker import of the base rootfs failed: {err}") from err
    if not _image_exists(client, tag):
        raise ImageBuildError(f"docker import reported success but {tag} is not there")
    _drop_replaced(client, old_id, tag)
    log.info("base.built", tag=tag)
    return tag, False


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _context_tar(directory: Path) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, path in _context_files(directory):
            info = tar.gettarinfo(str(path), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    buf.seek(0)
    return buf


def build_image(
    name_or_path: str | Path,
    *,
    client: docker.DockerClient,
    mirror: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> BuiltImage:
    """Build (or reuse) a sandbox image and its base. Never pulls from a registry."""
    started = time.monotonic()
    source = load_sandbox(name_or_path)
    if not (source.directory / "Dockerfile").is_file():
        raise SandboxDefinitionError(f"{source.directory}: no Dockerfile")
    tag = image_tag(source)
    btag = base_tag(source.definition)
    old_id = _image_id(client, tag)
    if not force and old_id is not None:
        return BuiltImage(name=source.name, tag=tag, base_tag=btag, reused=True)
    btag, _ = build_base(client, source.definition, mirror=mirror, force=force, progress=progress)
    if progress:
        progress(f"docker build {source.directory / 'Dockerfile'} -> {tag}")
    try:
        client.images.build(
            fileobj=_context_tar(source.directory),
            custom_context=True,
            tag=tag,
            buildargs={"BASE": btag},
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
            labels={"coimprove.image": source.name, "coimprove.base": btag},
        )
    except BuildError as err:
        lines = [str(c.get("stream", c.get("error", ""))).rstrip() for c in err.build_log]
        tail = "\n".join(line for line in lines if line)[-2000:]
        raise ImageBuildError(f"building {tag} failed: {err.msg}\n{tail}") from err
    except APIError as err:
        raise ImageBuildError(f"building {tag} failed: {err}") from err
    _drop_replaced(client, old_id, tag)
    seconds = time.monotonic() - started
    log.info("image.built", name=source.name, tag=tag, seconds=round(seconds, 1))
    return BuiltImage(name=source.name, tag=tag, base_tag=btag, reused=False, seconds=seconds)
