"""AgentSandbox on the real PostgreSQL server the test session starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence
from sqlfence.sandbox import AgentSandbox, SnapshotCorrupt, naming
from tests.postgres_server import PostgresServer
from tests.sandbox.conftest import count_rows, flip_byte

pytestmark = pytest.mark.postgres


def _sandbox_objects(url: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(url, autocommit=True) as admin:
        databases = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %s", (naming.PATTERN,)
        ).fetchall()
        roles = admin.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (naming.PATTERN,))
        return [row[0] for row in databases], [row[0] for row in roles.fetchall()]


@pytest.fixture
def server(postgres_server: PostgresServer) -> Iterator[str]:
    """The admin URL; the test fails if any sandbox database or role outlives it."""
    yield postgres_server.url
    assert _sandbox_objects(postgres_server.url) == ([], [])


def _create(server: str, root: Path, **kwargs: Any) -> AgentSandbox:
    return AgentSandbox.create(
        backend="postgres", runtime="external", server_url=server, root=root, **kwargs
    )


def _fill(sb: AgentSandbox, rows: int = 10) -> None:
    with sb.get_connection() as conn:
        conn.execute("CREATE TABLE entities (id integer PRIMARY KEY, name text)")
        conn.cursor().executemany(
            "INSERT INTO entities VALUES (%s, %s)", [(i, f"e{i}") for i in range(rows)]
        )


def test_create_use_destroy(server: str, root: Path) -> None:
    """A sandbox is a database of its own, used through its own role, dropped on exit."""
    with _create(server, root, agent_id="a1", tenant="acme") as sb:
        _fill(sb)
        assert count_rows(sb) == 10
        with sb.get_connection() as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == sb.name
        assert sb.name in _sandbox_objects(server)[0]


def test_tenants_cannot_read_each_other(server: str, root: Path) -> None:
    """The other sandbox's role cannot even connect: the database itself refuses."""
    with (
        _create(server, root, agent_id="a1", tenant="acme") as acme,
        _create(server, root, agent_id="a1", tenant="globex") as globex,
    ):
        _fill(acme)
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(globex.namespace.url.rsplit("/", 1)[0] + f"/{acme.name}").close()


def test_role_carries_the_limits(server: str, root: Path) -> None:
    """CONNECTION LIMIT, statement_timeout and read-only are set on the sandbox's role."""
    limits = {"max_connections": 3, "statement_timeout_ms": 1500}
    with _create(
        server, root, agent_id="a1", limits=limits, access_policy={"read_only": True}
    ) as sb:
        with psycopg.connect(server) as admin:
            limit, config = admin.execute(
                "SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", (sb.name,)
            ).fetchone()
        assert limit == 3
        assert set(config) == {"statement_timeout=1500", "default_transaction_read_only=on"}
        with sb.get_connection() as conn, pytest.raises(sqlfence.PolicyViolation):
            conn.execute("CREATE TABLE t (a int)")


def test_database_enforces_read_only_without_the_fence(server: str, root: Path) -> None:
    """A raw connection as a read-only sandbox's role cannot write: the second layer."""
    with (
        _create(server, root, agent_id="a1", access_policy={"read_only": True}) as sb,
        psycopg.connect(sb.namespace.url) as raw,
        pytest.raises(psycopg.Error, match="read-only"),
    ):
        raw.execute("CREATE TABLE t (a int)")


def test_snapshot_modify_restore_in_server(server: str, root: Path) -> None:
    """An in-server TEMPLATE snapshot restores the data and keeps the sandbox's role."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        manifest = sb.create_snapshot("before")
        assert manifest.clone is not None
        assert manifest.tables == {"public.entities": 10}
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM entities")
        sb.restore_snapshot("before")
        assert count_rows(sb) == 10
        with sb.get_connection() as conn:
            conn.execute("INSERT INTO entities VALUES (100, 'after restore')")


def test_open_connections_survive_a_snapshot_and_close_on_restore(server: str, root: Path) -> None:
    """With a connection open, the snapshot is taken as files and the connection keeps
    working; a restore replaces the database, so the sandbox closes its connections first
    and they say so."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        conn = sb.get_connection()
        manifest = sb.create_snapshot("live")
        assert manifest.clone is None, "no TEMPLATE clone while a session is open"
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (10,)
        conn.execute("DELETE FROM entities")
        conn.commit()
        sb.restore_snapshot("live")
        assert conn.closed
        with pytest.raises(sqlfence.InterfaceError, match="closed"):
            conn.execute("SELECT 1")
        assert count_rows(sb) == 10


def test_corrupt_in_server_snapshot_is_refused(server: str, root: Path) -> None:
    """A clone whose content changed behind the manifest is refused; data is unchanged."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        clone = sb.create_snapshot("before").clone
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{clone}" ALLOW_CONNECTIONS true')
        with psycopg.connect(server.rsplit("/", 1)[0] + f"/{clone}", autocommit=True) as c:
            c.execute("UPDATE entities SET name = 'tampered' WHERE id = 3")
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM entities WHERE id < 5")
        with pytest.raises(SnapshotCorrupt, match="digest"):
            sb.restore_snapshot("before")
        assert count_rows(sb) == 5


def test_portable_snapshot_moves_between_sandboxes(server: str, root: Path) -> None:
    """A shared (pg_dump) snapshot loads into a new sandbox; a flipped byte is refused."""
    with _create(server, root, agent_id="maker") as sb:
        _fill(sb, rows=50)
        sb.create_snapshot("golden", shared=True)
    with _create(server, root, agent_id="user", load_snapshot="golden") as sb:
        assert count_rows(sb) == 50
        # The agent reads its own catalog only when its policy allows it.
        with sb.get_connection() as conn, pytest.raises(sqlfence.PolicyViolation):
            conn.execute("SELECT tableowner FROM pg_tables")
        url = server.rsplit("/", 1)[0] + f"/{sb.name}"
        with sqlfence.connect(url, policy=sqlfence.Policy.unrestricted()) as admin:
            owner = admin.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'entities'"
            ).fetchone()[0]
        assert owner == sb.name
        dump = root / "snapshots" / "golden" / "data.pgdump"
        flip_byte(dump)
        with pytest.raises(SnapshotCorrupt):
            sb.load_snapshot("golden")
        assert count_rows(sb) == 50


def test_foreign_snapshot_is_refused(server: str, root: Path) -> None:
    """A SQLite snapshot cannot be loaded into a PostgreSQL sandbox."""
    with AgentSandbox.create(agent_id="lite", root=root) as lite:
        lite.create_snapshot("lite", shared=True)
    with (
        _create(server, root, agent_id="a1") as sb,
        pytest.raises(sqlfence.SandboxError, match="sqlite backend"),
    ):
        sb.load_snapshot("lite")


def test_pause_closes_the_database_too(server: str, root: Path) -> None:
    """While paused the fence refuses and the database refuses new raw connections."""
    with _create(server, root, agent_id="a1") as sb:
        conn = sb.get_connection()
        sb.pause()
        with pytest.raises(sqlfence.SandboxError, match="paused"):
            conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="not currently accepting"):
            psycopg.connect(sb.namespace.url).close()
        sb.resume()
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        conn.close()


def test_disk_quota_on_postgres(server: str, root: Path) -> None:
    """A database over disk_quota_mb refuses writes with QuotaExceeded."""
    with _create(server, root, agent_id="a1", limits={"disk_quota_mb": 1}) as sb:
        with sb.get_connection() as conn, pytest.raises(sqlfence.QuotaExceeded):
            conn.execute("CREATE TABLE t (a int)")
        assert sb.get_metrics()["over_quota"] is True


def test_a_dead_server_is_a_sandbox_error(tmp_path: Path) -> None:
    """A server that does not answer is sqlfence's SandboxError naming it, not psycopg's."""
    with pytest.raises(sqlfence.SandboxError, match=r"PostgreSQL server .*127\.0\.0\.1:1"):
        AgentSandbox.create(
            agent_id="a1",
            backend="postgres",
            server_url="postgresql://postgres@127.0.0.1:1/postgres",
            root=tmp_path,
        )
