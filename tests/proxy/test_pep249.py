"""PEP 249 conformance of the guarded driver, run against real SQLite and PostgreSQL."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlfence

WRITER = {"read_only": False, "statements": ["*"], "max_rows": 50}


class Backend:
    """How one real database is reached and how its SQL differs."""

    def __init__(self, name: str, url: str, mark: str) -> None:
        self.name = name
        self.url = url
        self.mark = mark  # the driver's placeholder

    def connect(self, policy: Any = None, **kwargs: Any) -> sqlfence.GuardedConnection:
        return sqlfence.connect(self.url, policy=policy if policy is not None else WRITER, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    """Each conformance test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'pep249.db'}?mode=rwc", "?")
    else:
        url = request.getfixturevalue("pg_url")
        yield Backend("postgres", url, "%s")


@pytest.fixture
def conn(backend: Backend) -> Iterator[sqlfence.GuardedConnection]:
    """A writer connection with a small table of 100 rows."""
    connection = backend.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), price REAL)")
    marks = ", ".join([backend.mark] * 3)
    cursor.executemany(
        f"INSERT INTO items (id, name, price) VALUES ({marks})",
        [(i, f"item{i}", i * 1.5) for i in range(100)],
    )
    connection.commit()
    yield connection
    connection.close()


def test_module_globals() -> None:
    """apilevel, threadsafety and paramstyle are PEP 249 values."""
    assert sqlfence.apilevel == "2.0"
    assert sqlfence.threadsafety in (0, 1, 2, 3)
    assert sqlfence.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")


def test_exception_tree() -> None:
    """The exception classes nest exactly as PEP 249 says; a denial is a ProgrammingError."""
    assert issubclass(sqlfence.Warning, Exception)
    assert issubclass(sqlfence.Error, Exception)
    assert issubclass(sqlfence.InterfaceError, sqlfence.Error)
    assert issubclass(sqlfence.DatabaseError, sqlfence.Error)
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(sqlfence, name), sqlfence.DatabaseError)
    assert issubclass(sqlfence.PolicyViolation, sqlfence.ProgrammingError)
    assert issubclass(sqlfence.SandboxError, sqlfence.OperationalError)
    assert issubclass(sqlfence.QuotaExceeded, sqlfence.OperationalError)


def test_connection_exposes_exceptions(conn: sqlfence.GuardedConnection) -> None:
    """The optional extension: exception classes as connection attributes."""
    assert conn.Error is sqlfence.Error
    assert conn.ProgrammingError is sqlfence.ProgrammingError


def test_fetchone_fetchmany_fetchall(conn: sqlfence.GuardedConnection) -> None:
    """The fetch methods return rows in order and an empty result at the end."""
    cur = conn.cursor()
    cur.execute("SELECT id FROM items WHERE id < 10 ORDER BY id")
    assert cur.fetchone() == (0,)
    assert [tuple(r) for r in cur.fetchmany(3)] == [(1,), (2,), (3,)]
    assert [tuple(r) for r in cur.fetchall()] == [(i,) for i in range(4, 10)]
    assert cur.fetchone() is None
    assert cur.fetchall() == []


def test_fetchmany_uses_arraysize(conn: sqlfence.GuardedConnection) -> None:
    """fetchmany() without a size returns arraysize rows."""
    cur = conn.cursor()
    assert cur.arraysize >= 1
    cur.arraysize = 4
    cur.execute("SELECT id FROM items ORDER BY id")
    assert len(cur.fetchmany()) == 4


def test_iteration(conn: sqlfence.GuardedConnection) -> None:
    """A cursor is an iterator over the rows of its result."""
    cur = conn.cursor()
    cur.execute("SELECT id FROM items WHERE id < 5 ORDER BY id")
    assert [row[0] for row in cur] == [0, 1, 2, 3, 4]


def test_description(conn: sqlfence.GuardedConnection) -> None:
    """description has one 7-item sequence per column, named as selected."""
    cur = conn.cursor()
    cur.execute("SELECT id, name FROM items WHERE id = 1")
    assert [column[0] for column in cur.description] == ["id", "name"]
    assert all(len(column) == 7 for column in cur.description)


def test_rowcount_after_dml(conn: sqlfence.GuardedConnection, backend: Backend) -> None:
    """rowcount reports the rows an UPDATE touched."""
    cur = conn.cursor()
    cur.execute(f"UPDATE items SET price = 0 WHERE id < {backend.mark}", (10,))
    assert cur.rowcount == 10


def test_commit_and_rollback(conn: sqlfence.GuardedConnection, backend: Backend) -> None:
    """rollback() undoes uncommitted work; commit() keeps it."""
    cur = conn.cursor()
    cur.execute(f"DELETE FROM items WHERE id = {backend.mark}", (1,))
    conn.rollback()
    cur.execute("SELECT count(*) FROM items")
    assert cur.fetchone()[0] == 100
    cur.execute(f"DELETE FROM items WHERE id = {backend.mark}", (1,))
    conn.commit()
    cur.execute("SELECT count(*) FROM items")
    assert cur.fetchone()[0] == 99


def test_executemany(conn: sqlfence.GuardedConnection, backend: Backend) -> None:
    """executemany runs the statement once per parameter set."""
    cur = conn.cursor()
    cur.executemany(
        f"INSERT INTO items (id, name) VALUES ({backend.mark}, {backend.mark})",
        [(1000 + i, "x") for i in range(5)],
    )
    cur.execute("SELECT count(*) FROM items WHERE id >= 1000")
    assert cur.fetchone()[0] == 5


def test_lastrowid_where_driver_has_it(conn: sqlfence.GuardedConnection, backend: Backend) -> None:
    """lastrowid is passed through (SQLite has it; psycopg reports None or 0)."""
    cur = conn.cursor()
    cur.execute(f"INSERT INTO items (id, name) VALUES ({backend.mark}, 'z')", (5000,))
    if backend.name == "sqlite":
        assert cur.lastrowid == 5000
    else:
        assert cur.lastrowid in (None, 0)


def test_setinputsizes_and_setoutputsize(conn: sqlfence.GuardedConnection) -> None:
    """Both are accepted and do nothing, as PEP 249 allows."""
    cur = conn.cursor()
    cur.setinputsizes([None])
    cur.setoutputsize(10)
    cur.setoutputsize(10, 0)


def test_cursor_close_is_idempotent(conn: sqlfence.GuardedConnection) -> None:
    """Closing a cursor twice is fine; using it afterwards is an Error."""
    cur = conn.cursor()
    cur.close()
    cur.close()
    assert cur.closed
    with pytest.raises(sqlfence.Error):
        cur.execute("SELECT 1")


def test_connection_close(backend: Backend) -> None:
    """A closed connection refuses new cursors with InterfaceError; close() is idempotent."""
    connection = backend.connect()
    connection.close()
    connection.close()
    assert connection.closed
    with pytest.raises(sqlfence.InterfaceError):
        connection.cursor()


def test_context_managers_commit(backend: Backend) -> None:
    """`with connect()` commits on success and closes; `with cursor()` closes the cursor."""
    with backend.connect() as connection, connection.cursor() as cur:
        cur.execute("CREATE TABLE kept (a INTEGER)")
        cur.execute("INSERT INTO kept VALUES (1)")
    assert connection.closed
    with backend.connect() as connection:
        assert connection.execute("SELECT a FROM kept").fetchall() == [(1,)]


def test_context_manager_rolls_back_on_error(backend: Backend) -> None:
    """An exception inside `with connect()` rolls back the transaction."""
    with backend.connect() as connection:
        connection.execute("CREATE TABLE rb (a INTEGER)")

    def fail_midway() -> None:
        with backend.connect() as connection:
            connection.execute("INSERT INTO rb VALUES (1)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    with backend.connect() as connection:
        assert connection.execute("SELECT count(*) FROM rb").fetchone()[0] == 0


def test_driver_errors_are_translated(conn: sqlfence.GuardedConnection) -> None:
    """A driver error surfaces as sqlfence's class with the original chained."""
    with pytest.raises(sqlfence.DatabaseError) as caught:
        conn.execute("SELECT * FROM no_such_table")
    assert caught.value.__cause__ is not None
    conn.rollback()


def test_integrity_error(conn: sqlfence.GuardedConnection, backend: Backend) -> None:
    """A duplicate primary key is an IntegrityError for every backend."""
    with pytest.raises(sqlfence.IntegrityError):
        conn.execute(f"INSERT INTO items (id) VALUES ({backend.mark})", (1,))
    conn.rollback()


def test_wrong_parameter_count_keeps_connection_usable(
    conn: sqlfence.GuardedConnection, backend: Backend
) -> None:
    """A wrong number of parameters is a sqlfence error and the connection still works."""
    with pytest.raises(sqlfence.Error):
        conn.execute(f"SELECT id FROM items WHERE id = {backend.mark}", (1, 2))
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 100


def test_denial_is_programming_error(backend: Backend) -> None:
    """A denied statement raises PolicyViolation, catchable as ProgrammingError."""
    connection = backend.connect({"denied_tables": ["secrets"]})
    with pytest.raises(sqlfence.ProgrammingError) as caught:
        connection.execute("SELECT * FROM secrets")
    assert isinstance(caught.value, sqlfence.PolicyViolation)
    assert caught.value.reasons[0].rule == "denied_tables"
    assert connection.execute("SELECT 1").fetchall() == [(1,)]
    connection.close()


def test_errors_pickle() -> None:
    """Errors keep their structured fields across pickling."""
    decision = sqlfence.Guard({"denied_tables": ["s"]}).decide("SELECT * FROM s")
    error = sqlfence.PolicyViolation(decision.explain(), decision)
    restored = pickle.loads(pickle.dumps(error))
    assert str(restored) == str(error)
    assert restored.decision.reasons == decision.reasons


def test_row_cap_and_truncated_flag(conn: sqlfence.GuardedConnection) -> None:
    """A query returning more than max_rows is limited and says it was truncated."""
    cur = conn.cursor()
    cur.execute("SELECT id FROM items")
    assert len(cur.fetchall()) == 50
    assert cur.truncated
    cur.execute("SELECT id FROM items WHERE id < 10")
    assert len(cur.fetchall()) == 10
    assert not cur.truncated


def test_no_driver_side_doors(conn: sqlfence.GuardedConnection) -> None:
    """Driver shortcuts such as executescript are not reachable through the fence."""
    assert not hasattr(conn, "executescript")
    assert not hasattr(conn.cursor(), "executescript")
    assert not hasattr(conn, "create_function")


def test_callproc_is_judged(backend: Backend) -> None:
    """callproc is judged as CALL name(...) before the driver sees it."""
    connection = backend.connect({"read_only": True})
    with pytest.raises(sqlfence.PolicyViolation, match="CALL"):
        connection.cursor().callproc("anything", (1,))
    connection.close()


def test_connection_shortcuts_and_paramstyle(tmp_path: Path, pg_url: str) -> None:
    """conn.executemany like sqlite3's, and each connection's own placeholder style."""
    writer = {"read_only": False, "statements": ["select", "insert", "create"]}
    with sqlfence.connect(f"sqlite:///{tmp_path / 'p.db'}?mode=rwc", policy=writer) as lite:
        assert lite.paramstyle == "qmark"
        lite.execute("CREATE TABLE t (x INT)")
        lite.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
        assert lite.execute("SELECT count(*) FROM t").fetchone() == (3,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        pg = sqlfence.connect(pg_url, policy=writer)
    with pg:
        assert pg.paramstyle == "pyformat"
        pg.execute("CREATE TABLE t (x INT)")
        pg.executemany("INSERT INTO t VALUES (%s)", [(1,), (2,)])
        assert pg.execute("SELECT count(*) FROM t").fetchone() == (2,)
