"""Sandbox roles the database itself confines, checked on raw psycopg connections made with
the sandbox's own credentials (no fence in the way)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from sqlfence.sandbox import AgentSandbox, naming
from sqlfence.sandbox.runtimes.external import ExternalRuntime
from tests.postgres_server import PostgresServer, find_bindir, one

pytestmark = pytest.mark.postgres

WRITES = yaml.safe_load((Path(__file__).parent / "data" / "postgres_read_only.yaml").read_text())
AGENT, TENANT = "alice-the-agent", "acme-widgets"


def _create(url: str, root: Path, runtime: Any = "external", **kwargs: Any) -> AgentSandbox:
    return AgentSandbox.create(
        agent_id=AGENT, tenant=TENANT, backend="postgres", runtime=runtime, server_url=url,
        root=root, **kwargs,
    )  # fmt: skip


def _on(sb: AgentSandbox, database: str) -> str:
    """The sandbox's own URL (its role and password), pointed at ``database``."""
    return sb.namespace.url.rsplit("/", 1)[0] + f"/{database}"


def _refused(conn: psycopg.Connection[Any], statement: str) -> bool:
    """True when ``statement`` fails for want of a privilege (in a transaction, rolled back)."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


@pytest.fixture
def golden(server: str, root: Path) -> str:
    """A shared snapshot (pg_dump) with a table, its sequence and a view."""
    with _create(server, root) as maker, maker.get_connection() as conn:
        conn.execute("CREATE TABLE entities (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO entities (name) VALUES ('one'), ('two'), ('three')")
        conn.execute("CREATE VIEW names AS SELECT name FROM entities")
        conn.commit()
        maker.create_snapshot("golden", shared=True)
    return "golden"


def test_read_only_is_privileges_not_a_session_default(
    server: str, root: Path, golden: str
) -> None:
    """The role turns its read-only default off (it may), and still can write nothing: every
    write in data/postgres_read_only.yaml is refused, before and after an in-server restore."""
    with _create(server, root, access_policy={"read_only": True}, load_snapshot=golden) as sb:
        with psycopg.connect(sb.namespace.url, autocommit=True) as raw:
            raw.execute("SET default_transaction_read_only = off")
            raw.execute("ALTER ROLE CURRENT_USER SET default_transaction_read_only = off")
        sb.create_snapshot("s")
        for moment in ("loaded", "restored"):
            with psycopg.connect(sb.namespace.url, autocommit=True) as raw:
                assert raw.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
                assert raw.execute("SELECT count(*) FROM names").fetchone() == (3,)
                allowed = [
                    write for write in WRITES if not _refused(raw, write.format(database=sb.name))
                ]
                assert allowed == [], f"{moment}: not refused by privileges"
                assert raw.execute("SELECT count(*) FROM entities").fetchone() == (3,)
            sb.restore_snapshot("s")


def test_read_only_data_belongs_to_no_login_role(server: str, root: Path, golden: str) -> None:
    """Loaded tables are owned by the sandbox's NOLOGIN owner role: not the agent's, not the
    admin's (a snapshot's views and functions never run with the admin's rights)."""
    with (
        _create(server, root, access_policy={"read_only": True}, load_snapshot=golden) as sb,
        psycopg.connect(sb.namespace.url) as raw,
    ):
        owner, can_login, superuser = one(
            raw.execute(
                "SELECT r.rolname, r.rolcanlogin, r.rolsuper FROM pg_class c "
                "JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'entities'"
            )
        )
        assert owner == naming.derived(sb.name, "OWNER")
        assert (can_login, superuser) == (False, False)


def test_role_cannot_open_its_database_to_others(server: str, root: Path) -> None:
    """The admin owns the database: the role's GRANT CONNECT to PUBLIC or to another sandbox
    grants nothing, and that other sandbox's role is still refused by the server."""
    with _create(server, root) as mine, _create(server, root) as other:
        with psycopg.connect(mine.namespace.url, autocommit=True) as raw:
            (owner,) = one(
                raw.execute(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database "
                    "WHERE datname = current_database()"
                )
            )
            assert owner != mine.name
            raw.execute(f'GRANT CONNECT ON DATABASE "{mine.name}" TO PUBLIC')
            raw.execute(f'GRANT ALL ON DATABASE "{mine.name}" TO "{other.name}"')
            assert _refused(raw, f'ALTER DATABASE "{mine.name}" OWNER TO CURRENT_USER')
            (public,) = one(
                raw.execute(
                    "SELECT has_database_privilege('public', current_database(), 'CONNECT')"
                )
            )
            assert public is False
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(_on(other, mine.name)).close()


def test_read_write_role_builds_what_it_needs(server: str, root: Path) -> None:
    """Not owning its database, a read-write role still makes tables, schemas, temp tables."""
    with _create(server, root) as sb, psycopg.connect(sb.namespace.url, autocommit=True) as raw:
        for statement in (
            "CREATE TABLE t (a integer)",
            "INSERT INTO t VALUES (1)",
            "CREATE SCHEMA work",
            "CREATE TABLE work.u AS SELECT * FROM t",
            "CREATE TEMP TABLE scratch (a integer)",
            "SELECT lo_create(0)",
        ):
            raw.execute(statement)
        assert raw.execute("SELECT count(*) FROM work.u").fetchone() == (1,)


def test_names_and_comments_say_nothing_of_agent_or_tenant(server: str, root: Path) -> None:
    """What every login can read (pg_database, pg_roles, database comments) holds no agent id
    or tenant, also after snapshots and restores; the registry alone knows."""
    with _create(server, root) as sb:
        sb.create_snapshot("before")
        sb.restore_snapshot("before")
        with psycopg.connect(_on(sb, "postgres")) as raw:  # an unmanaged server allows this
            databases = raw.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            ).fetchall()
            roles = raw.execute("SELECT rolname FROM pg_roles").fetchall()
        seen = " ".join(str(value) for row in [*databases, *roles] for value in row)
        assert sb.name.startswith("SANDBOX_")
        assert sb.name in seen
        for word in ("alice", "agent", "acme", "widgets"):
            assert word not in seen.lower().replace(sb.name.lower(), "")
        assert (sb.agent_id, sb.tenant) == (AGENT, TENANT)


@pytest.fixture
def own_server() -> Iterator[str]:
    """A server of this test's own (its server-wide settings are changed)."""
    bindir = find_bindir()
    assert bindir is not None, "the session server would have failed first"
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_a_managed_server_lets_roles_reach_their_own_database_only(
    own_server: str, root: Path
) -> None:
    """On a server sqlfence runs alone, PUBLIC has no CONNECT on postgres and template1."""
    runtime = ExternalRuntime(own_server, managed=True)
    with _create(own_server, root, runtime=runtime) as sb:
        for database in ("postgres", "template1"):
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(_on(sb, database)).close()
        with psycopg.connect(sb.namespace.url) as raw:
            assert raw.execute("SELECT current_user").fetchone() == (sb.name,)
