"""Row filters as PostgreSQL row security: checked on raw psycopg connections made with the
sandbox's own credentials (no fence in the way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlfence.sandbox import AgentSandbox, naming

pytestmark = pytest.mark.postgres

FILTER = {"orders": "tenant_id = :tenant"}


def _create(url: str, root: Path, tenant: str | None = "acme", **kwargs: Any) -> AgentSandbox:
    return AgentSandbox.create(
        agent_id="agent-1", tenant=tenant, backend="postgres", runtime="external",
        server_url=url, root=root, **kwargs,
    )  # fmt: skip


def _tenants(raw: psycopg.Connection[Any]) -> list[str]:
    rows = raw.execute("SELECT tenant_id FROM orders ORDER BY id").fetchall()
    return [row[0] for row in rows]


def _refused(raw: psycopg.Connection[Any], statement: str) -> bool:
    """True when ``statement`` fails (in a transaction, rolled back)."""
    try:
        with raw.transaction():
            raw.execute(statement)
    except psycopg.Error:
        return True
    return False


@pytest.fixture
def golden(server: str, root: Path) -> str:
    """A shared snapshot of two tenants' orders (and a table no filter names)."""
    with _create(server, root, tenant=None) as maker, maker.get_connection() as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, tenant_id text, total int)")
        conn.execute(
            "INSERT INTO orders VALUES (1, 'acme', 10), (2, 'globex', 20), (3, 'acme', 30)"
        )
        conn.execute("CREATE TABLE notes (id integer)")
        conn.execute("INSERT INTO notes VALUES (1), (2)")
        conn.commit()
        maker.create_snapshot("golden", shared=True)
    return "golden"


def _read_only(**extra: Any) -> dict[str, Any]:
    return {"read_only": True, "row_filters": FILTER, **extra}


def test_raw_role_sees_only_its_rows(server: str, root: Path, golden: str) -> None:
    """A read-only sandbox's role, connecting raw, sees only its tenant's orders (all the
    notes), before and after an in-server restore; the fence agrees."""
    with _create(server, root, access_policy=_read_only(), load_snapshot=golden) as sb:
        sb.create_snapshot("s")
        for _moment in ("loaded", "restored"):
            with psycopg.connect(sb.namespace.url, autocommit=True) as raw:
                assert _tenants(raw) == ["acme", "acme"]
                assert raw.execute("SELECT count(*) FROM notes").fetchone() == (2,)
                assert raw.execute("SELECT sum(total) FROM orders").fetchone() == (40,)
            sb.restore_snapshot("s")
        with sb.get_connection() as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (2,)


def test_raw_role_cannot_turn_row_security_off(server: str, root: Path, golden: str) -> None:
    """The login role owns no filtered table in a read-only sandbox: it cannot disable, un-
    force or drop the policies, add a policy of its own, or become the owner role."""
    with (
        _create(server, root, access_policy=_read_only(), load_snapshot=golden) as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        owner = naming.derived(sb.name, "OWNER")
        for statement in (
            "ALTER TABLE orders DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE orders NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY sqlfence_row_filter_only ON orders",
            "CREATE POLICY mine ON orders USING (true)",
            f'SET ROLE "{owner}"',
            "SET row_security = off; SELECT * FROM orders",
        ):
            assert _refused(raw, statement), statement
        assert _tenants(raw) == ["acme", "acme"]


def test_writes_outside_the_filter_are_refused(server: str, root: Path, golden: str) -> None:
    """WITH CHECK: a read-write sandbox's role may not insert another tenant's row or move
    its own to another tenant, and does not see (or change) another tenant's rows."""
    policy = {"row_filters": FILTER}
    with (
        _create(server, root, access_policy=policy, load_snapshot=golden) as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        assert _refused(raw, "INSERT INTO orders VALUES (9, 'globex', 1)")
        assert _refused(raw, "UPDATE orders SET tenant_id = 'globex' WHERE id = 1")
        raw.execute("UPDATE orders SET total = 0")
        raw.execute("INSERT INTO orders VALUES (4, 'acme', 1)")
        assert _tenants(raw) == ["acme", "acme", "acme"]
        assert raw.execute("SELECT sum(total) FROM orders").fetchone() == (1,)


def test_read_write_owner_can_remove_the_policies(server: str, root: Path, golden: str) -> None:
    """The honest limit: in a read-write sandbox the login role loads the snapshot and owns
    its tables, so on a raw connection it can switch row security off; its own new tables
    get no row security at all."""
    with (
        _create(server, root, access_policy={"row_filters": FILTER}, load_snapshot=golden) as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        assert _tenants(raw) == ["acme", "acme"]
        raw.execute("ALTER TABLE orders NO FORCE ROW LEVEL SECURITY")
        assert _tenants(raw) == ["acme", "globex", "acme"]


def test_snapshot_policies_cannot_widen_the_filter(server: str, root: Path) -> None:
    """A snapshot carrying a permissive policy of its own (USING (true)) still shows only
    the tenant's rows: sqlfence's restrictive policy is ANDed with every other."""
    with _create(server, root, tenant=None) as maker, maker.get_connection() as conn:
        conn.execute("CREATE TABLE orders (id integer, tenant_id text)")
        conn.execute("INSERT INTO orders VALUES (1, 'acme'), (2, 'globex')")
        conn.commit()
        with psycopg.connect(maker.namespace.url, autocommit=True) as raw:
            raw.execute("ALTER TABLE orders ENABLE ROW LEVEL SECURITY")
            raw.execute("CREATE POLICY everyone ON orders USING (true)")
        maker.create_snapshot("open", shared=True)
    with (
        _create(server, root, access_policy=_read_only(), load_snapshot="open") as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        assert [r[0] for r in raw.execute("SELECT tenant_id FROM orders").fetchall()] == ["acme"]


def test_no_tenant_means_no_rows(server: str, root: Path, golden: str) -> None:
    """A sandbox without the tenant its filter needs sees no filtered row raw (the fence
    denies every statement on the table)."""
    with (
        _create(server, root, tenant=None, access_policy=_read_only(), load_snapshot=golden) as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        assert _tenants(raw) == []
        assert raw.execute("SELECT count(*) FROM notes").fetchone() == (2,)


def test_assign_moves_the_filter_to_the_new_tenant(server: str, root: Path, golden: str) -> None:
    """A sandbox handed to another tenant (as a pool does) filters for that tenant; a
    snapshot of it loaded into an unfiltered sandbox keeps no sqlfence policy."""
    with _create(server, root, access_policy=_read_only(), load_snapshot=golden) as sb:
        sb.assign("agent-2", "globex")
        with psycopg.connect(sb.namespace.url, autocommit=True) as raw:
            assert _tenants(raw) == ["globex"]
        sb.create_snapshot("filtered", shared=True)
    with (
        _create(server, root, access_policy={"read_only": True}, load_snapshot="filtered") as sb,
        psycopg.connect(sb.namespace.url, autocommit=True) as raw,
    ):
        assert _tenants(raw) == ["acme", "globex", "acme"]
        (policies,) = raw.execute("SELECT count(*) FROM pg_policy").fetchone() or (None,)
        assert policies == 0


def test_unfiltered_sandbox_stays_unfiltered_through_restores_and_assigns(
    server: str, root: Path, golden: str
) -> None:
    """Without row filters, a new agent needs no round trip (a pool's acquire): the sandbox
    holds none of sqlfence's policies after a filtered snapshot is loaded, restored in-server
    and handed to other agents, and its role sees every row raw each time."""
    with _create(server, root, access_policy=_read_only(), load_snapshot=golden) as sb:
        sb.create_snapshot("filtered", shared=True)  # carries sqlfence's policies
    with _create(server, root, access_policy={"read_only": True}) as sb:
        sb.load_snapshot("filtered")
        sb.create_snapshot("own")
        for agent, tenant in (("agent-2", "globex"), ("agent-3", None), ("agent-3", None)):
            sb.restore_snapshot("own")
            sb.assign(agent, tenant)
            with psycopg.connect(sb.namespace.url, autocommit=True) as raw:
                assert _tenants(raw) == ["acme", "globex", "acme"]
                (policies,) = raw.execute("SELECT count(*) FROM pg_policy").fetchone() or (None,)
                assert policies == 0
