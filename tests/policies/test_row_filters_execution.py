"""Row filters against real SQLite and PostgreSQL: the differential oracle.

Two databases per dialect hold the same tables: one with tenants A's and B's rows, one with
only A's (and every shared row). Each shape of ``data_row_filters/shapes.yaml`` is decided by
a guard of tenant A; an allowed statement, rewritten, must give on the two-tenant database
what the statement as written gives on A's database, and leave the tables as it leaves A's.
Denied shapes are denied with the reason given. Both policy forms are run: tables named one
by one, and ``*.tenant_id`` (every table with the column, from the catalog).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence.policies.engine import Guard
from tests.policies import oracle
from tests.postgres_server import PostgresServer

DATA = Path(__file__).parent / "data_row_filters" / "shapes.yaml"
SHAPES: list[dict[str, Any]] = yaml.safe_load(DATA.read_text())
FILTERED = ("customers", "orders", "order_items", '"Notes"')
TABLES = ("customers", "orders", "order_items", "products", '"Notes"')
COLUMNS = {
    "customers": ("id", "tenant_id", "name", "region"),
    "orders": ("id", "tenant_id", "customer_id", "total", "status"),
    "order_items": ("id", "tenant_id", "order_id", "product_id", "qty"),
    "products": ("id", "name", "price"),
    "notes": ("id", "tenant_id", "body"),
    "v_orders": ("id", "tenant_id", "customer_id", "total", "status"),
}
SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id TEXT, name TEXT, region TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT, customer_id INTEGER, total INTEGER,
                     status TEXT);
CREATE TABLE order_items (id INTEGER PRIMARY KEY, tenant_id TEXT, order_id INTEGER,
                          product_id INTEGER, qty INTEGER);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price INTEGER);
CREATE TABLE "Notes" (id INTEGER PRIMARY KEY, tenant_id TEXT, body TEXT);
CREATE VIEW v_orders AS SELECT * FROM orders
"""
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "customers": [
        (1, "A", "ann", "north"), (2, "A", "bob", "south"), (3, "A", "cat", "north"),
        (4, "B", "dan", "north"), (5, "B", "eve", "south"),
    ],
    "orders": [
        (10, "A", 1, 10, "open"), (11, "A", 1, 25, "paid"), (12, "A", 2, 40, "open"),
        (13, "A", None, 5, "void"), (14, "A", 2, 18, "paid"),
        (20, "B", 1, 99, "open"), (21, "B", 4, 50, "paid"), (22, "B", 4, 7, "open"),
        (23, "B", 5, 120, "paid"),
    ],
    "order_items": [
        (1000, "A", 10, 100, 1), (1001, "A", 11, 101, 2), (1002, "A", 12, 100, 3),
        (1003, "A", 14, 102, 1), (2000, "B", 20, 103, 5), (2001, "B", 10, 101, 4),
        (2002, "B", 21, 100, 1),
    ],
    "products": [(100, "pen", 2), (101, "ink", 5), (102, "pad", 3), (103, "cap", 1)],
    '"Notes"': [(1, "A", "a1"), (2, "A", "a2"), (3, "B", "b1"), (11, "B", "b2")],
}  # fmt: skip
POLICIES = {
    "named": {name: "tenant_id = :tenant" for name in FILTERED},
    "by_column": {"*.tenant_id": "tenant_id = :tenant"},
}


def _cases() -> list[Any]:
    cases = []
    for dialect in ("sqlite", "postgres"):
        for index, shape in enumerate(SHAPES):
            if shape.get("only", dialect) != dialect:
                continue
            for form in POLICIES:
                marks = [pytest.mark.postgres] if dialect == "postgres" else []
                cases.append(
                    pytest.param(dialect, form, shape, id=f"{dialect}-{form}-{index}", marks=marks)
                )
    return cases


def _fill(execute: Any, only_a: bool, mark: str) -> None:
    for statement in SCHEMA.split(";"):
        execute(statement)
    for table, rows in ROWS.items():
        for row in rows:
            if only_a and table in FILTERED and row[1] != "A":
                continue
            marks = ", ".join(mark for _ in row)
            execute(f"INSERT INTO {table} VALUES ({marks})", row)


class Pair:
    """The two databases of one dialect, and the guard of tenant A for each policy form."""

    def __init__(self, dialect: str, full: Any, only_a: Any) -> None:
        self.dialect = dialect
        self.full = full
        self.only_a = only_a
        schema = "main" if dialect == "sqlite" else "public"
        notes = "notes" if dialect == "sqlite" else "Notes"
        columns = {f"{schema}.{name}": cols for name, cols in COLUMNS.items()}
        columns[f"{schema}.{notes}"] = COLUMNS["notes"]
        self.guards = {
            form: Guard(
                {"read_only": False, "statements": ["*"], "max_rows": None, "row_filters": rows},
                dialect=dialect,
                tenant="A",
                agent_id="bot",
                views={f"{schema}.v_orders": [f"{schema}.orders"]},
                table_columns=columns,
            )
            for form, rows in POLICIES.items()
        }

    def run(self, connection: Any, sql: str, params: list[Any] | None) -> tuple[Any, ...]:
        """The rows a statement returns (None for none) and every table's rows after it."""
        found, state = oracle.run(connection, self.dialect, sql, params, TABLES)
        return found, {table: oracle.rows(got) for table, got in state.items()}


@pytest.fixture(scope="module")
def sqlite_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """SQLite: the two-tenant database and tenant A's."""
    databases = oracle.sqlite_pair(tmp_path_factory.mktemp("row_filters"), _fill)
    yield Pair("sqlite", *next(databases))
    next(databases, None)


@pytest.fixture(scope="module")
def postgres_pair(postgres_server: PostgresServer) -> Iterator[Pair]:
    """PostgreSQL: the two-tenant database and tenant A's, on the session's server."""
    databases = oracle.postgres_pair(postgres_server, "rf", _fill)
    yield Pair("postgres", *next(databases))
    next(databases, None)


@pytest.mark.parametrize(("dialect", "form", "shape"), _cases())
def test_shape(
    dialect: str, form: str, shape: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """An allowed shape, rewritten, sees and changes on two tenants' rows what it would on
    tenant A's alone; a denied shape is denied for the reason given."""
    pair: Pair = request.getfixturevalue(f"{dialect}_pair")
    sql = shape["sql"] if dialect == "sqlite" else shape["sql"].replace("?", "%s")
    params = shape.get("params")
    decision = pair.guards[form].decide(sql)
    if shape.get("expect", "same") == "denied":
        assert not decision.allowed, decision.sql
        unknown = form == "by_column" and "does not know the columns of" in decision.explain()
        assert shape["reason"] in decision.explain() or unknown  # a table made by the statement
        return
    assert decision.allowed, decision.explain()
    expected = pair.run(pair.only_a, sql, params)
    got = pair.run(pair.full, decision.sql, params)
    rows, state = got
    assert rows == expected[0], decision.sql
    for table in TABLES:
        mine = [row for row in state[table] if table not in FILTERED or row[1] == "A"]
        assert mine == expected[1][table], (table, decision.sql)
        others = [row for row in state[table] if table in FILTERED and row[1] != "A"]
        assert (
            others == oracle.rows([r for r in ROWS[table] if r[1] != "A"]) or table not in FILTERED
        )


def test_corpus_is_big_enough() -> None:
    """The corpus holds at least 150 shapes."""
    assert len(SHAPES) >= 150
