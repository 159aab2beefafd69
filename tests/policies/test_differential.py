"""Differential fuzzing: whatever the fence allows, PostgreSQL reads and runs the same way.

Hypothesis builds statements from the pieces where a parser-based fence and the server have
read differently: dollar-quote tags of every kind of character, Unicode whitespace and format
characters between tokens, nested comments, quoting and case of names. For each one the fence
allows, PostgreSQL's own grammar (pglast's Python AST, independent of the fence's reading)
must see one statement reading only tables the fence judged, and the text the fence sends
must run on the real server without touching the denied table.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import ast, parse_sql, visitors

import sqlfence
from sqlfence import Guard

MAX_ROWS = 5
POLICY = {"read_only": True, "denied_tables": ["secrets"], "max_rows": MAX_ROWS}
SECRET = "s3cr3t-value"

TAG_CHARACTERS = [
    "a", "B", "_", "1", "\u00a0", "\u2003", "\u3000", "\u0085", "\u2028", "\u200b",
    "\ufeff", "\u00b2", "\u0663", "\u00e9", "\u0301", "\U0001f600", "$",
]  # fmt: skip
SPACES = [
    " ", "\t", "\n", "\r\n", "\f", "\u00a0", "\u2003", "\u3000", "\u0085", "\u2028",
    "\u200b", "\ufeff", " /* c */ ", " /* /* nested */ still */ ", " -- line\n", "/**/",
]  # fmt: skip
TABLES = [
    "orders", "ORDERS", '"orders"', "public.orders", '"public"."orders"',
    "secrets", "SECRETS", "Secrets", '"secrets"', '"Secrets"', "public.secrets",
    '"public".secrets', "pg_catalog.pg_class",
]  # fmt: skip
PAYLOADS = [
    "'", "x", "; DROP TABLE orders; --", ", (SELECT value FROM secrets) --",
    "' FROM secrets --", "; SET statement_timeout = 0; SELECT '", " FROM secrets WHERE '",
    "; COMMIT; BEGIN READ WRITE; DELETE FROM orders; --",
]  # fmt: skip


@st.composite
def tags(draw: st.DrawFn) -> str:
    """A dollar-quote tag: ``$$`` or ``$`` + some characters + ``$``."""
    body = draw(st.lists(st.sampled_from(TAG_CHARACTERS), max_size=3))
    return "$" + "".join(body) + "$"


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """A select-list item: a column, a literal, or text wrapped in (maybe odd) dollar quotes."""
    kind = draw(st.sampled_from(["column", "literal", "dollar", "half-dollar"]))
    if kind == "column":
        return draw(st.sampled_from(["id", "name", "value", "total", '"id"', "ID", "*"]))
    if kind == "literal":
        return draw(st.sampled_from(["1", "'a'", "E'\\''", "'$'", "NULL"]))
    tag = draw(tags())
    payload = draw(st.sampled_from(PAYLOADS))
    if kind == "dollar":
        return f"{tag}{payload}{tag}"
    return f"{tag}{payload}"  # an opening tag the server may close further on, or not


@st.composite
def statements(draw: st.DrawFn) -> str:
    """A SELECT over one or two tables, with odd spacing, quoting, tags and comments."""
    space = st.sampled_from(SPACES)
    items = draw(st.lists(expressions(), min_size=1, max_size=3))
    parts = ["SELECT", draw(space), ", ".join(items), draw(space), "FROM", draw(space)]
    parts.append(draw(st.sampled_from(TABLES)))
    if draw(st.booleans()):
        parts += [draw(space), "JOIN", draw(space), draw(st.sampled_from(TABLES)), " ON true"]
    if draw(st.booleans()):
        parts += [draw(space), "WHERE", draw(space), draw(expressions()), " IS NOT NULL"]
    if draw(st.booleans()):
        cte = draw(st.sampled_from(['"Secrets"', "secrets", "orders", '"ORDERS"']))
        parts.insert(0, f"WITH {cte} AS (SELECT 1 AS id){draw(space)}")
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(PAYLOADS)))
    return "".join(parts)


def _server_reading(sql: str) -> tuple[int, set[str]]:
    """PostgreSQL's statements and the unqualified-or-qualified tables it reads (pglast AST)."""
    tree = parse_sql(sql)
    ctes: set[str] = set()
    relations: list[tuple[str | None, str]] = []  # (schema, name)

    class Collect(visitors.Visitor):
        def visit_CommonTableExpr(self, ancestors: Any, node: ast.CommonTableExpr) -> None:
            assert node.ctename is not None  # the grammar requires a name
            ctes.add(node.ctename)

        def visit_RangeVar(self, ancestors: Any, node: ast.RangeVar) -> None:
            assert node.relname is not None  # the grammar requires a name
            relations.append((node.schemaname, node.relname))

    Collect()(tree)
    tables = {
        f"{schema or ('pg_catalog' if name.startswith('pg_') else 'public')}.{name}"
        for schema, name in relations
        if schema is not None or name not in ctes
    }
    return len(tree), tables


GUARD = Guard(POLICY, dialect="postgres")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements())
def test_allowed_means_the_server_reads_the_same(sql: str) -> None:
    """An allowed text is one statement to PostgreSQL, reading no table the fence missed."""
    decision = GUARD.decide(sql)
    if not decision.allowed:
        return
    count, tables = _server_reading(decision.sql)
    assert count == 1, f"the server reads {count} statements in {sql!r}"
    assert "public.secrets" not in tables, f"the server reads secrets in {sql!r}"
    assert tables <= set(decision.facts.tables), (
        f"the server reads {tables - set(decision.facts.tables)} in {sql!r}"
    )


@pytest.fixture(scope="module")
def fuzz_db(postgres_server: Any) -> Iterator[str]:
    """A database with orders and a secrets table whose value must never come back."""
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE orders (id int, name text, value text, total int)")
        conn.execute("INSERT INTO orders SELECT i, 'n' || i, 'v', i FROM generate_series(1, 9) i")
        conn.execute("CREATE TABLE secrets (id int, name text, value text, total int)")
        conn.execute(f"INSERT INTO secrets VALUES (1, 'k', '{SECRET}', 1)")
    yield url
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sql=statements())
def test_allowed_texts_run_as_judged(fuzz_db: str, sql: str) -> None:
    """What the fence allows runs on the server without a secret, a write, or a lost limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        conn = sqlfence.connect(fuzz_db, policy=POLICY, telemetry=False)
    try:
        rows: list[Any] = []
        try:
            cursor = conn.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        except sqlfence.PolicyViolation:
            return
        except sqlfence.DatabaseError:
            conn.rollback()  # the server's own error: nothing ran
        assert SECRET not in repr(rows), f"a secret came back for {sql!r}"
        assert len(rows) <= MAX_ROWS
    finally:
        conn.close()
    with psycopg.connect(fuzz_db) as raw:
        assert raw.execute("SELECT count(*) FROM orders").fetchone() == (9,)
        assert raw.execute("SELECT value FROM secrets").fetchall() == [(SECRET,)]
        setting = raw.execute("SHOW default_transaction_read_only").fetchone()
        assert setting == ("off",)  # the raw session's own default, untouched
