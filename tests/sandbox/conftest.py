"""Sandbox fixtures: a sandbox root per test that must be empty of namespaces afterwards,
and a PostgreSQL server that asks for passwords (the session's own one trusts everybody)."""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sqlfence.errors import SandboxError
from sqlfence.sandbox import AgentSandbox, Registry, reap
from sqlfence.sandbox.registry import DATABASE
from sqlfence.sandbox.runtimes import docker as runtime
from tests.conftest import missing
from tests.postgres_server import PostgresServer, started

REPOSITORY = Path(__file__).parents[2]


def leftovers(root: Path) -> list[str]:
    """What a sandbox may leave: namespaces, private snapshots, registry records (as
    ``registry:NAME``) and any file in the registry folder but its database."""
    found = []
    for part in ("sandboxes", "registry", "sandbox-snapshots"):
        where = root / part
        if where.exists():
            found += [
                str(p.relative_to(root))
                for p in where.rglob("*")
                if p.is_file() and not (part == "registry" and p.name.startswith(DATABASE))
            ]
    return found + [f"registry:{record.name}" for record in Registry(root).records()]


def flip_byte(path: Path) -> None:
    """Damage a snapshot file the smallest way: one bit of its middle byte."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def count_rows(sb: AgentSandbox, table: str = "entities") -> int:
    """The rows of ``table``, counted through a fence connection of ``sb``."""
    with sb.get_connection() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def signal_when_ready(script: str, *args: str, signum: int = signal.SIGKILL) -> None:
    """Run ``script`` in a fresh interpreter; once it prints ``ready``, send it ``signum``.

    The child gets the signal and is waited for even when it never becomes ready.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, cwd=REPOSITORY
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signum)
        child.wait()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A sandbox root; the test fails if any sandbox file outlives it."""
    home = tmp_path / ".sqlfence"
    yield home
    left = leftovers(home)
    reap(home, everything=True)
    assert left == [], f"sandbox files leaked: {left}"


def wide_modes(root: Path) -> list[str]:
    """Everything under ``root`` (and itself) that is not a 0700 directory or a 0600 file."""
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        if mode != expected:
            wrong.append(f"{path.relative_to(root.parent)} {mode:o}")
    return wrong


def files_holding(root: Path, *texts: str) -> list[str]:
    """Files under ``root`` whose bytes contain one of ``texts``."""
    needles = [text.encode() for text in texts]
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


@dataclass(frozen=True)
class PasswordServer:
    """A PostgreSQL server whose every TCP login needs a password (scram-sha-256)."""

    address: str  # the superuser's admin URL without its password
    password: str
    port: int

    @property
    def url(self) -> str:
        """The admin URL with the password in it."""
        return self.address.replace("postgres@", f"postgres:{self.password}@", 1)


@pytest.fixture(scope="session")
def password_server() -> Iterator[PasswordServer]:
    """A second PostgreSQL server for the session, asking for passwords over TCP."""
    import psycopg
    from psycopg import sql

    with started(missing) as server:
        password = f"admin-{secrets.token_hex(16)}"
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
            (server.data / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            )
            admin.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while not _asks_for_password(server.url):
            assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
            time.sleep(0.05)
        yield PasswordServer(server.url, password, server.port)


SMALL_MAX_CONNECTIONS = 20


@pytest.fixture(scope="session")
def small_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server started with ``max_connections`` = SMALL_MAX_CONNECTIONS."""
    with started(missing, SMALL_MAX_CONNECTIONS) as server:
        yield server


def _asks_for_password(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        return bool(error.pgconn is not None and error.pgconn.needs_password)
    return False


@pytest.fixture
def no_stored_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """An environment (this process's, and returned for children) where libpq finds no
    password: no PGPASSWORD, no password file, no service file."""
    for name in ("PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "no-pg_service.conf"))
    return dict(os.environ)


# -- a Docker engine and the local PostgreSQL image (tests marked docker) ------------------


@pytest.fixture(scope="module")
def engine() -> Any:
    """The Docker engine, or a skip (a failure in CI) when none answers."""
    try:
        return runtime.client()
    except SandboxError:
        missing("Docker engine")
        raise AssertionError("unreachable") from None


@pytest.fixture(scope="module")
def image(engine: Any) -> str:
    """The PostgreSQL image to run (it must exist locally: nothing can be pulled)."""
    name = os.environ.get("SQLFENCE_TEST_PG_IMAGE")
    if not name:
        missing("a local PostgreSQL image (SQLFENCE_TEST_PG_IMAGE)")
    try:
        engine.images.get(name)
    except Exception:
        missing(f"the image {name}")
    return str(name)


@pytest.fixture
def server(postgres_server: PostgresServer) -> Iterator[str]:
    """The session's PostgreSQL server; no sandbox database or role may outlive the test."""
    import psycopg

    from sqlfence.sandbox import naming

    yield postgres_server.url
    with psycopg.connect(postgres_server.url) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %(p)s UNION ALL "
            "SELECT rolname FROM pg_roles WHERE rolname ~ %(p)s",
            {"p": naming.PATTERN},
        ).fetchall()
    assert left == []
