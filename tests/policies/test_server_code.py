"""The database's own PostgreSQL code does not run under row filters or masks (rule
``routines``), whichever way a text reaches it: a call, an operator, a cast, a domain, a
view, a trigger, a default, a rule, an event trigger, an operator class; and code that
cannot read (an extension's C function, a SQL function of one table-less SELECT) still runs.

Cases are in ``data_server_code/cases.yaml``; each runs on a fresh real database.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

import sqlfence
from sqlfence.policies.server_code import ServerCode
from sqlfence.sql.postgres_grammar import read

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data_server_code" / "cases.yaml").read_text()
)
BASE = """
CREATE TABLE orders (id int PRIMARY KEY, tenant_id text, note text);
INSERT INTO orders VALUES (1, 'A', 'a1'), (2, 'A', 'a2'), (3, 'B', 'SECRET_B1');
CREATE TABLE logs (n bigint);
"""
FILTER = "tenant_id = :tenant"


def _policy(case: dict[str, Any], masked: bool) -> dict[str, Any]:
    rules: dict[str, Any] = (
        {"masked_columns": {"orders.note": "redact"}}
        if masked
        else {"row_filters": {case.get("filtered", "orders"): FILTER}}
    )
    return {"read_only": False, "statements": ["*"], **rules}


def _connect(url: str, policy: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sqlfence.connect(url, policy=policy, tenant="A", audit=False, telemetry=False)


@pytest.fixture(params=CASES, ids=[case["name"] for case in CASES])
def case(request: pytest.FixtureRequest, pg_url: str) -> dict[str, Any]:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(BASE)
        admin.execute(request.param["setup"])
    return {**request.param, "url": pg_url}


def _run(conn: Any, sql: str) -> None:
    cursor = conn.execute(sql)
    if cursor.description is not None:
        cursor.fetchall()
    conn.rollback()


def _refusal(conn: Any, sql: str) -> sqlfence.PolicyViolation:
    try:
        conn.execute(sql)
    except sqlfence.PolicyViolation as error:
        return error
    finally:
        conn.rollback()
    pytest.fail(f"ran: {sql}")


def test_the_databases_own_code_does_not_run_under_row_filters_or_masks(
    case: dict[str, Any],
) -> None:
    """Refused under the row filter (by rule routines) and under the mask; run on a raw
    connection and under a policy with neither (so the refusal is the fence's, and the
    rule's alone)."""
    refused = every = case.get("refused", ())
    with psycopg.connect(case["url"]) as raw:
        for sql in refused:
            raw.execute(sql)
            raw.rollback()
    for policy in (_policy(case, masked=False), _policy(case, masked=True)):
        conn = _connect(case["url"], policy)
        try:
            if "row_filters" not in policy and not case.get("masked", True):
                refused = ()  # the case is about row filters alone
            for sql in refused:
                error = _refusal(conn, sql)
                if "row_filters" in policy:
                    rules = {reason.rule for reason in error.reasons}
                    assert case.get("rule", "routines") in rules, (sql, str(error))
            for sql in case.get("allowed" if "row_filters" in policy else "masked_allowed", ()):
                _run(conn, sql)
        finally:
            conn.close()
    if not case.get("plain", True):
        return
    conn = _connect(case["url"], {"read_only": False, "statements": ["*"]})
    try:
        for sql in every:
            _run(conn, sql)
    finally:
        conn.close()


def _reading(sql: str) -> Any:
    reading = read(sql, "public")
    assert reading.error is None, reading.error
    return reading


@pytest.mark.parametrize(
    ("sql", "operators"),
    [
        ("SELECT 1 === 2", {"==="}),
        ("SELECT 1 OPERATOR(public.===) 2", {"==="}),
        ("SELECT a FROM t WHERE a BETWEEN 1 AND 2", {"<", "<=", ">", ">="}),
        ("SELECT a FROM t WHERE a NOT BETWEEN SYMMETRIC 1 AND 2", {"<", "<=", ">", ">="}),
        ("SELECT a FROM t WHERE a IN (1, 2)", {"="}),
        ("SELECT a FROM t WHERE a IN (SELECT 1)", {"="}),
        ("SELECT CASE a WHEN 1 THEN 2 END FROM t", {"="}),
        ("SELECT * FROM t JOIN u USING (id)", {"="}),
        ("SELECT * FROM t NATURAL JOIN u", {"="}),
        ("SELECT a FROM t ORDER BY a USING <", {"<"}),
        ("SELECT a FROM t WHERE a LIKE 'x'", {"~~"}),
        ("SELECT a FROM t WHERE a = ANY (ARRAY[1])", {"="}),
        ("SELECT a FROM t", set()),
    ],
)
def test_the_operators_postgresql_looks_up(sql: str, operators: set[str]) -> None:
    found = _reading(sql).operators()
    assert operators <= found
    if not operators:
        assert not found


def test_the_names_postgresql_reads() -> None:
    reading = _reading("SELECT x::mood, CAST(y AS public.grade[]), t.f, (t).g, 'konst' FROM t")
    assert reading.type_names() >= {"mood", "grade"}
    assert {"f", "g", "x", "y", "t"} <= reading.identifiers()
    assert "konst" not in reading.identifiers()


def test_what_reaches_code_reaches_through_views_and_writes() -> None:
    code = ServerCode(reads={"public.v": "its view calls f"}, writes={"public.c": "trigger"})
    spread = code.spread(
        {"public.w": {"public.v"}, "public.x": {"public.w"}},
        {("public.p", "public.c"), ("public.q", "public.p")},
    )
    assert set(spread.reads) == {"public.v", "public.w", "public.x"}
    assert set(spread.writes) == {"public.c", "public.p", "public.q"}
    assert "public.v" in spread.reads["public.x"]
    assert spread.reached(None, (), {"public.x"}, (), False) is not None
    assert spread.reached(None, (), (), {"public.q"}, False) is not None
    assert spread.reached(None, (), {"public.c"}, (), False) is None


def test_everywhere_and_ddl_say_why() -> None:
    assert ServerCode(everywhere="an opclass").reached(None, (), (), (), False) == "an opclass"
    code = ServerCode(ddl="an event trigger")
    assert code.reached(None, (), (), (), True) == "an event trigger"
    assert code.reached(None, (), (), (), False) is None
    assert not ServerCode()


SQLITE_SCHEMA = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT, note TEXT);
INSERT INTO orders VALUES (1, 'A', 'a1'), (2, 'B', 'SECRET_B');
CREATE TABLE scratch (id INTEGER);
CREATE TABLE visible (note TEXT);
CREATE TABLE plain (id INTEGER);
CREATE TRIGGER copying AFTER INSERT ON scratch BEGIN
  INSERT INTO visible SELECT note FROM orders;
END;
CREATE TRIGGER planting AFTER DELETE ON plain BEGIN
  UPDATE orders SET note = 'planted' WHERE tenant_id = 'B';
END;
CREATE TRIGGER counting AFTER INSERT ON visible BEGIN SELECT 1; END;
"""


@pytest.mark.parametrize("masked", [False, True], ids=["row filter", "mask"])
@pytest.mark.parametrize(
    "sql", ["INSERT INTO scratch VALUES (1)", "DELETE FROM plain"], ids=["copies", "plants"]
)
def test_sqlite_a_trigger_does_not_reach_a_filtered_or_masked_table(
    tmp_path: Path, sql: str, masked: bool
) -> None:
    """A trigger's body is SQL the rewrite never saw: it copied every tenant's rows into a
    table the agent reads, or changed another tenant's rows. SQLite's authorizer now refuses
    it any access to a filtered or masked table."""
    import sqlite3

    path = tmp_path / "triggers.db"
    raw = sqlite3.connect(path)
    raw.executescript(SQLITE_SCHEMA)
    raw.execute("INSERT INTO plain VALUES (1)")
    raw.commit()
    conn = _connect(f"sqlite:///{path}", _policy({}, masked))
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="engine-side"):
            conn.execute(sql)
        conn.rollback()
        conn.execute("INSERT INTO visible VALUES ('mine')")  # a trigger touching neither
        conn.execute("SELECT * FROM visible").fetchall()
    finally:
        conn.close()
    raw.execute(sql)  # with no fence the trigger runs: the leak is real
    leaked = raw.execute("SELECT note FROM visible UNION ALL SELECT note FROM orders").fetchall()
    assert ("SECRET_B",) in leaked or ("planted",) in leaked
    raw.close()


def test_sqlite_a_foreign_keys_action_within_a_filtered_table_is_refused(tmp_path: Path) -> None:
    """A table referencing itself ON DELETE CASCADE: deleting A's row deleted B's rows that
    point at it (eighth outside attack); the authorizer sees only the table the statement
    names, so the fence refuses the write itself."""
    import sqlite3

    path = tmp_path / "tree.db"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE tree (id INTEGER PRIMARY KEY, tenant_id TEXT,"
        " parent INT REFERENCES tree (id) ON DELETE CASCADE, note TEXT);"
        "INSERT INTO tree VALUES (1, 'A', NULL, 'a'), (2, 'B', 1, 'b');"
        "CREATE TABLE flat (id INTEGER PRIMARY KEY, tenant_id TEXT);"
    )
    raw.commit()
    raw.close()
    policy = {"read_only": False, "statements": ["*"]}
    conn = _connect(f"sqlite:///{path}", {**policy, "row_filters": {"*.tenant_id": FILTER}})
    try:
        with pytest.raises(sqlfence.PolicyViolation, match="foreign key"):
            conn.execute("DELETE FROM tree WHERE id = 1")
        conn.execute("DELETE FROM flat WHERE id = 1")  # no foreign key action: as before
        conn.execute("INSERT INTO tree (id, tenant_id) VALUES (5, 'A')")  # an insert runs none
    finally:
        conn.close()


@pytest.mark.parametrize("masked", [False, True], ids=["row filter", "mask"])
def test_sqlite_a_cte_is_not_taken_for_a_trigger_or_view_of_its_name(
    tmp_path: Path, masked: bool
) -> None:
    """SQLite names a CTE as the source of its body's reads, as it names a trigger or view:
    the statement's own CTEs (which the fence rewrote) read filtered and masked tables, and a
    CTE named after a trigger or a view does not open that trigger's or view's body."""
    import sqlite3

    path = tmp_path / "ctes.db"
    raw = sqlite3.connect(path)
    raw.executescript(SQLITE_SCHEMA + "CREATE VIEW copying_view AS SELECT note FROM orders;")
    raw.commit()
    raw.close()
    conn = _connect(f"sqlite:///{path}", _policy({}, masked))
    try:
        every = [(1,), (2,)] if masked else [(1,)]  # the filter keeps A's row
        for sql, rows in (
            ("WITH mine AS (SELECT * FROM orders) SELECT id FROM mine ORDER BY id", every),
            (
                "WITH mine AS (SELECT id FROM orders WHERE id > 0) SELECT id FROM mine LIMIT 1",
                [(1,)],
            ),
            ("WITH a AS (SELECT id FROM orders), b AS (SELECT id FROM a) SELECT * FROM b", every),
        ):
            assert conn.execute(sql).fetchall() == rows, sql
        for sql in (
            "WITH copying AS (SELECT 1) INSERT INTO scratch SELECT * FROM copying",
            "WITH copying_view AS (SELECT 1) SELECT * FROM main.copying_view",
        ):
            with pytest.raises(sqlfence.PolicyViolation):
                conn.execute(sql)
            conn.rollback()
        assert conn.execute("SELECT count(*) FROM visible").fetchone() == (0,)
    finally:
        conn.close()
