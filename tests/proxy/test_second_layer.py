"""The database's own enforcement behind the parser: sessions, timeouts, authorizer, views."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

import sqlfence

HEAVY_PG = "SELECT count(*) FROM generate_series(1, 100000000)"
HEAVY_SQLITE = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
)


def test_postgres_session_is_read_only(pg_url: str) -> None:
    """A read-only policy makes the PostgreSQL session itself read-only."""
    with sqlfence.connect(pg_url, policy={"read_only": True}) as conn:
        setting = conn.execute("SELECT current_setting('default_transaction_read_only')")
        assert setting.fetchone() == ("on",)


def test_postgres_statement_timeout(pg_url: str) -> None:
    """statement_timeout_ms is the server's statement_timeout: a long query is cancelled."""
    with sqlfence.connect(pg_url, policy={"statement_timeout_ms": 100}) as conn:
        with pytest.raises(sqlfence.OperationalError, match="statement timeout"):
            conn.execute(HEAVY_PG)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sqlite_statement_timeout(tmp_path: Path) -> None:
    """On SQLite a progress handler interrupts a statement past statement_timeout_ms."""
    url = f"sqlite:///{tmp_path / 't.db'}?mode=rwc"
    with sqlfence.connect(url, policy={"statement_timeout_ms": 100, "max_rows": None}) as conn:
        with pytest.raises(sqlfence.OperationalError, match="statement_timeout_ms"):
            conn.execute(HEAVY_SQLITE)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sqlite_query_only(tmp_path: Path) -> None:
    """A read-only policy sets PRAGMA query_only on the SQLite connection."""
    path = tmp_path / "q.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (a)")
    raw.close()
    conn = sqlfence.connect(f"sqlite:///{path}", policy={"read_only": True})
    raw_conn = conn._raw  # behind the parser, as a parser bypass would be
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        raw_conn.execute("INSERT INTO t VALUES (1)")
    raw_conn.set_authorizer(None)  # the authorizer refuses PRAGMA; look at the setting
    assert raw_conn.execute("PRAGMA query_only").fetchone() == (1,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        raw_conn.execute("INSERT INTO t VALUES (1)")
    conn.close()


def _views(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as raw:
        raw.execute("CREATE TABLE secrets (id int, token text)")
        raw.execute("CREATE TABLE orders (id int, total int)")
        raw.execute("INSERT INTO secrets VALUES (1, 'sk-live')")
        raw.execute("CREATE VIEW secret_view AS SELECT id, token FROM secrets")
        raw.execute("CREATE VIEW deeper AS SELECT id FROM secret_view")
        raw.execute("CREATE VIEW order_view AS SELECT id, total FROM orders")


def test_postgres_view_over_denied_table(pg_url: str) -> None:
    """Views over a denied table, directly or through another view, are denied."""
    _views(pg_url)
    with sqlfence.connect(pg_url, policy={"denied_tables": ["secrets"]}) as conn:
        for view in ("secret_view", "deeper"):
            with pytest.raises(sqlfence.PolicyViolation, match=r"reads public\.secrets"):
                conn.execute(f"SELECT * FROM {view}")
        assert conn.execute("SELECT * FROM order_view").fetchall() == []


def test_allowed_view_grants_its_tables(pg_url: str) -> None:
    """An allowed view may read tables that are not themselves on the allow list."""
    _views(pg_url)
    policy = {"allowed_tables": ["order_view"]}
    with sqlfence.connect(pg_url, policy=policy) as conn:
        assert conn.execute("SELECT id FROM order_view").fetchall() == []
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute("SELECT id FROM orders")
