"""AgentSandbox on the real PostgreSQL server the test session starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence
from sqlfence.sandbox import AgentSandbox, Registry, SandboxPool, SnapshotCorrupt, naming
from sqlfence.sandbox.backends import postgres_admin
from sqlfence.sandbox.backends.postgres import PostgresBackend
from tests.postgres_server import PostgresServer, one
from tests.sandbox.conftest import SMALL_MAX_CONNECTIONS, count_rows, flip_byte

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
            limit, config = one(
                admin.execute(
                    "SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", (sb.name,)
                )
            )
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


def test_a_create_that_cannot_reach_its_server_leaves_no_record(root: Path) -> None:
    """A failed create leaves no registry record and no namespace behind it."""
    with pytest.raises(sqlfence.SandboxError):
        _create("postgresql://postgres@127.0.0.1:1/postgres", root, agent_id="a1")
    assert Registry(root).records() == []


def test_a_create_that_fails_after_its_namespace_leaves_nothing(server: str, root: Path) -> None:
    """A create that fails once its database exists (a golden dataset that is not there)
    drops the database and role and forgets the record (the fixture checks the server)."""
    with pytest.raises(sqlfence.SandboxError):
        _create(server, root, agent_id="a1", load_snapshot="no-such-snapshot")
    assert Registry(root).records() == []


def test_a_pool_that_cannot_refill_says_why(root: Path) -> None:
    """The pool's metrics carry the last create error and when it happened."""
    before = time.time()
    with SandboxPool(size=1, warmup=False, backend="postgres",
                     server_url="postgresql://postgres@127.0.0.1:1/postgres", root=root,
                     acquire_timeout=0) as pool:  # fmt: skip
        deadline = time.monotonic() + 30
        while pool.metrics()["create_failures"] == 0:
            assert time.monotonic() < deadline, "the replenisher never tried"
            time.sleep(0.02)
        metrics = pool.metrics()
    assert "127.0.0.1:1" in metrics["last_create_error"]
    assert before <= metrics["last_create_error_at"] <= time.time()
    assert Registry(root).records() == []


def test_live_sandboxes_outnumber_the_servers_max_connections(
    small_server: PostgresServer, root: Path
) -> None:
    """Idle sandboxes hold no server connection: twice max_connections of them live at once,
    each still usable, and the server sees only the few connections of the shared admin pool."""
    url = small_server.url
    with psycopg.connect(url, autocommit=True) as admin:
        limit = int(one(admin.execute("SHOW max_connections"))[0])
    assert limit == SMALL_MAX_CONNECTIONS
    sandboxes = []
    try:
        for i in range(2 * limit):
            sandboxes.append(_create(url, root, agent_id=f"a{i}"))
        for sb in (sandboxes[0], sandboxes[-1]):
            with sb.get_connection() as conn:
                conn.execute("CREATE TABLE t (a integer)")
        assert _other_sessions(url) <= postgres_admin.IDLE
    finally:
        for sb in sandboxes:
            sb.destroy()
    assert _sandbox_objects(url) == ([], [])
    assert _other_sessions(url) == 0  # the last sandbox gone, its pool closed


def _other_sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        (count,) = one(
            admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            )
        )
        return int(count)


def test_a_clone_changed_in_form_only_is_refused(server: str, root: Path) -> None:
    """Changes that keep values equal but not identical (1.0 to 1.00, 0 to -0, a JSON
    document's spacing, a timestamp's zone-free shift by a second) are caught too."""
    changes = (
        "UPDATE kinds SET amount = 1.00",
        "UPDATE kinds SET ratio = '-0'",
        """UPDATE kinds SET doc = '{"a":  1}'""",
        "UPDATE kinds SET at = at + interval '1 second'",
    )
    with _create(server, root, agent_id="a1") as sb:
        with sb.get_connection() as conn:
            conn.execute(
                "CREATE TABLE kinds (amount numeric, ratio float8, doc json, at timestamp, "
                "tags text[])"
            )
            conn.execute("""INSERT INTO kinds VALUES (1.0, 0, '{"a": 1}', '2024-01-01', '{x,y}')""")
        for number, change in enumerate(changes):
            clone = sb.create_snapshot(f"s{number}").clone
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{clone}" ALLOW_CONNECTIONS true')
            with psycopg.connect(server.rsplit("/", 1)[0] + f"/{clone}", autocommit=True) as c:
                assert c.execute(change).rowcount == 1
            with pytest.raises(SnapshotCorrupt, match="digest"):
                sb.restore_snapshot(f"s{number}")
            sb.delete_snapshot(f"s{number}")


def test_an_older_versions_digest_is_still_checked(server: str, root: Path) -> None:
    """An in-server snapshot whose manifest has an older version's digest restores, and is
    refused once its clone differs."""
    with _create(server, root, agent_id="a1") as sb:
        _fill(sb)
        clone = sb.create_snapshot("before").clone
        assert clone is not None
        backend = sb.backend
        assert isinstance(backend, PostgresBackend)
        old = backend._digest_v1(sb.name)
        backend.restore_clone(sb.name, clone, old)
        assert count_rows(sb) == 10
        with sb.get_connection() as conn:
            conn.execute("DELETE FROM entities WHERE id = 1")
        with pytest.raises(SnapshotCorrupt, match="digest"):
            backend.restore_clone(sb.name, clone, backend._digest_v1(sb.name))
