"""The corpus run through ``sqlfence.connect`` against real SQLite and PostgreSQL databases.

Denied statements raise PolicyViolation and change nothing: not a row, not the list of
tables, roles or functions, not a file. Allowed statements either run or fail with the
database's own error, as a sqlfence error; what the database accepts raw it also accepts
through the fence, with the same rows (at most max_rows of them).
"""

from __future__ import annotations

import glob
import hashlib
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sqlfence
from tests.policies import Case, load_corpus, params

# Files a leaked COPY, ATTACH, VACUUM INTO, lo_export or writefile of the corpus would create.
LEAK_FILES = "/tmp/sqlfence-corpus-*"
PG_TIMEOUT = "-c statement_timeout=10000"

SCHEMA = {
    "sqlite": """
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, password TEXT,
                            created_at TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL, status TEXT,
                             note TEXT, created_at TEXT);
        CREATE TABLE archive (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL, status TEXT,
                              note TEXT, created_at TEXT);
        CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER,
                                  quantity INTEGER, price REAL);
        CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL, category TEXT);
        CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT, value TEXT);
        CREATE VIEW user_names AS SELECT id, name FROM users;
        CREATE VIEW secret_view AS SELECT id, value FROM secrets;
        CREATE INDEX orders_by_status ON orders (status);
    """,
    "postgres": """
        CREATE TABLE users (id int PRIMARY KEY, name text, email text, password text,
                            created_at timestamptz);
        CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric(10, 2), status text,
                             note text, created_at timestamptz);
        CREATE TABLE archive (LIKE orders INCLUDING ALL);
        CREATE TABLE order_items (id int PRIMARY KEY, order_id int, product_id int,
                                  quantity int, price numeric(10, 2));
        CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10, 2),
                               category text);
        CREATE TABLE secrets (id int PRIMARY KEY, name text, value text);
        CREATE SCHEMA audit;
        CREATE TABLE audit.log (id int PRIMARY KEY, event text, at timestamptz);
        CREATE VIEW user_names AS SELECT id, name FROM users;
        CREATE VIEW secret_view AS SELECT id, value FROM secrets;
        CREATE SEQUENCE order_seq;
        CREATE PROCEDURE wipe_orders() LANGUAGE sql AS $$ DELETE FROM orders $$;
    """,
}

STATUSES = ("new", "paid", "shipped", "cancelled")
CATEGORIES = ("books", "games", "tools")


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    """Deterministic content; orders has more rows than any policy's max_rows."""
    day = "2024-{:02d}-{:02d} 10:00:00"
    return {
        "users": [
            (i, name, f"{name.lower()}@example.com", f"pw-{i}", day.format(1, i))
            for i, name in enumerate(("Ann", "Bob", "Cid", "Dee", "Eve"), start=1)
        ],
        "orders": [
            (
                i,
                i % 5 + 1,
                round(i * 3.25, 2),
                STATUSES[i % 4],
                "gift" if i % 7 == 0 else None,
                day.format(i % 12 + 1, i % 28 + 1),
            )
            for i in range(1, 151)
        ],
        "archive": [
            (10_000 + i, 1, 1.5 * i, "cancelled", None, day.format(1, i)) for i in range(1, 6)
        ],
        "order_items": [
            (i, i % 150 + 1, i % 10 + 1, i % 3 + 1, round(i * 1.5, 2)) for i in range(1, 201)
        ],
        "products": [
            (i, f"product {i}", round(i * 2.5, 2), CATEGORIES[i % 3]) for i in range(1, 11)
        ],
        "secrets": [(i, f"key{i}", f"s3cr3t-{i}") for i in range(1, 4)],
    }


CORPUS = load_corpus()


def _params(dialect: str) -> list[Any]:
    return params("execution", (case for case in CORPUS if case.dialect == dialect))


class Database:
    """One real database for the whole module: setup, snapshots, raw and guarded access."""

    def __init__(self, dialect: str, url: str, raw_connect: Any, directory: Path | None) -> None:
        self.dialect = dialect
        self.url = url
        self._raw_connect = raw_connect
        self._directory = directory
        self._guarded: dict[str, sqlfence.GuardedConnection] = {}

    def guarded(self, case: Case) -> sqlfence.GuardedConnection:
        """The module's guarded connection for the case's policy (opened on first use)."""
        key = f"{case.file}:{case.policy_name}"
        conn = self._guarded.get(key)
        if conn is None:
            kwargs: dict[str, Any] = {"options": PG_TIMEOUT} if self.dialect == "postgres" else {}
            conn = sqlfence.connect(self.url, policy=case.policy, **kwargs)
            self._guarded[key] = conn
        return conn

    def close(self) -> None:
        """Close every guarded connection."""
        for conn in self._guarded.values():
            conn.close()

    def raw_rows(self, sql: str, params: tuple[Any, ...] | None) -> list[Any] | Exception:
        """The rows ``sql`` returns on a raw connection (rolled back), or the driver's error."""
        conn = self._raw_connect()
        try:
            cur = conn.cursor()
            try:
                if params is None:
                    cur.execute(sql)
                else:
                    cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
            except Exception as error:  # the driver's own error, whatever its class
                return error
        finally:
            conn.rollback()
            conn.close()

    def snapshot(self) -> dict[str, Any]:
        """Everything a denied statement must not change, as comparable values."""
        state: dict[str, Any] = {"files": sorted(glob.glob(LEAK_FILES))}
        if self._directory is not None:
            state["directory"] = sorted(p.name for p in self._directory.iterdir())
        conn = self._raw_connect()
        try:
            cur = conn.cursor()
            state.update(_SNAPSHOTS[self.dialect](cur))
        finally:
            conn.rollback()
            conn.close()
        return state


def _digest(rows: list[Any]) -> str:
    return hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()


def _sqlite_snapshot(cur: Any) -> dict[str, Any]:
    cur.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
    schema = cur.fetchall()
    state: dict[str, Any] = {"schema": schema}
    for kind, name, _table, _sql in schema:
        if kind == "table":
            cur.execute(f'SELECT * FROM "{name}"')
            state[f"table {name}"] = _digest(cur.fetchall())
    cur.execute("PRAGMA main.schema_version")
    state["schema_version"] = cur.fetchall()
    cur.execute("PRAGMA database_list")
    state["databases"] = [row[1:] for row in cur.fetchall()]
    return state


def _pg_snapshot(cur: Any) -> dict[str, Any]:
    cur.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
        "ORDER BY 1, 2"
    )
    relations = cur.fetchall()
    state: dict[str, Any] = {"relations": relations}
    for schema, name, kind in relations:
        if kind in ("r", "p"):
            cur.execute(f'SELECT t::text FROM "{schema}"."{name}" AS t')
            state[f"table {schema}.{name}"] = _digest(cur.fetchall())
        elif kind == "S":
            cur.execute(f'SELECT last_value, is_called FROM "{schema}"."{name}"')
            state[f"sequence {schema}.{name}"] = cur.fetchall()
    queries = {
        "roles": "SELECT rolname, rolsuper, rolcanlogin, rolcreaterole FROM pg_roles ORDER BY 1",
        "schemas": "SELECT nspname, nspowner FROM pg_namespace ORDER BY 1",
        "databases": "SELECT datname FROM pg_database ORDER BY 1",
        "functions": "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY 1",
        "grants": "SELECT relname, relacl::text FROM pg_class WHERE relacl IS NOT NULL ORDER BY 1",
        "large objects": "SELECT oid FROM pg_largeobject_metadata ORDER BY 1",
        "role settings": "SELECT setdatabase, setrole, setconfig::text FROM pg_db_role_setting "
        "ORDER BY 1, 2",
    }
    for name, sql in queries.items():
        cur.execute(sql)
        state[name] = cur.fetchall()
    return state


_SNAPSHOTS = {"sqlite": _sqlite_snapshot, "postgres": _pg_snapshot}


def _load(conn: Any, dialect: str) -> None:
    placeholder = "?" if dialect == "sqlite" else "%s"
    cur = conn.cursor()
    for statement in SCHEMA[dialect].split(";"):
        if statement.strip():
            cur.execute(statement)
    for table, rows in _rows().items():
        marks = ", ".join([placeholder] * len(rows[0]))
        cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    if dialect == "postgres":
        cur.executemany(
            "INSERT INTO audit.log VALUES (%s, %s, now())", [(i, f"event {i}") for i in (1, 2, 3)]
        )
    conn.commit()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A SQLite file with the corpus tables, in a directory of its own."""
    directory = tmp_path_factory.mktemp("corpus-sqlite")
    path = directory / "corpus.db"
    with sqlite3.connect(path) as conn:
        _load(conn, "sqlite")
    conn.close()
    database = Database("sqlite", f"sqlite:///{path}", lambda: sqlite3.connect(path), directory)
    yield database
    database.close()


@pytest.fixture(scope="module")
def postgres_db(postgres_server: Any) -> Iterator[Database]:
    """A PostgreSQL database with the corpus tables on the session's server.

    Module-scoped (``pg_url`` is per test) so that 400 cases share one database; every case
    checks its own before/after snapshot, so they stay independent.
    """
    import psycopg

    name = f"corpus_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url) as conn:
        _load(conn, "postgres")
    database = Database("postgres", url, lambda: psycopg.connect(url, options=PG_TIMEOUT), None)
    yield database
    database.close()
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(conn: sqlfence.GuardedConnection, case: Case) -> tuple[list[Any] | None, Exception | None]:
    """Execute through the fence; only sqlfence errors are caught, anything else propagates."""
    cur = conn.cursor()
    try:
        if case.params is None:
            cur.execute(case.sql)
        else:
            cur.execute(case.sql, case.params)
        return (cur.fetchall() if cur.description else None), None
    except sqlfence.Error as error:
        return None, error
    finally:
        cur.close()


def _end(conn: sqlfence.GuardedConnection, commit: bool) -> None:
    """Commit (to persist anything that slipped through) or roll back; the session stays usable."""
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    except sqlfence.Error:
        conn.rollback()


def _check(db: Database, case: Case) -> None:
    conn = db.guarded(case)
    if not case.allowed or case.engine_denies:
        before = db.snapshot()
        _rows_seen, error = _run(conn, case)
        _end(conn, commit=True)
        if case.allowed:
            assert isinstance(error, sqlfence.Error), "the database layer must refuse it"
        else:
            assert isinstance(error, sqlfence.PolicyViolation), f"not denied: {error!r}"
            assert isinstance(error, sqlfence.ProgrammingError)
        assert db.snapshot() == before, "a refused statement changed the database"
        return
    rows, error = _run(conn, case)
    _end(conn, commit=False)
    assert not isinstance(error, sqlfence.PolicyViolation), f"allowed case denied: {error}"
    decision = conn.guard.decide(case.sql)
    limit = decision.max_rows
    if rows is not None and limit is not None:
        assert len(rows) <= limit
    if decision.facts.operation != "select" or decision.facts.writes or decision.facts.locks:
        return
    raw = db.raw_rows(case.sql, case.params)
    if isinstance(raw, Exception):
        return
    assert error is None, f"the database accepts it raw, but not through the fence: {error!r}"
    if case.volatile or rows is None:
        return
    fenced, expected = Counter(map(repr, rows)), Counter(map(repr, raw))
    if limit is None or len(raw) <= limit:
        assert fenced == expected, "the fence changed the result"
    else:
        assert len(rows) == limit
        assert not fenced - expected, "rows that the raw statement does not return"


@pytest.mark.parametrize("case", _params("sqlite"))
def test_sqlite_execution(sqlite_db: Database, case: Case) -> None:
    """Through the fence on SQLite: denials raise and change nothing; allowed ones run."""
    _check(sqlite_db, case)


@pytest.mark.postgres
@pytest.mark.parametrize("case", _params("postgres"))
def test_postgres_execution(postgres_db: Database, case: Case) -> None:
    """Through the fence on PostgreSQL: denials raise and change nothing; allowed ones run."""
    _check(postgres_db, case)
