"""``*`` under a wildcard denied column: the catalog's column lists tell which tables have
such a column, so ``SELECT *`` on a table without one runs; a table with one, or one the
connection does not know (created after it connected), is still refused."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import sqlfence

POLICY = {"read_only": True, "denied_columns": ["*.email"], "max_rows": 100}
SCHEMA = [
    "CREATE TABLE customers (id INT, name TEXT, email TEXT)",
    "CREATE TABLE orders (id INT, customer_id INT, total INT)",
    "CREATE VIEW v_orders AS SELECT id, total FROM orders",
    "CREATE VIEW v_contacts AS SELECT id, email AS contact FROM customers",
    "INSERT INTO orders VALUES (1, 1, 10)",
]
CASES = [
    ("SELECT * FROM orders", None),
    ("SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer_id", None),
    ("SELECT * FROM v_orders", None),
    ("SELECT * FROM customers", "would read denied column email"),
    ("SELECT * FROM orders JOIN customers ON customers.id = orders.customer_id", "email"),
    ("SELECT c.* FROM orders o JOIN customers c ON c.id = o.customer_id", "email"),
    ("SELECT * FROM v_contacts", "email"),
    ("SELECT email FROM customers", "email is denied"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlfence.GuardedConnection]:
    if request.param == "sqlite":
        path = tmp_path / "star.db"
        with sqlite3.connect(path) as db:
            for statement in SCHEMA:
                db.execute(statement)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as admin:
            for statement in SCHEMA:
                admin.execute(statement)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        connection = sqlfence.connect(url, policy=POLICY)
    yield connection
    connection.close()


@pytest.mark.parametrize(("sql", "reason"), CASES)
def test_star_is_judged_by_the_tables_columns(
    conn: sqlfence.GuardedConnection, sql: str, reason: str | None
) -> None:
    if reason is None:
        conn.execute(sql).fetchall()
        return
    with pytest.raises(sqlfence.PolicyViolation, match=reason):
        conn.execute(sql)


def test_without_the_catalog_star_fails_closed() -> None:
    """A guard that knows no columns refuses * on any table under a wildcard pattern."""
    decision = sqlfence.Guard(POLICY).decide("SELECT * FROM orders")
    assert not decision.allowed
    assert "would read denied column email" in decision.explain()
