"""A throwaway PostgreSQL server for the test session: initdb in a temporary directory.

Runs as the ``postgres`` system user when the tests run as root (the server refuses root).
Nothing here touches the machine's own PostgreSQL service.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """Start with ``start()``, stop with ``stop()``; ``url`` is a superuser URL."""

    def __init__(self, bindir: Path, max_connections: int = 200) -> None:
        self.bindir = bindir
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="sqlfence-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", self.user,
            "--auth=trust",
            "--no-sync",
            "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={self.max_connections}"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-o", options,
            "-l", str(self.root / "server.log"),
            "-w", "-t", "60",
            "start",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start; see {self.root / 'server.log'}")

    @contextmanager
    def databases(self, count: int = 1) -> Iterator[list[str]]:
        """The URLs of ``count`` fresh, empty databases on this server, dropped afterwards."""
        import psycopg

        names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(count)]
        with psycopg.connect(self.url, autocommit=True) as admin:
            for name in names:
                admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield [self.url.rsplit("/", 1)[0] + f"/{name}" for name in names]
        finally:
            with psycopg.connect(self.url, autocommit=True) as admin:
                for name in names:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def started(missing: Callable[[str], None], max_connections: int = 200) -> Iterator[PostgresServer]:
    """A server started for the block and stopped after it; ``missing`` is told (it skips
    or fails the test) when PostgreSQL is not installed."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl)")
        raise AssertionError("unreachable")
    server = PostgresServer(bindir, max_connections)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def one(cursor: Any) -> tuple[Any, ...]:
    """The one row a psycopg cursor's query returned (the test fails when there is none)."""
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return tuple(row)
