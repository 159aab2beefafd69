"""A denied table's rows are denied wherever they are stored: its partitions and inheritance
children (PostgreSQL) and a virtual table's shadow tables (SQLite FTS, R-tree) are what the
fence reads them as, on real databases (found beside issue 17's row-filter attacks)."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence


def _connect(url: str, policy: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy)


def test_sqlite_a_denied_virtual_tables_shadow_tables_are_denied(tmp_path: Path) -> None:
    path = tmp_path / "fts.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
        "INSERT INTO docs VALUES ('the secret plan');"
        "CREATE VIRTUAL TABLE geo USING rtree(id, x0, x1);"
        "INSERT INTO geo VALUES (1, 10, 20);"
        "CREATE TABLE notes (body TEXT);"
    )
    raw.commit()
    raw.close()
    conn = _connect(f"sqlite:///{path}", {"denied_tables": ["docs", "geo"]})
    try:
        for table in ("docs_content", "docs_data", "main.docs_idx", "geo_node", "geo_rowid"):
            with pytest.raises(sqlfence.PolicyViolation, match="holds rows of main"):
                conn.execute(f"SELECT * FROM {table}")
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_denied_tables_partitions_and_children_are_denied(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE inv (id int, region text) PARTITION BY LIST (region)")
        admin.execute("CREATE TABLE inv_eu PARTITION OF inv FOR VALUES IN ('eu')")
        admin.execute(
            "CREATE TABLE inv_us PARTITION OF inv FOR VALUES IN ('us') PARTITION BY RANGE (id)"
        )
        admin.execute("CREATE TABLE inv_us_low PARTITION OF inv_us FOR VALUES FROM (0) TO (100)")
        admin.execute("CREATE TABLE orders (id int)")
        admin.execute("CREATE SCHEMA archive")
        admin.execute("CREATE TABLE archive.orders_old () INHERITS (orders)")
        admin.execute("CREATE TABLE other (id int)")
    conn = _connect(pg_url, {"denied_tables": ["inv", "orders"]})
    try:
        for table in ("inv_eu", "inv_us", "inv_us_low", "archive.orders_old"):
            with pytest.raises(sqlfence.PolicyViolation, match="holds rows of public"):
                conn.execute(f"SELECT * FROM {table}")
        assert conn.execute("SELECT count(*) FROM other").fetchone() == (0,)
    finally:
        conn.close()
