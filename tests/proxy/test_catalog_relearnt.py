"""Under row filters or masks, a connection learns the catalog again when a statement names
a relation it did not hold when it opened: a partition the owner added since was read whole
(seventh and ninth outside attacks), a table made since was refused under a ``*.column``
key. The agent's open transaction is left as it was."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence

FILTERED = {
    "read_only": False,
    "statements": ["*"],
    "row_filters": {"orders": "tenant_id = :tenant"},
}


def _connect(url: str, policy: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy, tenant="A", audit=False, telemetry=False)


@pytest.mark.parametrize("autocommit", [False, True], ids=["in a transaction", "autocommit"])
def test_postgres_a_partition_added_after_connecting_is_not_read_whole(
    pg_url: str, autocommit: bool
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE orders (id int, tenant_id text, note text) PARTITION BY RANGE (id);"
            "CREATE TABLE orders_low PARTITION OF orders FOR VALUES FROM (0) TO (100);"
            "INSERT INTO orders VALUES (1, 'A', 'a1'), (2, 'B', 'b1');"
            "CREATE TABLE mine (n int)"
        )
        conn = _connect(pg_url, FILTERED)
        conn.autocommit = autocommit
        try:
            with pytest.raises(sqlfence.PolicyViolation, match="not a table or view the conn"):
                conn.execute("SELECT note FROM orders_high")  # asked before it exists
            conn.rollback()
            conn.execute("INSERT INTO mine VALUES (7)")  # the agent's transaction, open
            admin.execute(
                "CREATE TABLE orders_high PARTITION OF orders FOR VALUES FROM (100) TO (200);"
                "INSERT INTO orders VALUES (101, 'B', 'SECRET_B')"
            )
            # at once: a name the catalog did not have a moment ago is looked up again
            with pytest.raises(sqlfence.PolicyViolation, match="orders_high is read through"):
                conn.execute("SELECT note FROM orders_high")
            rows = conn.execute("SELECT id, note FROM orders ORDER BY id").fetchall()
            assert [tuple(row) for row in rows] == [(1, "a1")]
            conn.commit()
        finally:
            conn.close()
        assert admin.execute("SELECT n FROM mine").fetchall() == [(7,)]  # not rolled back


def test_sqlite_a_table_made_after_connecting_is_filtered_under_a_column_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "later.db"
    sqlite3.connect(path).close()
    conn = _connect(
        f"sqlite:///{path}",
        {
            "read_only": False,
            "statements": ["*"],
            "row_filters": {"*.tenant_id": "tenant_id = :tenant"},
        },
    )
    try:
        with sqlite3.connect(path) as owner:
            owner.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT)")
            owner.execute("INSERT INTO invoices VALUES (1, 'A'), (2, 'B')")
        assert conn.execute("SELECT id FROM invoices").fetchall() == [(1,)]
        conn.execute("CREATE TABLE scratch (n INTEGER)")  # the agent's own, used at once
        conn.execute("INSERT INTO scratch VALUES (1)")
        assert conn.execute("SELECT n FROM scratch").fetchall() == [(1,)]
    finally:
        conn.close()


def test_a_relation_that_does_not_exist_fails_as_the_database_says(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    sqlite3.connect(path).close()
    conn = _connect(f"sqlite:///{path}", FILTERED)
    try:
        for _ in range(3):
            with pytest.raises(sqlfence.OperationalError, match="no such table"):
                conn.execute("SELECT * FROM nowhere")
    finally:
        conn.close()
