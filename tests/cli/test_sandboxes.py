"""``sqlfence sandbox ...`` and ``sqlfence pool warm`` on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sqlfence
from sqlfence.sandbox import AgentSandbox, listing
from tests.postgres_server import PostgresServer


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "--json", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_detached_sandbox_lifecycle(tmp_path: Path) -> None:
    """create outlives its command, gc keeps it, snapshot/restore work, destroy removes it."""
    root = str(tmp_path / "root")
    created = json.loads(_cli("sandbox", "create", "bot", "--root", root))
    name = created["name"]
    assert json.loads(_cli("sandbox", "gc", "--root", root)) == {"removed": []}
    with sqlfence.connect(created["url"], policy={"read_only": False, "statements": ["*"]}) as c:
        c.execute("CREATE TABLE notes (body TEXT)")
        c.execute("INSERT INTO notes VALUES ('kept')")
    snapshot = json.loads(_cli("sandbox", "snapshot", name, "before", "--root", root))
    assert snapshot["tables"] == {"notes": 1}
    with sqlfence.connect(created["url"], policy={"read_only": False}) as c:
        c.execute("DELETE FROM notes")
    _cli("sandbox", "restore", name, "before", "--root", root)
    opened = AgentSandbox.open(name, root)
    with opened.get_connection() as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]
    _cli("sandbox", "destroy", name, "--root", root)
    assert listing(root) == []
    assert not Path(created["url"].removeprefix("sqlite:///")).exists()


def test_gc_all_removes_detached_sandboxes(tmp_path: Path) -> None:
    """A detached sandbox ends with `gc --all` (or its ttl)."""
    root = str(tmp_path / "root")
    name = json.loads(_cli("sandbox", "create", "bot", "--root", root))["name"]
    assert json.loads(_cli("sandbox", "gc", "--all", "--root", root)) == {"removed": [name]}


@pytest.mark.postgres
def test_postgres_sandbox_from_the_command_line(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """On PostgreSQL: create, snapshot, restore and destroy by name leave no database."""
    root = str(tmp_path / "root")
    created = json.loads(
        _cli("sandbox", "create", "pg-bot", "--backend", "postgres",
             "--server-url", postgres_server.url, "--root", root)
    )  # fmt: skip
    name = created["name"]
    _cli("sandbox", "snapshot", name, "s1", "--root", root)
    _cli("sandbox", "restore", name, "s1", "--root", root)
    with pytest.raises(sqlfence.SandboxError):
        AgentSandbox.open(name, root).get_connection()  # its role password stayed behind
    _cli("sandbox", "destroy", name, "--root", root)
    with sqlfence.connect(postgres_server.url, policy=sqlfence.Policy.unrestricted()) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ILIKE %s", (f"{name}%",)
        ).fetchall()
    assert left == []


def test_pool_warm(tmp_path: Path) -> None:
    """`pool warm` reports when the pool's sandboxes are ready and leaves none behind."""
    root = str(tmp_path / "root")
    report = json.loads(_cli("pool", "warm", "--size", "2", "--root", root))
    assert report["ready"] == 2
    assert listing(root) == []
