"""Properties of ``Guard.decide`` over generated and mutated SQL (hypothesis).

For any text, ``decide`` returns a Decision. Whatever it allows, judged again as the text
it would execute, is still allowed, touches no denied table and needs no further row limit.
Generated statements carry what they contain (a denied table, a write, a denied function,
a lock), so a verdict can be checked against the generator rather than against the engine;
generated SQLite queries also run on a real in-memory database, where the rewritten text
must return at most max_rows rows and must run whenever the caller's text runs.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sqlfence
from sqlfence import Decision, Guard
from sqlfence.observe.observer import NULL_OBSERVER
from tests.policies import DEFAULT_SCHEMAS, load_corpus

MAX_ROWS = 7
ANALYST = {
    "read_only": True,
    "denied_tables": ["secrets", "audit.*"],
    "denied_columns": ["users.password"],
    "max_rows": MAX_ROWS,
}
WRITER = {
    "read_only": False,
    "allowed_tables": ["orders", "users", "products", "archive"],
    "denied_columns": ["users.password"],
    "max_rows": MAX_ROWS,
}
STRICT_FUNCTIONS = {"allowed_functions": ["count", "sum", "lower"], "max_rows": MAX_ROWS}
POLICIES = {"analyst": ANALYST, "writer": WRITER}
DIALECTS = ("sqlite", "postgres")
GUARDS = {
    (name, dialect): Guard(policy, dialect=dialect)
    for name, policy in POLICIES.items()
    for dialect in DIALECTS
}

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        # the only fixture used is `request`, to reach the session's PostgreSQL server
        HealthCheck.function_scoped_fixture,
    ],
)

# -- invariants --------------------------------------------------------------------------


def _is_denied_table(qualified: str, dialect: str) -> bool:
    """The analyst deny list (secrets, audit.*), checked independently of the engine."""
    schema, table = qualified.split(".")[-2:]
    return (schema, table) == (DEFAULT_SCHEMAS[dialect], "secrets") or schema == "audit"


def assert_within_policy(
    guard: Guard, sql: str, decision: Decision, syntax: DatabaseSyntax | None = None
) -> None:
    """An allowed decision's final SQL, judged again, is allowed as is, on the same tables.

    When that fails for text the real database cannot parse either (``syntax``), the failure
    belongs to the class pinned by ``test_completed_text_gets_a_stable_verdict``.
    """
    dialect = guard.dialect_name
    if not decision.allowed:
        assert decision.sql == sql, "a denied statement is never rewritten"
        assert decision.reasons
        return
    assert not decision.reasons
    assert not any(_is_denied_table(t, dialect) for t in decision.facts.tables), decision.sql
    try:
        assert_stable(guard, decision)
    except AssertionError:
        if syntax is None or not syntax.rejects(sql, dialect):
            raise


def assert_stable(guard: Guard, decision: Decision) -> None:
    """The final SQL is allowed again by a Guard with nothing cached (the first one caches its
    own output as allowed), on the same tables, with no further rewrite."""
    again = Guard(guard.policy, dialect=guard.dialect_name).decide(decision.sql)
    assert again.allowed, f"{decision.sql!r}: {again.explain()}"
    assert again.facts.tables == decision.facts.tables
    assert not any(_is_denied_table(t, guard.dialect_name) for t in again.facts.tables)
    if guard.policy.max_rows is not None:
        assert again.rewritten is False, f"row limit not intact: {decision.sql!r} -> {again.sql!r}"
        assert again.sql == decision.sql


class DatabaseSyntax:
    """Asks the real database whether it can parse a text (only after a property failed)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def rejects(self, sql: str, dialect: str) -> bool:
        """True when the database reports a syntax error for ``sql``."""
        if dialect == "sqlite":
            try:
                _SYNTAX.execute("EXPLAIN " + sql)
            except sqlite3.Error as error:
                return any(m in str(error) for m in ("syntax error", "incomplete input"))
            return False
        import psycopg

        server = self._request.getfixturevalue("postgres_server")
        with psycopg.connect(server.url) as conn:
            try:
                conn.execute("PREPARE sqlfence_syntax AS " + sql)
            except psycopg.errors.SyntaxError:
                return True
            except psycopg.Error:
                return False
            finally:
                conn.rollback()
        return False


_SYNTAX = sqlite3.connect(":memory:", check_same_thread=False)


# -- a small SQL grammar -------------------------------------------------------------------

COLUMNS = {
    "orders": ("id", "user_id", "total", "status"),
    "users": ("id", "name", "email"),
    "products": ("id", "name", "price"),
    "archive": ("id", "user_id", "total", "status"),
    "secrets": ("id", "name", "value"),
    "audit.log": ("id", "event"),
}
SAFE_TABLES = ("orders", "users", "products", "archive")
DENIED_TABLES = ("secrets", "audit.log")
SAFE_FUNCTIONS = ("count", "sum", "min", "max", "lower", "upper", "abs", "coalesce", "length")
DENIED_FUNCTIONS = {
    "postgres": ("pg_sleep", "pg_read_file", "nextval", "set_config", "query_to_xml", "dblink"),
    "sqlite": ("load_extension", "readfile", "writefile"),
}


@dataclass
class Sql:
    """Generated SQL text and what the generator put into it."""

    text: str
    denied_table: bool = False
    denied_function: bool = False
    writes: bool = False
    locks: bool = False
    params: list[Any] = field(default_factory=list)

    def __add__(self, other: Sql) -> Sql:
        return Sql(
            self.text + other.text,
            self.denied_table or other.denied_table,
            self.denied_function or other.denied_function,
            self.writes or other.writes,
            self.locks or other.locks,
            self.params + other.params,
        )

    def wrap(self, before: str, after: str = "") -> Sql:
        """The same facts around new text."""
        return Sql(
            before + self.text + after,
            self.denied_table,
            self.denied_function,
            self.writes,
            self.locks,
            list(self.params),
        )


def _lit(text: str) -> Sql:
    return Sql(text)


@st.composite
def table_ref(draw: st.DrawFn, dialect: str) -> tuple[Sql, str]:
    """A table name as an agent might spell it, and its logical name."""
    name = draw(st.sampled_from(SAFE_TABLES + DENIED_TABLES))
    schema, _, table = name.rpartition(".")
    if schema:
        spellings = [name, f'"{schema}"."{table}"', name.upper(), name.title()]
    else:
        default = DEFAULT_SCHEMAS[dialect]
        spellings = [table, f"{default}.{table}", f'"{default}"."{table}"', f'"{table}"']
        spellings += [table.upper(), table.capitalize(), f"{default.upper()}.{table}"]
        if dialect == "sqlite":
            spellings += [f"[{table}]", f"`{table}`", f'"{table.upper()}"']
    return Sql(draw(st.sampled_from(spellings)), denied_table=name in DENIED_TABLES), name


@st.composite
def literal(draw: st.DrawFn) -> Sql:
    """A number, a string with quotes in it, or NULL."""
    kind = draw(st.sampled_from(["int", "str", "null", "float"]))
    if kind == "int":
        return _lit(str(draw(st.integers(-5, 1000))))
    if kind == "float":
        return _lit(f"{draw(st.integers(0, 99))}.5")
    if kind == "null":
        return _lit("NULL")
    text = draw(st.text(alphabet="ab ';-*/\\\"$", max_size=8))
    return _lit("'" + text.replace("'", "''") + "'")


@st.composite
def expression(draw: st.DrawFn, dialect: str, columns: tuple[str, ...], depth: int = 0) -> Sql:
    """A scalar expression: column, literal, arithmetic, function, CASE or subquery."""
    choices = ["column", "column", "literal"]
    if depth < 3:
        choices += ["arith", "function", "case"]
    if depth < 2:
        choices += ["subquery"]
    kind = draw(st.sampled_from(choices))
    if kind == "column" and columns:
        return _lit(draw(st.sampled_from(columns)))
    if kind in ("column", "literal"):
        return draw(literal())
    if kind == "arith":
        left = draw(expression(dialect, columns, depth + 1))
        right = draw(expression(dialect, columns, depth + 1))
        return left.wrap("(", f" {draw(st.sampled_from(['+', '-', '*']))} ") + right.wrap("", ")")
    if kind == "function":
        if draw(st.integers(0, 9)) == 0:
            name = draw(st.sampled_from(DENIED_FUNCTIONS[dialect]))
            spelled = draw(st.sampled_from([name, name.upper(), f'"{name}"']))
            if dialect == "postgres" and draw(st.booleans()):
                spelled = f"pg_catalog.{spelled}"
            return Sql(f"{spelled}('x')", denied_function=True)
        name = draw(st.sampled_from(SAFE_FUNCTIONS))
        argument = draw(expression(dialect, columns, depth + 1))
        if name == "coalesce":
            return argument.wrap("coalesce(", ", 0)")
        return argument.wrap(f"{name}(", ")")
    if kind == "case":
        condition = draw(condition_(dialect, columns, depth + 1))
        return condition.wrap("CASE WHEN ", " THEN 1 ELSE 0 END")
    return draw(select(dialect, depth + 1, scalar=True)).wrap("(", ")")


@st.composite
def condition_(draw: st.DrawFn, dialect: str, columns: tuple[str, ...], depth: int = 0) -> Sql:
    """A WHERE/HAVING predicate, possibly with a subquery."""
    kind = draw(st.sampled_from(["compare", "in", "like", "null", "and", "exists", "insub"]))
    if depth >= 2 and kind in ("and", "exists", "insub"):
        kind = "compare"
    left = draw(expression(dialect, columns, depth + 1))
    if kind == "compare":
        op = draw(st.sampled_from(["=", "<", ">=", "<>"]))
        return left + draw(expression(dialect, columns, depth + 1)).wrap(f" {op} ")
    if kind == "in":
        values = draw(st.lists(literal(), min_size=1, max_size=3))
        items = ", ".join(v.text for v in values)
        return left.wrap("", f" IN ({items})")
    if kind == "like":
        return left.wrap("", " LIKE 'a%'")
    if kind == "null":
        return left.wrap("", draw(st.sampled_from([" IS NULL", " IS NOT NULL"])))
    if kind == "and":
        right = draw(condition_(dialect, columns, depth + 1))
        joiner = draw(st.sampled_from([" AND ", " OR "]))
        return left.wrap("(", " IS NULL)") + right.wrap(joiner)
    sub = draw(select(dialect, depth + 1, scalar=True))
    if kind == "exists":
        return sub.wrap("EXISTS (", ")")
    return left + sub.wrap(" IN (", ")")


@st.composite
def from_item(draw: st.DrawFn, dialect: str, depth: int, alias: str) -> tuple[Sql, tuple[str, ...]]:
    """A table, a derived table, a table-valued function or (PostgreSQL) LATERAL."""
    kinds = ["table", "table", "table", "function"] + (["derived"] if depth < 2 else [])
    if dialect == "postgres" and depth < 2 and alias != "s":
        kinds.append("lateral")
    kind = draw(st.sampled_from(kinds))
    if kind in ("derived", "lateral"):
        inner = draw(select(dialect, depth + 1))
        keyword = "LATERAL " if kind == "lateral" else ""
        return inner.wrap(f"{keyword}(", f") AS {alias}"), ()
    if kind == "function":
        if dialect == "postgres":
            return _lit(f"generate_series(1, 3) AS {alias}(n)"), ("n",)
        return _lit(f"json_each('[1, 2]') AS {alias}"), ("key", "value")
    ref, name = draw(table_ref(dialect))
    spelled = draw(st.sampled_from(["", f" {alias}", f" AS {alias}"]))
    return ref.wrap("", spelled), COLUMNS[name]


@st.composite
def limit_clause(draw: st.DrawFn, dialect: str, depth: int) -> Sql:
    """Every way of asking for rows: LIMIT n, ALL, -1, NULL, parameters, expressions, FETCH."""
    n = draw(st.integers(0, 30))
    m = draw(st.integers(0, 5))
    value = draw(st.sampled_from([None, -1, 0, 3, 10_000, "5"]))
    options: list[Sql] = [
        _lit(""),
        _lit(f" LIMIT {n}"),
        _lit(f" LIMIT {n} OFFSET {m}"),
        _lit(" LIMIT 1 + 2"),
        _lit(f" LIMIT ({n})"),
        _lit(" LIMIT NULL"),
    ]
    if depth < 1:
        options.append(_lit(" LIMIT (SELECT count(*) FROM orders)"))
    if dialect == "sqlite":
        options += [
            _lit(" LIMIT -1"),
            _lit(f" LIMIT -1 OFFSET {m}"),
            _lit(f" LIMIT {m}, {n}"),
            Sql(" LIMIT ?", params=[value]),
            Sql(" LIMIT ? OFFSET ?", params=[value, m]),
        ]
    else:
        options += [
            _lit(" LIMIT ALL"),
            _lit(f" LIMIT ALL OFFSET {m}"),
            _lit(f" OFFSET {m}"),
            _lit(f" FETCH FIRST {n} ROWS ONLY"),
            _lit(f" OFFSET {m} ROWS FETCH NEXT {n} ROWS ONLY"),
            _lit(" FETCH FIRST ROW ONLY"),
            _lit(" LIMIT $1"),
            _lit(" LIMIT %s"),
            _lit(f" LIMIT {n}::bigint"),
        ]
    return draw(st.sampled_from(options))


@st.composite
def select(
    draw: st.DrawFn, dialect: str, depth: int = 0, scalar: bool = False, arm: bool = False
) -> Sql:
    """A SELECT with joins, WHERE, GROUP BY, set operations, ORDER BY, a limit and a lock.

    ``scalar``: one column and LIMIT 1; ``arm``: a bare set-operation arm (no ORDER BY,
    limit or lock, which would need parentheses).
    """
    source, columns = draw(from_item(dialect, depth, "s"))
    query = source.wrap(" FROM ")
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        other, other_columns = draw(from_item(dialect, depth + 1, "j"))
        join = draw(st.sampled_from([" JOIN ", " LEFT JOIN ", " CROSS JOIN "]))
        on = "" if "CROSS" in join else " ON 1 = 1"
        query = query + other.wrap(join, on)
        columns = columns + other_columns
    if scalar:
        items = draw(expression(dialect, columns, depth + 1))
    elif draw(st.integers(0, 4)) == 0:
        items = _lit("*")
    else:
        exprs = draw(st.lists(expression(dialect, columns, depth + 1), min_size=1, max_size=3))
        items = exprs[0]
        for item in exprs[1:]:
            items = items + item.wrap(", ")
    text = items.wrap(draw(st.sampled_from(["SELECT ", "SELECT DISTINCT ", "select "])))
    text = text + query
    if draw(st.booleans()):
        text = text + draw(condition_(dialect, columns, depth + 1)).wrap(" WHERE ")
    if draw(st.integers(0, 4)) == 0:
        text = text + _lit(" GROUP BY 1")
        if draw(st.booleans()):
            text = text + draw(condition_(dialect, columns, depth + 1)).wrap(" HAVING ")
    if arm:
        return text
    if depth == 0 and not scalar and draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from([" UNION ", " UNION ALL ", " INTERSECT ", " EXCEPT "]))
        if dialect == "postgres" and draw(st.booleans()):
            text = text + draw(select(dialect, depth + 1)).wrap(f"{op}(", ")")
        else:
            text = text + draw(select(dialect, depth + 1, arm=True)).wrap(op)
    if draw(st.booleans()):
        text = text + _lit(draw(st.sampled_from([" ORDER BY 1", " ORDER BY 1 DESC"])))
    if scalar:
        return text + _lit(" LIMIT 1")
    text = text + draw(limit_clause(dialect, depth))
    if dialect == "postgres" and draw(st.integers(0, 9)) == 0:
        text = text + Sql(" FOR UPDATE", locks=True)
    return text


@st.composite
def dml(draw: st.DrawFn, dialect: str) -> Sql:
    """INSERT / UPDATE / DELETE, with RETURNING and subqueries."""
    ref, name = draw(table_ref(dialect))
    columns = COLUMNS[name]
    kind = draw(st.sampled_from(["insert", "update", "delete"]))
    if kind == "insert":
        body = draw(select(dialect, 1))
        statement = ref.wrap("INSERT INTO ", " ") + body
    elif kind == "update":
        value = draw(expression(dialect, (), 1))
        statement = ref.wrap("UPDATE ", f" SET {columns[-1]} = ") + value
    else:
        statement = ref.wrap("DELETE FROM ")
    if kind != "insert" and draw(st.booleans()):
        statement = statement + draw(condition_(dialect, columns, 1)).wrap(" WHERE ")
    if draw(st.booleans()):
        statement = statement + _lit(" RETURNING id")
    statement.writes = True
    return statement


@st.composite
def statement(draw: st.DrawFn, dialect: str) -> Sql:
    """A whole statement: a query, a CTE query (with DML inside on PostgreSQL) or DML."""
    kind = draw(st.sampled_from(["select", "select", "select", "cte", "dml"]))
    if kind == "dml":
        result = draw(dml(dialect))
    elif kind == "cte":
        body = (
            draw(dml(dialect))
            if dialect == "postgres" and draw(st.integers(0, 3)) == 0
            else draw(select(dialect, 1))
        )
        if body.writes and "RETURNING" not in body.text:
            body = body + _lit(" RETURNING id")
        name = draw(st.sampled_from(["c1", "recent", "totals"]))
        main = draw(st.sampled_from([f"SELECT * FROM {name}", "SELECT 1", f"SELECT x FROM {name}"]))
        result = body.wrap(f"WITH {name} AS (", f") {main}") + draw(limit_clause(dialect, 1))
    else:
        result = draw(select(dialect))
    suffix = draw(st.sampled_from(["", ";", " -- done", "\n", " /* end */"]))
    return result + _lit(suffix)


# -- mutations -------------------------------------------------------------------------------

TOKENS = (
    "'", '"', ";", "--", "/*", "*/", "/*!", "$$", "$t$", "(", ")", ",", "\\", "E'", "`", "[", "]",
    "\n", "\x00", "\u00a0", "é", " ", "*", ".", "?", "%s", "$1", ":n",
    " UNION SELECT * FROM secrets", "; DROP TABLE users", " LIMIT ALL", " LIMIT -1",
    " LIMIT 99999", " OFFSET 3", " FOR UPDATE", " INTO stolen", " WHERE 1=1", " secrets",
    " audit.log", "WITH d AS (DELETE FROM orders RETURNING *) ", "SELECT ", " FROM ",
    " pg_sleep(1)", " load_extension('x')", " RETURNING *", " FETCH FIRST 500 ROWS ONLY",
)  # fmt: skip
SEEDS = tuple(sorted({case.sql for case in load_corpus()}))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A corpus statement with characters and tokens inserted, deleted, replaced or moved."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        size = len(text)
        at = draw(st.integers(0, size))
        end = draw(st.integers(at, min(size, at + 12)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "char"]))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[end:]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[end:]
        elif op == "duplicate":
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at] + draw(st.characters(codec="utf-8")) + text[at:]
    return text


# -- the properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(SETTINGS, max_examples=300)
@given(text=st.text(max_size=120))
def test_decide_returns_a_decision_for_any_text(
    request: pytest.FixtureRequest, dialect: str, text: str
) -> None:
    """Arbitrary text never makes decide raise; what it allows stays within the policy."""
    guard = GUARDS[("analyst", dialect)]
    decision = guard.decide(text)
    assert isinstance(decision, Decision)
    assert_within_policy(guard, text, decision, DatabaseSyntax(request))


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("dialect", DIALECTS)
@settings(SETTINGS, max_examples=350)
@given(sql=mutated())
@example(sql="SELECT id FROM orders LIMIT 5 /*! UNION SELECT value FROM secrets */")
@example(sql="SELECT id FROM orders; -- ; DELETE FROM orders")
@example(sql="SELECT $$ ; DROP TABLE users; $$ FROM orders LIMIT ALL")
def test_mutated_sql_allowed_stays_within_policy(
    request: pytest.FixtureRequest, dialect: str, policy: str, sql: str
) -> None:
    """Mutated corpus SQL: decide never raises, and what it allows re-analyses as allowed."""
    guard = GUARDS[(policy, dialect)]
    decision = guard.decide(sql)
    assert isinstance(decision, Decision)
    assert_within_policy(guard, sql, decision, DatabaseSyntax(request))


@pytest.mark.parametrize("dialect", DIALECTS)
@settings(SETTINGS, max_examples=400)
@given(data=st.data())
def test_generated_sql_is_judged_by_what_it_contains(
    request: pytest.FixtureRequest, dialect: str, data: st.DataObject
) -> None:
    """A generated statement with a denied table, denied function, write or lock is denied."""
    sql = data.draw(statement(dialect))
    guard = GUARDS[("analyst", dialect)]
    decision = guard.decide(sql.text)
    if sql.denied_table or sql.denied_function or sql.writes or sql.locks:
        assert not decision.allowed, f"{sql}: {decision.explain()}"
    syntax = DatabaseSyntax(request)
    assert_within_policy(guard, sql.text, decision, syntax)
    writer = GUARDS[("writer", dialect)]
    assert_within_policy(writer, sql.text, writer.decide(sql.text), syntax)


def _sqlite_database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    for table, columns in COLUMNS.items():
        if "." in table:
            continue
        conn.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
        marks = ", ".join("?" * len(columns))
        conn.executemany(
            f"INSERT INTO {table} VALUES ({marks})",
            [tuple(i if c.endswith("id") else f"{c}{i % 4}" for c in columns) for i in range(20)],
        )
    conn.commit()
    return conn


SQLITE = _sqlite_database()
# No recording: an observer left open for the session would keep the shared monitor alive.
FENCED = sqlfence.wrap(_sqlite_database(), dialect="sqlite", policy=ANALYST, observer=NULL_OBSERVER)


def _run(sql: str, params: list[Any]) -> list[Any] | Exception:
    deadline = time.monotonic() + 2
    SQLITE.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return SQLITE.execute(sql, params).fetchall()
    except (sqlite3.Error, OverflowError) as error:
        return error
    finally:
        SQLITE.rollback()


def _run_fenced(sql: str, params: list[Any]) -> list[Any] | Exception:
    """Through a fence connection (its SQL rewrite and its cursor cap) on the same data."""
    try:
        return FENCED.execute(sql, params).fetchall()
    except sqlfence.Error as error:
        return error
    finally:
        FENCED.rollback()


@settings(SETTINGS, max_examples=400)
@given(data=st.data())
def test_generated_sqlite_queries_return_at_most_max_rows(data: st.DataObject) -> None:
    """On a real SQLite database an allowed query runs through the fence whenever the caller's
    runs raw, with the raw rows up to max_rows (in SQL or by the cursor's cap)."""
    sql = data.draw(select("sqlite"))
    decision = GUARDS[("analyst", "sqlite")].decide(sql.text)
    if not decision.allowed:
        return
    raw = _run(sql.text, sql.params)
    fenced = _run_fenced(sql.text, sql.params)
    if isinstance(raw, Exception):
        return
    assert not isinstance(fenced, Exception), f"{decision.sql!r} fails: {fenced}"
    assert len(fenced) <= MAX_ROWS, decision.sql
    expected = min(len(raw), MAX_ROWS)
    assert len(fenced) == expected, f"{decision.sql!r}: {len(fenced)} rows, raw {len(raw)}"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("limit", ["marker", "1 + 2", "(3)", "marker + 1", "least(marker, 9)"])
def test_rewrite_stays_within_the_function_allow_list(dialect: str, limit: str) -> None:
    """The final SQL of an allowed query is allowed under a function allow list too."""
    guard = Guard(STRICT_FUNCTIONS, dialect=dialect)
    limit = limit.replace("marker", "?" if dialect == "sqlite" else "%s")
    sql = f"SELECT count(*) FROM orders GROUP BY status LIMIT {limit}"
    assert_within_policy(guard, sql, guard.decide(sql))


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgres", "SELECT (a?)"),
        ("postgres", "SELECT (u?).password FROM users u"),
        ("sqlite", "SELECT " + "(" * 600 + "1" + ")" * 600),
        ("postgres", "SELECT " + "(" * 600 + "1" + ")" * 600),
        ("sqlite", "SELECT " + "NOT " * 3000 + "1"),
        ("sqlite", "SELECT * FROM mydb..secrets"),
        ("postgres", "SELECT * FROM a..b"),
    ],
    ids=[
        "pg-question-mark",
        "pg-question-mark-field",
        "sqlite-parens",
        "pg-parens",
        "sqlite-not",
        "sqlite-empty-schema",
        "pg-empty-schema",
    ],
)
def test_parser_crashes_are_denials(dialect: str, sql: str) -> None:
    """Input that crashes the parser is denied as unparsed; decide never raises."""
    decision = GUARDS[("analyst", dialect)].decide(sql)
    assert not decision.allowed
    assert decision.rule == "unparsed"


INVALID_SQL = [
    ("sqlite", "SELECT-- id FROM users"),
    ("sqlite", "SELECT id FROM FROM orders LIMIT NULL"),
    ("sqlite", "SELECT id FROM FROM orders OFFSET 5"),
    ("sqlite", "SELECT id FROM orders LIMIT ALL"),
    pytest.param("postgres", "SELECT id FROM  ALL OFFSET", marks=pytest.mark.postgres),
    pytest.param("postgres", "SELECT id FROM FROM orders OFFSET 5", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("dialect", "sql"), INVALID_SQL)
def test_invalid_examples_are_rejected_by_the_database(
    request: pytest.FixtureRequest, dialect: str, sql: str
) -> None:
    """The examples below really are syntax errors for the database itself."""
    assert DatabaseSyntax(request).rejects(sql, dialect)


@pytest.mark.parametrize(("dialect", "sql"), [*INVALID_SQL, ("postgres", "SELECT")])
def test_completed_text_gets_a_stable_verdict(
    request: pytest.FixtureRequest, dialect: str, sql: str
) -> None:
    """Such text is denied as unparsed, or its final SQL is stable, or the database rejects
    the final SQL too (the fence never turns text the database refuses into a query)."""
    guard = GUARDS[("analyst", dialect)]
    decision = guard.decide(sql)
    if not decision.allowed:
        return
    if Guard(guard.policy, dialect=dialect).decide(decision.sql).allowed:
        assert_stable(guard, decision)
    else:
        assert DatabaseSyntax(request).rejects(decision.sql, dialect), decision.sql
