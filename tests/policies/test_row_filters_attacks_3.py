"""Row filters against the third outside attack's findings, on real SQLite and PostgreSQL.

- PostgreSQL with ``standard_conforming_strings`` off (set by the agent, or on the role or
  database) read ``'a\\'`` as an unfinished string where the fence read a whole one: text the
  fence judged a literal ran as a subquery of every tenant's rows. The session now pins it on,
  and a SET of it (or of search_path, role and the fence's other pinned settings) is denied.
- ``SET search_path`` made unqualified names resolve where the fence did not look.
- SQLite's ATTACH of the same file gave every table, and its views, under a new schema name.
- An UPDATE of the column a generated filter column is computed from moved a row out.
- ``sqlite_stat1`` and ``sqlite_sequence`` were readable without the system catalog.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest

import sqlfence

NOTES = [(1, "A", "a1"), (2, "A", "a2"), (3, "B", "SECRET_B1"), (4, "B", "SECRET_B2")]
EVERYTHING: dict[str, Any] = {
    "read_only": False,
    "statements": ["*"],
    "row_filters": {"orders": "tenant_id = :tenant", "gen": "tenant_id = :tenant"},
}
SMUGGLED = (
    "SELECT 'a\\' AS c1, ' , (SELECT string_agg(tenant_id || note, ',') FROM orders) AS leak"
    " -- ' AS c2 FROM orders"
)


def _connect(url: str, policy: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy, tenant="A", audit=False, telemetry=False)


@pytest.fixture
def pg_shop(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE orders (id int, tenant_id text, note text)")
        for row in NOTES:
            admin.execute("INSERT INTO orders VALUES (%s, %s, %s)", row)
        admin.execute("CREATE SCHEMA sales")
        admin.execute("CREATE TABLE sales.orders (id int, tenant_id text, note text)")
        admin.execute("INSERT INTO sales.orders VALUES (9, 'B', 'SECRET_SALES')")
        admin.execute(
            "CREATE TABLE gen (id int, code text, val text,"
            " tenant_id text GENERATED ALWAYS AS (substr(code, 1, 1)) STORED)"
        )
        admin.execute("INSERT INTO gen (id, code, val) VALUES (1, 'A1', 'mine')")
    return pg_url


def _rows(conn: Any, sql: str) -> list[Any]:
    return [tuple(row) for row in conn.execute(sql).fetchall()]


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
@pytest.mark.parametrize("read_only", [True, False])
def test_postgres_a_database_without_standard_strings_reads_as_the_fence_does(
    pg_shop: str, read_only: bool
) -> None:
    database = pg_shop.rsplit("/", 1)[1]
    with psycopg.connect(pg_shop, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" SET standard_conforming_strings = off')
    policy = {"row_filters": {"orders": "tenant_id = :tenant"}} if read_only else EVERYTHING
    conn = _connect(pg_shop, policy)
    try:
        rows = _rows(conn, SMUGGLED)
        assert rows
        assert all("SECRET" not in str(cell) for row in rows for cell in row), rows
        assert rows[0][0] == "a\\"  # the server read the literal the fence read
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
@pytest.mark.parametrize(
    "sql",
    [
        "SET standard_conforming_strings = off",
        "SET search_path = sales",
        "SET LOCAL search_path = sales",
        "SET role = postgres",
        "SET statement_timeout = 0",
        "RESET search_path",
    ],
)
def test_postgres_the_pinned_settings_stay_pinned(pg_shop: str, sql: str) -> None:
    conn = _connect(pg_shop, EVERYTHING)
    try:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute(sql)
        assert _rows(conn, "SELECT note FROM orders ORDER BY id") == [("a1",), ("a2",)]
        conn.execute("SET work_mem = '8MB'")  # a harmless setting still changes
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_an_update_of_a_generated_filter_columns_source_is_refused(
    pg_shop: str,
) -> None:
    conn = _connect(pg_shop, EVERYTHING)
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="from which tenant_id"):
            conn.execute("UPDATE gen SET code = 'B1', val = 'planted' WHERE id = 1")
        conn.execute("UPDATE gen SET val = 'still mine' WHERE id = 1")
        assert _rows(conn, "SELECT id, val FROM gen") == [(1, "still mine")]
    finally:
        conn.close()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT, note)")
    raw.execute("CREATE INDEX orders_note ON orders (note)")
    raw.execute("CREATE VIEW v_orders AS SELECT * FROM orders")
    raw.execute(
        "CREATE TABLE gen (id INTEGER, code TEXT, val TEXT,"
        " tenant_id TEXT GENERATED ALWAYS AS (substr(code, 1, 1)) STORED)"
    )
    raw.execute("INSERT INTO gen (id, code, val) VALUES (1, 'A1', 'mine')")
    raw.executemany("INSERT INTO orders VALUES (?, ?, ?)", NOTES)
    raw.execute("ANALYZE")
    raw.commit()
    raw.close()
    return path


@pytest.mark.parametrize("key", ["orders", "main.orders", "main.*"])
def test_sqlite_the_same_file_attached_again_is_refused(shop: Path, key: str) -> None:
    conn = _connect(
        f"sqlite:///{shop}", {**EVERYTHING, "row_filters": {key: "tenant_id = :tenant"}}
    )
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="ATTACH is not allowed"):
            conn.execute(f"ATTACH '{shop}' AS x")
        with pytest.raises(sqlfence.Error):
            conn.execute("SELECT note FROM x.v_orders")
    finally:
        conn.close()


def test_sqlite_an_update_of_a_generated_filter_columns_source_is_refused(shop: Path) -> None:
    conn = _connect(f"sqlite:///{shop}", EVERYTHING)
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="from which tenant_id"):
            conn.execute("UPDATE gen SET code = 'B1', val = 'planted' WHERE id = 1")
    finally:
        conn.close()


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM sqlite_stat1", "SELECT * FROM sqlite_sequence", "DELETE FROM sqlite_stat1"],
)
def test_sqlite_statistics_and_sequences_are_the_system_catalog(shop: Path, sql: str) -> None:
    conn = _connect(f"sqlite:///{shop}", EVERYTHING)
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="system catalog"):
            conn.execute(sql)
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_key_that_misses_its_table_by_case_is_refused(pg_url: str) -> None:
    """An unquoted MixCase folds to mixcase: it would filter nothing and leave "MixCase" open."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute('CREATE TABLE "MixCase" (id int, tenant_id text)')
    with pytest.raises(sqlfence.PolicyError, match=r"but it has public\.MixCase"):
        _connect(pg_url, {"row_filters": {"MixCase": "tenant_id = :tenant"}})
    with pytest.raises(sqlfence.PolicyError, match=r"masked_columns\['MixCase.id'\]"):
        _connect(pg_url, {"masked_columns": {"MixCase.id": "redact"}})
    conn = _connect(pg_url, {"row_filters": {'"MixCase"': "tenant_id = :tenant"}})
    try:
        assert conn.execute('SELECT * FROM "MixCase"').fetchall() == []
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
def test_postgres_a_temporary_table_cannot_stand_in_for_a_filtered_one(pg_shop: str) -> None:
    """PostgreSQL searches pg_temp first unless the path names it: the pinned path puts it
    last, so `orders` is public.orders, as the fence reads it."""
    conn = _connect(pg_shop, {**EVERYTHING, "row_filters": {}})
    try:
        conn.execute("CREATE TEMP TABLE orders (id int, tenant_id text, note text)")
        assert len(conn.execute("SELECT * FROM orders").fetchall()) == len(NOTES)
    finally:
        conn.close()


@pytest.fixture
def fts(tmp_path: Path) -> Path:
    path = tmp_path / "fts.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE VIRTUAL TABLE docs USING fts5(tenant_id, body)")
    raw.execute("INSERT INTO docs VALUES ('A', 'hello alpha'), ('B', 'secret bravo')")
    raw.commit()
    raw.close()
    return path


CALLED = [
    "SELECT * FROM docs('tenant_id:B')",
    "SELECT * FROM main.docs('bravo OR alpha')",
    "SELECT * FROM docs('B') UNION SELECT * FROM docs",
    "SELECT body FROM docs('secret') AS d",
    "SELECT (SELECT group_concat(body) FROM docs('s*'))",
]


@pytest.mark.parametrize("sql", CALLED)
@pytest.mark.parametrize(
    "rules",
    [
        {"row_filters": {"docs": "tenant_id = :tenant"}},
        {"masked_columns": {"docs.body": "redact"}},
        {"denied_tables": ["docs"]},
    ],
    ids=["filtered", "masked", "denied"],
)
def test_sqlite_a_virtual_table_called_with_arguments_is_a_read_of_it(
    fts: Path, sql: str, rules: dict[str, Any]
) -> None:
    """FTS5's docs('query') is docs WHERE docs MATCH 'query': once read as a function call,
    it passed filters, masks and the deny list with every tenant's rows raw."""
    conn = _connect(f"sqlite:///{fts}", {**EVERYTHING, "row_filters": {}, **rules})
    try:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute(sql)
        assert conn.execute("SELECT * FROM json_each('[1]')").fetchall()  # a function still
    finally:
        conn.close()


@pytest.mark.filterwarnings("ignore::sqlfence.PrivilegeWarning")
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM every_order()",
        "SELECT (every_order()).note",
        "SELECT * FROM ROWS FROM (every_order())",
        "SELECT public.every_order()",
    ],
)
def test_postgres_the_databases_own_functions_are_not_called_under_row_filters(
    pg_shop: str, sql: str
) -> None:
    """A function returning SETOF orders reads every tenant's rows with the caller's rights;
    the fence cannot see its body."""
    with psycopg.connect(pg_shop, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION every_order() RETURNS SETOF orders LANGUAGE sql"
            " AS 'SELECT * FROM orders'"
        )
    conn = _connect(pg_shop, EVERYTHING)
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="function of the database's own"):
            conn.execute(sql)
    finally:
        conn.close()
    unfiltered = _connect(pg_shop, {**EVERYTHING, "row_filters": {}})
    try:
        assert len(unfiltered.execute("SELECT * FROM every_order()").fetchall()) == len(NOTES)
    finally:
        unfiltered.close()


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    path = tmp_path / "indexed.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT, note TEXT);"
        "INSERT INTO orders VALUES (1, 'A', 'a1'), (2, 'B', 'SECRET_B');"
        "CREATE VIRTUAL TABLE ext USING fts5(note, content=orders, content_rowid=id);"
        "INSERT INTO ext(ext) VALUES ('rebuild');"
        "CREATE VIRTUAL TABLE docs USING fts5(tenant_id, body);"
        "INSERT INTO docs VALUES ('A', 'mine'), ('B', 'SECRET_DOC');"
    )
    raw.commit()
    raw.close()
    return path


@pytest.mark.parametrize(
    ("rules", "sql"),
    [
        ({"row_filters": {"*.tenant_id": "tenant_id = :tenant"}}, "SELECT * FROM docs_content"),
        ({"row_filters": {"*.tenant_id": "tenant_id = :tenant"}}, "SELECT * FROM docs_data"),
        ({"row_filters": {"orders": "tenant_id = :tenant"}}, "SELECT * FROM ext_data"),
        ({"masked_columns": {"orders.note": "redact"}}, "SELECT * FROM ext_data"),
        ({"denied_tables": ["orders"]}, "SELECT * FROM ext_data"),
        ({"denied_tables": ["orders"]}, "SELECT * FROM ext_docsize"),
    ],
)
def test_sqlite_a_virtual_tables_storage_is_not_read_around_its_rules(
    indexed: Path, rules: dict[str, Any], sql: str
) -> None:
    """Shadow tables under a *.column filter (docs_content has c0, c1, not tenant_id), and an
    external-content FTS table's index over a protected table (content=orders)."""
    conn = _connect(f"sqlite:///{indexed}", {**EVERYTHING, "row_filters": {}, **rules})
    try:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute(sql)
    finally:
        conn.close()
