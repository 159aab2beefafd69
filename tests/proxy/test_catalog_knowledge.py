"""What a PostgreSQL connection learns from the catalog at connect: views, rules and parents
that read denied tables, columns or the system catalog; and the schema names resolve in."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import psycopg
import pytest

import sqlfence

POLICY = {
    "read_only": True,
    "denied_tables": ["secrets", "audit.*"],
    "denied_columns": ["users.password"],
    "max_rows": 100,
}
SCHEMA = [
    "CREATE TABLE users (id int, name text, password text)",
    "INSERT INTO users VALUES (1, 'ann', 'pw1')",
    "CREATE TABLE secrets (id int, value text)",
    "CREATE VIEW v_full AS SELECT id, name, password FROM users",
    "CREATE VIEW v_names AS SELECT id, name FROM users",
    "CREATE VIEW v_row AS SELECT u.id, row_to_json(u) AS j FROM users u",
    "CREATE VIEW v_deep AS SELECT * FROM v_full",
    "CREATE TABLE vault (id int, value text)",
    "CREATE SCHEMA hidden",
    "CREATE TABLE hidden.secrets () INHERITS (vault)",
    "CREATE TABLE pvault (id int, value text) PARTITION BY LIST (id)",
    "CREATE SCHEMA part",
    "CREATE TABLE part.secrets PARTITION OF pvault FOR VALUES IN (1)",
    "CREATE VIEW roles AS SELECT rolname FROM pg_authid",
    "CREATE TABLE notes (id int, t text)",
    "CREATE RULE r AS ON INSERT TO notes DO ALSO UPDATE secrets SET value = NEW.t",
    "CREATE SCHEMA audit",
    "CREATE TABLE audit.log (msg text)",
]


@pytest.fixture
def conn(pg_url: str) -> Iterator[sqlfence.GuardedConnection]:
    """A fence connection to a database with views, rules and children over denied data, and a
    search_path that lists the audit schema after public."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        for statement in SCHEMA:
            admin.execute(statement)
        name = pg_url.rsplit("/", 1)[1]
        admin.execute(f'ALTER DATABASE "{name}" SET search_path = "$user", public, audit')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        connection = sqlfence.connect(pg_url, policy=POLICY)
    yield connection
    connection.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT id, password FROM v_full", "reads column public.users.password"),
        ("SELECT id FROM v_deep", "reads column public.users.password"),
        ("SELECT j FROM v_row", "public.users.*"),
        ("SELECT * FROM vault", "reads hidden.secrets"),
        ("SELECT * FROM ONLY vault", "reads hidden.secrets"),
        ("SELECT * FROM pvault", "reads part.secrets"),
        ("SELECT * FROM roles", "the system catalog"),
        ("SELECT * FROM notes", "reads public.secrets"),
    ],
)
def test_what_a_relation_reads_is_judged(
    conn: sqlfence.GuardedConnection, sql: str, reason: str
) -> None:
    """A view, parent table or rule over denied data or the catalog is denied, naming why."""
    with pytest.raises(sqlfence.PolicyViolation, match=reason.replace("*", r"\*")):
        conn.execute(sql)


@pytest.mark.postgres
def test_harmless_views_stay_allowed(conn: sqlfence.GuardedConnection) -> None:
    """A view that reads no denied column answers as before."""
    assert conn.execute("SELECT id, name FROM v_names").fetchall() == [(1, "ann")]


@pytest.mark.postgres
def test_unqualified_names_resolve_where_the_fence_qualifies_them(
    conn: sqlfence.GuardedConnection,
) -> None:
    """search_path is pinned to public: `log` is not audit.log behind the fence's back."""
    with pytest.raises(sqlfence.ProgrammingError, match='relation "log" does not exist'):
        conn.execute("SELECT msg FROM log")
    conn.rollback()
    assert conn.execute("SELECT current_setting('search_path')").fetchone() == ("public, pg_temp",)
