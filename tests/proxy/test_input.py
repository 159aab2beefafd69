"""Input no engine should see, and one statement per call enforced below the parser.

Every backend answers bad input with a sqlfence PEP 249 error naming what was wrong, never
with the driver's TypeError, UnicodeEncodeError or OverflowError; and the database itself
refuses what the fence's reading could have missed.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence
from sqlfence.observe.events import session_event
from sqlfence.policies.engine import Decision
from sqlfence.proxy.sqlite_driver import _Authorizer
from sqlfence.sql.analysis import StatementFacts

WRITER = {"read_only": False, "statements": ["*"], "max_rows": 100}


@pytest.fixture(params=["sqlite", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlfence.GuardedConnection]:
    """A writable fence connection on each backend, with a table t(a int, b text)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'input.db'}?mode=rwc"
    else:
        url = request.getfixturevalue("pg_url")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        connection = sqlfence.connect(url, policy=WRITER)
    connection.execute("CREATE TABLE t (a bigint, b text)")
    connection.commit()
    yield connection
    connection.close()


def _marks(conn: sqlfence.GuardedConnection, count: int) -> str:
    mark = "?" if conn.guard.dialect_name == "sqlite" else "%s"
    return ", ".join([mark] * count)


@pytest.mark.parametrize("operation", [b"SELECT 1", 42, None, ["SELECT 1"]])
def test_operation_must_be_text(conn: sqlfence.GuardedConnection, operation: Any) -> None:
    """A SQL operation that is not a str is a ProgrammingError naming its type."""
    with pytest.raises(sqlfence.ProgrammingError, match="must be a str"):
        conn.cursor().execute(operation)


@pytest.mark.parametrize("parameters", [5, "ab", b"ab", 1.5, object()])
def test_parameters_must_be_a_sequence_or_mapping(
    conn: sqlfence.GuardedConnection, parameters: Any
) -> None:
    """Parameters that are neither a sequence nor a mapping are a ProgrammingError."""
    with pytest.raises(sqlfence.ProgrammingError, match="sequence or a mapping"):
        conn.cursor().execute(f"SELECT {_marks(conn, 1)}", parameters)


def test_executemany_needs_parameter_sets(conn: sqlfence.GuardedConnection) -> None:
    """executemany() with a string instead of parameter sets is a ProgrammingError."""
    with pytest.raises(sqlfence.ProgrammingError, match="sequence of parameter sets"):
        conn.cursor().executemany(f"INSERT INTO t VALUES ({_marks(conn, 2)})", "ab")


@pytest.mark.parametrize(
    ("sql", "offset"),
    [
        ("SELECT a FROM t\x00", 15),
        ("\x00DELETE FROM t", 0),
        ("SELECT 'x\x00y' FROM t", 9),
        ("DELETE FROM t\x00 WHERE false", 13),
    ],
)
def test_nul_is_denied(conn: sqlfence.GuardedConnection, sql: str, offset: int) -> None:
    """A NUL anywhere is denied before any driver sees it (libpq would cut the text there)."""
    conn.execute(f"INSERT INTO t VALUES ({_marks(conn, 2)})", (1, "kept"))
    conn.commit()
    with pytest.raises(sqlfence.PolicyViolation, match=f"NUL character at offset {offset}") as err:
        conn.execute(sql)
    assert err.value.decision is not None
    assert err.value.decision.rule == "input"
    conn.rollback()
    assert conn.execute("SELECT a, b FROM t").fetchall() == [(1, "kept")]


def test_nul_is_denied_in_detect_mode(tmp_path: Path) -> None:
    """Detect mode lets violations run, but never a text with a NUL in it."""
    url = f"sqlite:///{tmp_path / 'd.db'}?mode=rwc"
    with (
        sqlfence.connect(url, policy={"mode": "detect"}) as conn,
        pytest.raises(sqlfence.PolicyViolation, match="NUL"),
    ):
        conn.execute("SELECT 1\x00")


@pytest.mark.parametrize("sql", ["SELECT '\ud800'", "SELECT 1 -- \udfff", "SELECT \udc80 FROM t"])
def test_unencodable_text_is_denied(conn: sqlfence.GuardedConnection, sql: str) -> None:
    """Text with a lone surrogate cannot be sent: denied with the offset, not a traceback."""
    with pytest.raises(sqlfence.PolicyViolation, match="cannot be encoded"):
        conn.execute(sql)


def test_unencodable_parameter_is_a_data_error(conn: sqlfence.GuardedConnection) -> None:
    """A parameter value the driver cannot encode is a DataError."""
    with pytest.raises(sqlfence.DataError):
        conn.execute(f"INSERT INTO t VALUES ({_marks(conn, 2)})", (1, "\ud800"))


def test_out_of_range_parameter_is_a_data_error(conn: sqlfence.GuardedConnection) -> None:
    """An integer too large for the column is a DataError (sqlite3 raises OverflowError)."""
    with pytest.raises(sqlfence.DataError):
        conn.execute(f"INSERT INTO t VALUES ({_marks(conn, 2)})", (10**30, "big"))


def test_out_of_range_limit_parameter(conn: sqlfence.GuardedConnection) -> None:
    """A LIMIT parameter too large for the database is its DataError, as without the fence."""
    with pytest.raises(sqlfence.DataError):
        conn.execute(f"SELECT a FROM t LIMIT {_marks(conn, 1)}", (10**30,))


def test_the_connection_stays_usable_after_bad_input(conn: sqlfence.GuardedConnection) -> None:
    """After each kind of bad input the same connection runs the next statement."""
    bad_inputs: list[Callable[[], object]] = [
        lambda: conn.execute(b"SELECT 1"),  # type: ignore[arg-type]  # bytes: refused on purpose
        lambda: conn.execute("SELECT 1\x00"),
    ]
    for bad in bad_inputs:
        with pytest.raises(sqlfence.Error):
            bad()
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.postgres
def test_postgres_refuses_a_second_statement_itself(pg_url: str) -> None:
    """Even where the policy allows several statements, the server runs one per call."""
    policy = {"read_only": False, "statements": ["*"], "allow_multiple_statements": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        conn = sqlfence.connect(pg_url, policy=policy)
    with conn:
        conn.execute("CREATE TABLE kept (a int)")
        conn.commit()
        with pytest.raises(sqlfence.ProgrammingError, match="multiple commands"):
            conn.execute("SELECT 1; DROP TABLE kept")
        conn.rollback()
        # the fence's own driver cursor, as a parser bypass would reach it
        raw = conn._driver.open_cursor(conn._raw)
        with pytest.raises(psycopg.ProgrammingError, match="multiple commands"):
            raw.execute("SELECT 1; DROP TABLE kept")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


@pytest.mark.postgres
def test_postgres_placeholder_without_parameters(pg_url: str) -> None:
    """Without parameters the text is sent as it is (a %s in a LIKE pattern is text)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        conn = sqlfence.connect(pg_url, policy=WRITER)
    with conn:
        with pytest.raises(sqlfence.ProgrammingError):
            conn.execute("SELECT %s::int")  # sent as it is: the server's syntax error
        conn.rollback()
        assert conn.execute("SELECT 'A%' LIKE 'A%'").fetchone() == (True,)
        assert conn.execute("SELECT 'smith' LIKE '%smith'").fetchone() == (True,)
        assert conn.execute("SELECT format('%s', 'x')").fetchone() == ("x",)
        assert conn.execute("SELECT %s::int * 2", (21,)).fetchone() == (42,)


@pytest.mark.postgres
def test_superuser_login_is_warned_and_recorded(pg_url: str) -> None:
    """A superuser login gets a PrivilegeWarning and the connect event records it."""
    with pytest.warns(sqlfence.PrivilegeWarning, match="superuser"):
        conn = sqlfence.connect(pg_url, policy=WRITER)
    with conn:
        assert conn.session.privileges == ("superuser",)
        assert session_event(conn.session, "connect")["privileges"] == ["superuser"]


@pytest.mark.postgres
def test_privileged_sessions_can_be_refused(pg_url: str) -> None:
    """privileged_sessions: refuse turns such a login away with a ConfigurationError."""
    with pytest.raises(sqlfence.ConfigurationError, match="privileged_sessions: refuse"):
        sqlfence.connect(pg_url, policy={"privileged_sessions": "refuse"})


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (None, ()),
        ("pg_read_server_files", ("pg_read_server_files",)),
        ("pg_execute_server_program", ("pg_execute_server_program",)),
    ],
)
def test_server_roles_are_named(pg_url: str, grant: str | None, expected: tuple[str, ...]) -> None:
    """A login holding a predefined role that reaches outside SQL is named; a plain one not."""
    role = f"fence_{grant or 'plain'}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        if grant:
            admin.execute(f"GRANT {grant} TO {role}")
    url = pg_url.replace("://postgres@", f"://{role}@", 1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with sqlfence.connect(url, policy=WRITER) as conn:
            assert conn.session.privileges == expected
    assert any(w.category is sqlfence.PrivilegeWarning for w in seen) is bool(expected)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE {role}")


def test_sqlite_engine_refuses_a_table_the_fence_did_not_judge(tmp_path: Path) -> None:
    """SQLite's authorizer refuses, at prepare time, a table missing from the fence's facts."""
    path = tmp_path / "agree.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE seen (a)")
    raw.execute("CREATE TABLE unseen (a)")
    authorizer = _Authorizer(sqlfence.Guard({"read_only": False}, dialect="sqlite"))
    raw.set_authorizer(authorizer)
    facts = StatementFacts(operation="select", tables=frozenset({"main.seen"}))
    authorizer.expect(Decision(True, "", facts))
    assert raw.execute("SELECT a FROM seen").fetchall() == []
    with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|prohibited"):
        raw.execute("SELECT a FROM unseen")
    with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|prohibited"):
        raw.execute("INSERT INTO unseen VALUES (1)")
    raw.close()


def test_sqlite_engine_refuses_catalog_reads(tmp_path: Path) -> None:
    """Catalog tables and table-valued catalog functions are refused by SQLite itself."""
    path = tmp_path / "catalog.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (a)")
    authorizer = _Authorizer(sqlfence.Guard({}, dialect="sqlite"))
    raw.set_authorizer(authorizer)
    # facts that (wrongly) name every table: only the catalog rule can refuse these
    facts = StatementFacts(
        operation="select",
        tables=frozenset({"main.sqlite_master", "main.dbstat", "main.sqlite_schema"}),
    )
    authorizer.expect(Decision(True, "", facts))
    for sql in (
        "SELECT sql FROM sqlite_master",
        "SELECT * FROM dbstat",
        "SELECT * FROM sqlite_schema",
    ):
        with pytest.raises(sqlite3.DatabaseError):
            raw.execute(sql).fetchall()
    raw.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "parameters"),
    [("SELECT %s", {"a": 1}), ("SELECT %(a)s", (1,))],
)
def test_parameters_of_the_wrong_shape(pg_url: str, sql: str, parameters: Any) -> None:
    """A mapping for %s or a sequence for %(name)s is a ProgrammingError, not a TypeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        conn = sqlfence.connect(pg_url, policy=WRITER)
    with conn, pytest.raises(sqlfence.ProgrammingError, match="do not fit"):
        conn.execute(sql, parameters)


@pytest.mark.parametrize("space", ["\u00a0", "\u2003", "\u3000", "\u2028", "\x85"])
def test_sqlite_odd_space_is_denied(tmp_path: Path, space: str) -> None:
    """A non-ASCII space between words is one word to SQLite: denied, whatever it hides."""
    url = f"sqlite:///{tmp_path / 'space.db'}?mode=rwc"
    with sqlfence.connect(url, policy={"max_rows": 10}) as conn:
        hidden = f"SELECT 1 WHERE 1 > :a{space}::b(') UNION ALL SELECT sqlite_version() --')"
        with pytest.raises(sqlfence.PolicyViolation, match="non-ASCII"):
            conn.execute(hidden, {f"a{space}::b(')": 0})
        assert conn.execute("SELECT 'caf\u00e9 \u00a0 ok' -- \u00a0").fetchone() == (
            "caf\u00e9 \u00a0 ok",
        )
