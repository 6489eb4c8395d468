"""A throwaway PostgreSQL server for the tests, from Debian's binaries (or $COIMPROVE_TEST_PG_DSN).

`pg_server` (session) starts one cluster in a temporary directory on a free port — as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root — and
stops it at the end. `pg_dsn` gives each test a fresh, empty database on it. Without the
binaries the Postgres half of the conformance suite is skipped, except under ``CI=true``,
where it fails: CI installs Debian's ``postgresql`` package for it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_DSN = "COIMPROVE_TEST_PG_DSN"


@dataclass
class PgServer:
    """A server the tests may create databases on."""

    admin_dsn: str
    _restart: Callable[[], None] | None = None

    @property
    def restartable(self) -> bool:
        """Whether `restart` can restart it (a throwaway cluster; not $COIMPROVE_TEST_PG_DSN)."""
        return self._restart is not None

    def restart(self) -> None:
        """Stop the server (``-m fast``: every connection is cut) and start it again."""
        if self._restart is None:
            raise RuntimeError("this server was not started by the tests: it cannot be restarted")
        self._restart()

    def create_database(self) -> str:
        import psycopg

        name = "coimprove_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return _with_dbname(self.admin_dsn, name)

    def drop_database(self, dsn: str) -> None:
        import psycopg

        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_dbname(dsn: str, name: str) -> str:
    import psycopg

    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if found:
        return Path(found[0]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _run(cmd: list[str], user: str | None) -> None:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")


class PgUnavailable(Exception):
    """No PostgreSQL server can be had here (the reason is the message)."""


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    """$COIMPROVE_TEST_PG_DSN's server, or a new cluster in a temp dir, stopped afterwards."""
    try:
        import psycopg
    except ImportError as exc:
        raise PgUnavailable("psycopg is not installed (pip install 'coimprove[postgres]')") from exc
    if dsn := os.environ.get(ENV_DSN):
        yield PgServer(dsn)
        return
    bindir = _bin_dir()
    if bindir is None or not (bindir / "initdb").exists():
        raise PgUnavailable("initdb/pg_ctl not found (apt-get install postgresql)")
    user = None
    owner: tuple[int, int] | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PgUnavailable("running as root and there is no 'postgres' user") from exc
        user, owner = "postgres", (pw.pw_uid, pw.pw_gid)
    root = Path(tempfile.mkdtemp(prefix="coimprove-pg-"))
    if owner is not None:
        os.chown(root, *owner)
    data, port = root / "data", _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "coimprove", "--auth=trust"]
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    try:
        _run([*initdb, "-E", "UTF8", "--locale=C", "--no-sync"], user)
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options,
             "-w", "-t", "60", "start"],
            user,
        )  # fmt: skip
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailable(f"could not start a throwaway cluster: {exc}") from exc
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options]

    def restart() -> None:
        _run([*pg_ctl, "-m", "fast", "-w", "-t", "60", "restart"], user)

    try:
        admin = f"host=127.0.0.1 port={port} user=coimprove dbname=postgres"
        with psycopg.connect(admin, connect_timeout=10):
            pass
        yield PgServer(admin, restart)
    finally:
        try:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for this test session (skipped without one, failed under CI=true)."""
    try:
        with throwaway_server() as server:
            yield server
    except PgUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    dsn = pg_server.create_database()
    try:
        yield dsn
    finally:
        pg_server.drop_database(dsn)
