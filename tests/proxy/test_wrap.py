"""``wrap()``: an existing connection behind the fence. Its dialect is recognised, and the
caller's own statements on it stay the caller's: only what goes through the fence is
judged."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

import sqlfence
from sqlfence.proxy.connection import GuardedConnection

POLICY = {"read_only": True, "denied_tables": ["secrets"]}


@pytest.fixture
def raw(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "w.db", check_same_thread=False)
    connection.execute("CREATE TABLE people (id INT, name TEXT)")
    connection.execute("CREATE TABLE secrets (id INT, value TEXT)")
    connection.execute("INSERT INTO secrets VALUES (1, 'x')")
    connection.commit()
    return connection


@pytest.fixture
def closing() -> Iterator[Callable[[GuardedConnection], GuardedConnection]]:
    """Closes the guarded connections a test made: one left open keeps its shares of the
    observer's shared parts (the default monitor, with every agent's totals) for the rest of
    the process, and later tests of other modules would count its agents' statements."""
    made: list[GuardedConnection] = []

    def keep(connection: GuardedConnection) -> GuardedConnection:
        made.append(connection)
        return connection

    yield keep
    for connection in made:
        connection.close()


def test_sqlite_is_recognised_and_the_callers_reads_still_work(
    raw: sqlite3.Connection, closing: Callable[[GuardedConnection], GuardedConnection]
) -> None:
    guarded = closing(sqlfence.wrap(raw, policy=POLICY))
    with pytest.raises(sqlfence.PolicyViolation, match="secrets"):
        guarded.execute("SELECT * FROM secrets")
    assert guarded.execute("SELECT count(*) FROM people").fetchone() == (0,)
    # the caller's own connection, used directly: its statements are its own
    assert raw.execute("SELECT value FROM secrets").fetchone() == ("x",)
    assert raw.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] >= 2
    # and the fence still judges (and the engine still checks) what goes through it
    with pytest.raises(sqlfence.PolicyViolation):
        guarded.execute("SELECT * FROM secrets")
    assert guarded.execute("SELECT name FROM people").fetchall() == []


def test_a_failed_fence_statement_leaves_the_callers_connection_alone(
    raw: sqlite3.Connection, closing: Callable[[GuardedConnection], GuardedConnection]
) -> None:
    guarded = closing(sqlfence.wrap(raw, policy=POLICY))
    with pytest.raises(sqlfence.OperationalError):
        guarded.execute("SELECT nosuch FROM people")
    assert raw.execute("SELECT value FROM secrets").fetchone() == ("x",)


def test_psycopg_is_recognised(
    pg_url: str, closing: Callable[[GuardedConnection], GuardedConnection]
) -> None:
    with psycopg.connect(pg_url) as connection:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
            guarded = closing(sqlfence.wrap(connection, policy={"read_only": True}))
        assert guarded.paramstyle == "pyformat"
        assert guarded.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)


def test_an_unknown_connection_needs_a_dialect() -> None:
    class Unknown:
        pass

    with pytest.raises(sqlfence.ConfigurationError, match="pass dialect="):
        sqlfence.wrap(Unknown(), policy={})
