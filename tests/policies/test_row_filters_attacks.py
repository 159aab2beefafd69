"""Row filters against an outsider's attacks that once worked, on real SQLite and PostgreSQL.

- SQLite's ``x IN orders`` reads the table, which sqlglot read as a column: the fence saw
  no table there, so neither the filter nor a deny list applied (``sql/sqlite_reading.py``).
- A condition of the agent's, run by the planner before the filter (an index on its column
  lets it), named hidden rows' values in an error: the filtered table is now fenced off from
  the planner (``LIMIT -1`` on SQLite, ``OFFSET 0`` on PostgreSQL).
- A partition or inheritance child of a filtered parent was read directly, unfiltered.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence

FILTERS = {"orders": "tenant_id = :tenant"}
NOTES = [(1, "A", "a1"), (2, "A", "a2"), (3, "B", "SECRET_B1"), (4, "B", "SECRET_B2")]


def _connect(url: str, policy: dict[str, Any], **options: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy, tenant="A", **options)


@pytest.fixture
def shop(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE orders (id INTEGER, tenant_id TEXT, note TEXT)")
    raw.execute("CREATE INDEX orders_note ON orders (note)")
    raw.execute("CREATE TABLE secret (id INTEGER, tenant_id TEXT, note TEXT)")
    raw.executemany("INSERT INTO orders VALUES (?, ?, ?)", NOTES)
    raw.executemany("INSERT INTO secret VALUES (?, ?, ?)", NOTES)
    raw.commit()
    raw.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT (3, 'B', 'SECRET_B1') IN orders FROM orders LIMIT 1", 0),
        ("SELECT (3, 'B', 'SECRET_B1') IN main.orders FROM orders LIMIT 1", 0),
        ("SELECT count(*) FROM orders WHERE (3, 'B', 'SECRET_B1') IN orders", 0),
        ("SELECT (3, 'B', 'SECRET_B1') NOT IN orders FROM orders LIMIT 1", 1),
        ("SELECT (1, 'A', 'a1') IN orders FROM orders LIMIT 1", 1),
    ],
)
def test_sqlite_in_a_table_reads_the_filtered_table(shop: str, sql: str, expected: int) -> None:
    conn = _connect(shop, {"row_filters": FILTERS, "read_only": True})
    try:
        assert conn.execute(sql).fetchone()[0] == expected
    finally:
        conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 IN secret FROM orders",
        "SELECT (1, 'A', 'a1') IN main.secret FROM orders",
        "SELECT id FROM orders WHERE id NOT IN secret",
    ],
)
def test_sqlite_in_a_table_is_a_read_the_deny_list_sees(shop: str, sql: str) -> None:
    conn = _connect(shop, {"denied_tables": ["secret"], "read_only": True})
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="secret is on the deny list"):
            conn.execute(sql)
    finally:
        conn.close()


ERROR_ORACLES = {
    "sqlite": (
        "SELECT id FROM orders WHERE note > '' AND note NOT LIKE 'a%' "
        "AND json_extract('{}', '$' || note) IS NULL"
    ),
    "postgres": "SELECT id FROM orders WHERE note > '' AND note NOT LIKE 'a%' AND note::int > 0",
}


def _no_hidden_value_in_errors(conn: Any, sql: str) -> None:
    """The statement either finds no visible row or fails without naming a hidden value."""
    failure = ""
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchall() if cursor.description else []
    except sqlfence.Error as error:
        failure, rows = str(error), []
    assert "SECRET" not in failure
    assert rows == []


def test_sqlite_an_agents_condition_runs_only_on_visible_rows(shop: str) -> None:
    conn = _connect(shop, {"row_filters": FILTERS, "read_only": True})
    try:
        _no_hidden_value_in_errors(conn, ERROR_ORACLES["sqlite"])
        assert conn.execute("SELECT note FROM orders WHERE note > 'a1'").fetchall() == [("a2",)]
    finally:
        conn.close()


@pytest.fixture
def pg_shop(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE orders (id int, tenant_id text, note text)")
        admin.execute("CREATE INDEX orders_note ON orders (note)")
        for row in NOTES:
            admin.execute("INSERT INTO orders VALUES (%s, %s, %s)", row)
        admin.execute("CREATE TABLE orders_old () INHERITS (orders)")
        admin.execute("INSERT INTO orders_old VALUES (50, 'B', 'SECRET_OLD'), (51, 'A', 'a_old')")
        admin.execute("CREATE TABLE inv (id int, tenant_id text) PARTITION BY LIST (tenant_id)")
        admin.execute("CREATE TABLE inv_a PARTITION OF inv FOR VALUES IN ('A')")
        admin.execute("CREATE TABLE inv_b PARTITION OF inv FOR VALUES IN ('B')")
        admin.execute("INSERT INTO inv VALUES (1, 'A'), (2, 'B')")
        admin.execute("ANALYZE")
    return pg_url


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_an_agents_condition_runs_only_on_visible_rows(pg_shop: str) -> None:
    name = pg_shop.rsplit("/", 1)[1]
    with psycopg.connect(pg_shop, autocommit=True) as admin:  # so the planner uses the index
        admin.execute(f'ALTER DATABASE "{name}" SET enable_seqscan = off')
    with psycopg.connect(pg_shop) as admin, pytest.raises(psycopg.Error, match="SECRET"):
        admin.execute(ERROR_ORACLES["postgres"]).fetchall()  # unfiltered, it names them
    conn = _connect(pg_shop, {"row_filters": FILTERS, "read_only": True})
    try:
        _no_hidden_value_in_errors(conn, ERROR_ORACLES["postgres"])
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_children_and_partitions_of_a_filtered_table_are_not_read_around_it(
    pg_shop: str,
) -> None:
    policy = {"row_filters": {**FILTERS, "inv": "tenant_id = :tenant"}, "read_only": True}
    conn = _connect(pg_shop, policy)
    try:
        parent = conn.execute("SELECT id FROM orders ORDER BY id").fetchall()
        assert parent == [(1,), (2,), (51,)]  # the child's rows through the parent, filtered
        assert conn.execute("SELECT id FROM inv").fetchall() == [(1,)]
        for sql in ("SELECT * FROM orders_old", "SELECT * FROM inv_b", "SELECT * FROM inv_a"):
            with pytest.raises(sqlfence.PolicyViolation, match="is read through"):
                conn.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE orders SET note = note WHERE note > '' AND note NOT LIKE 'a%' "
        "AND json_extract('{}', '$' || note) IS NULL",
        "DELETE FROM orders WHERE note > '' AND note NOT LIKE 'a%' "
        "AND json_extract('{}', '$' || note) IS NULL",
    ],
)
def test_sqlite_a_writes_condition_runs_only_on_visible_rows(shop: str, sql: str) -> None:
    """UPDATE and DELETE: the agent's WHERE is evaluated only where the filter holds."""
    policy = {"row_filters": FILTERS, "statements": ["select", "update", "delete"]}
    conn = _connect(shop, policy)
    try:
        _no_hidden_value_in_errors(conn, sql)
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    finally:
        conn.close()


# -- a second outsider's round --------------------------------------------------------------


def test_sqlite_a_virtual_tables_shadow_tables_are_not_read_around_its_filter(
    tmp_path: Path,
) -> None:
    """An FTS5 table keeps its rows in shadow tables (docs_content, docs_data...) that can be
    read directly: they are refused unless they have a filter of their own."""
    path = tmp_path / "fts.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE VIRTUAL TABLE docs USING fts5(tenant_id, body);"
        "INSERT INTO docs VALUES ('A', 'hello alpha'), ('B', 'topsecret bravo');"
    )
    raw.commit()
    raw.close()
    conn = _connect(f"sqlite:///{path}", {"row_filters": {"docs": "tenant_id = :tenant"}})
    try:
        for shadow in ("docs_content", "docs_data", "main.docs_idx", "docs_docsize"):
            with pytest.raises(sqlfence.PolicyViolation, match=r"is read through main\.docs"):
                conn.execute(f"SELECT * FROM {shadow}")
    finally:
        conn.close()


def test_sqlite_a_filtered_table_that_replaces_conflicting_rows_is_refused(
    tmp_path: Path,
) -> None:
    """UNIQUE ... ON CONFLICT REPLACE in the table's definition: a plain INSERT by tenant A
    would delete B's conflicting row. The connection is refused up front."""
    path = tmp_path / "u.db"
    raw = sqlite3.connect(path)
    raw.execute(
        "CREATE TABLE u (id INTEGER PRIMARY KEY, tenant_id TEXT, code TEXT UNIQUE "
        "ON CONFLICT REPLACE)"
    )
    raw.execute("CREATE TABLE other (id INTEGER, code TEXT UNIQUE ON CONFLICT REPLACE)")
    raw.commit()
    raw.close()
    url = f"sqlite:///{path}"
    with pytest.raises(sqlfence.ConfigurationError, match=r"main\.u declares ON CONFLICT REPLACE"):
        _connect(url, {"row_filters": {"u": "tenant_id = :tenant"}})
    _connect(url, {"row_filters": {"elsewhere": "tenant_id = :tenant"}}).close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS $$SELECT string_agg(note, ',') "
        "FROM orders$$",
        "CREATE OR REPLACE FUNCTION leak() RETURNS int AS 'SELECT 1' LANGUAGE sql",
        "CREATE PROCEDURE pwn() LANGUAGE sql AS $$UPDATE orders SET note = 'x'$$",
        "CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION leak()",
    ],
)
def test_postgres_routines_are_not_created_under_row_filters(pg_shop: str, sql: str) -> None:
    """A routine's body is text the fence does not read: under row filters it is refused."""
    conn = _connect(pg_shop, {"row_filters": FILTERS, "statements": ["*"], "read_only": False})
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="defines code"):
            conn.execute(sql)
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_constraints_error_does_not_name_another_tenants_values(pg_url: str) -> None:
    """An exclusion constraint's error names the row it conflicts with: under row filters
    the detail is withheld."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        admin.execute(
            "CREATE TABLE bookings (id serial, tenant_id text, during tsrange, "
            "EXCLUDE USING gist (during WITH &&))"
        )
        admin.execute(
            "INSERT INTO bookings (tenant_id, during) "
            "VALUES ('B', '[2024-03-07 09:13, 2024-03-07 10:47)')"
        )
    policy = {"row_filters": {"bookings": "tenant_id = :tenant"}, "read_only": False}
    conn = _connect(pg_url, policy)
    try:
        with pytest.raises(sqlfence.IntegrityError) as raised:
            conn.execute(
                "INSERT INTO bookings (tenant_id, during) VALUES ('A', '[2000-01-01, 2100-01-01)')"
            )
        assert "2024-03-07" not in str(raised.value)
        assert "detail is withheld" in str(raised.value)
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_partitioned_table_under_a_column_key_stays_readable(pg_shop: str) -> None:
    """``*.tenant_id`` filters the parent and each partition: reading the parent is filtered
    (its filter covers the partitions' rows), a partition read directly is filtered too."""
    conn = _connect(pg_shop, {"row_filters": {"*.tenant_id": "tenant_id = :tenant"}})
    try:
        assert conn.execute("SELECT id FROM inv").fetchall() == [(1,)]
        assert conn.execute("SELECT id FROM inv_b").fetchall() == []
        assert conn.execute("SELECT id FROM orders ORDER BY id").fetchall() == [(1,), (2,), (51,)]
        assert conn.execute("SELECT id FROM orders_old").fetchall() == [(51,)]
    finally:
        conn.close()


@pytest.mark.parametrize(
    "clause",
    [
        "ON CONFLICT -- the owner's note\n REPLACE",
        "ON/**/CONFLICT/**/REPLACE",
        "ON /* a\nlong note */ CONFLICT\tREPLACE",
    ],
)
def test_sqlite_a_replacing_clause_with_comments_in_it_is_refused_too(
    tmp_path: Path, clause: str
) -> None:
    """SQLite skips comments between the words: ON/**/CONFLICT/**/REPLACE replaced B's rows
    (seventh outside attack), where the fence looked for the words side by side."""
    path = tmp_path / "c.db"
    raw = sqlite3.connect(path)
    raw.execute(f"CREATE TABLE u (id INTEGER PRIMARY KEY {clause}, tenant_id TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(sqlfence.ConfigurationError, match="ON CONFLICT REPLACE"):
        _connect(f"sqlite:///{path}", {"row_filters": {"u": "tenant_id = :tenant"}})
