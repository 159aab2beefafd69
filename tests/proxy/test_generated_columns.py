"""A generated column computed from a denied column reads it: naming it, filtering or
sorting by it, or reading it through a view is denied like the column itself."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import sqlfence

POLICY = {"read_only": True, "denied_columns": ["acct.pw"], "max_rows": 100}
SQLITE_SCHEMA = [
    "CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, pw TEXT,"
    " pw_copy TEXT GENERATED ALWAYS AS (pw) VIRTUAL,"
    " pw_stored TEXT GENERATED ALWAYS AS ('s:' || pw) STORED,"
    " shout TEXT AS (upper(name)))",
]
POSTGRES_SCHEMA = [
    "CREATE TABLE acct (id int PRIMARY KEY, name text, pw text,"
    " pw_stored text GENERATED ALWAYS AS ('s:' || pw) STORED,"
    " shout text GENERATED ALWAYS AS (upper(name)) STORED)",
]
COMMON = [
    "CREATE VIEW v_acct AS SELECT id, pw_stored AS p FROM acct",
    "INSERT INTO acct (id, name, pw) VALUES (1, 'ann', 'secret')",
]
DENIED = [
    "SELECT pw_stored FROM acct",
    "SELECT id FROM acct WHERE pw_stored LIKE 's:a%'",
    "SELECT id FROM acct ORDER BY pw_stored",
    "SELECT a.pw_stored FROM acct a",
    "SELECT p FROM v_acct",
]
ALLOWED = ["SELECT id, name, shout FROM acct"]


@pytest.fixture(params=["sqlite", "postgresql"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlfence.GuardedConnection]:
    if request.param == "sqlite":
        path = tmp_path / "generated.db"
        with sqlite3.connect(path) as db:
            for statement in [*SQLITE_SCHEMA, *COMMON]:
                db.execute(statement)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as admin:
            for statement in [*POSTGRES_SCHEMA, *COMMON]:
                admin.execute(statement)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        connection = sqlfence.connect(url, policy=POLICY)
    yield connection
    connection.close()


@pytest.mark.parametrize("sql", DENIED)
def test_a_column_computed_from_a_denied_one_is_denied(
    conn: sqlfence.GuardedConnection, sql: str
) -> None:
    with pytest.raises(sqlfence.PolicyViolation, match="pw"):
        conn.execute(sql)


CHAINED = [
    "CREATE TABLE acct (id INTEGER PRIMARY KEY, name TEXT, pw TEXT,"
    " pw_copy TEXT GENERATED ALWAYS AS (pw) VIRTUAL,"
    " pw_chain TEXT AS (pw_copy || '') VIRTUAL,"
    " pw_chain2 TEXT AS (upper(pw_chain)) STORED)",
    "CREATE VIEW v_chain AS SELECT id, pw_chain2 AS c FROM acct",
    "INSERT INTO acct (id, name, pw) VALUES (1, 'ann', 'secret')",
]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pw_copy FROM acct",
        "SELECT pw_chain FROM acct",
        "SELECT pw_chain2 FROM acct",
        "SELECT c FROM v_chain",
        "UPDATE acct SET name = pw_chain WHERE id = 1",
        "UPDATE acct SET name = name RETURNING pw_chain2",
    ],
)
def test_sqlite_virtual_and_chained_columns(tmp_path: Path, sql: str) -> None:
    """A generated column of a generated column reads what that one reads, in the fence and
    in the engine (through a view); writes that would copy it are denied too."""
    path = tmp_path / "chained.db"
    with sqlite3.connect(path) as db:
        for statement in CHAINED:
            db.execute(statement)
    policy = {**POLICY, "read_only": False}
    with (
        sqlfence.connect(f"sqlite:///{path}", policy=policy) as connection,
        pytest.raises(sqlfence.PolicyViolation, match="pw"),
    ):
        connection.execute(sql)


@pytest.mark.parametrize("sql", ALLOWED)
def test_other_generated_columns_read(conn: sqlfence.GuardedConnection, sql: str) -> None:
    assert conn.execute(sql).fetchall() == [(1, "ann", "ANN")]
