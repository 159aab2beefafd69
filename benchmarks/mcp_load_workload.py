"""The workload of ``benchmarks/mcp_load.py``: the shop database, its policy, and the mix of
tool calls the clients make with the answer each must get."""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integrations.mcp_helpers import text_of

CUSTOMERS = 2_000
ORDERS = 5_000
POLICY = """\
default:
  read_only: true
  denied_tables: [secrets]
  denied_columns: [customers.email]
"""
MIX = {"point select": 50, "aggregate": 15, "list_tables": 15, "describe_table": 15, "denied": 5}
SQL = {
    "point select": (
        "SELECT id, name, country FROM customers WHERE id = {c}",
        "SELECT id, customer_id, status, amount FROM orders WHERE id = {o}",
    ),
    "aggregate": (
        "SELECT status, count(*) AS n, round(sum(amount), 2) AS total FROM orders "
        "WHERE customer_id BETWEEN {c} AND {c} + 49 GROUP BY status",
    ),
    "denied": (  # a denied table, a denied column, a write under a read-only policy
        "SELECT * FROM secrets",
        "SELECT email FROM customers WHERE id = {c}",
        "DELETE FROM orders WHERE id = {o}",
    ),
}


def create_database(path: Path, seed: int = 12) -> None:
    """customers, orders (indexed by customer) and secrets."""
    rng = random.Random(seed)
    customers = [
        (i, f"customer {i}", f"c{i}@example.org", rng.choice(["FR", "DE", "GB", "US", "JP"]))
        for i in range(1, CUSTOMERS + 1)
    ]
    statuses = ["new", "paid", "shipped", "returned"]
    orders = [
        (i, rng.randint(1, CUSTOMERS), rng.choice(statuses), round(rng.random() * 500, 2))
        for i in range(1, ORDERS + 1)
    ]
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES"
            " customers, status TEXT, amount REAL);"
            "CREATE INDEX orders_customer ON orders (customer_id);"
            "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT);"
            "INSERT INTO secrets VALUES (1, 'the launch codes');"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customers)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", orders)


@dataclass(frozen=True)
class Call:
    """One tool call of the mix, and what its answer must be."""

    kind: str
    tool: str
    arguments: dict[str, Any]
    denied: bool = False
    rows: int | None = None  # the row_count a query must answer


def next_call(rng: random.Random) -> Call:
    """A call drawn from MIX."""
    [kind] = rng.choices(list(MIX), weights=list(MIX.values()))
    if kind == "list_tables":
        return Call(kind, "list_tables", {})
    if kind == "describe_table":
        return Call(kind, "describe_table", {"table": rng.choice(["customers", "orders"])})
    sql = rng.choice(SQL[kind]).format(c=rng.randint(1, CUSTOMERS), o=rng.randint(1, ORDERS))
    rows = 1 if kind == "point select" else None
    return Call(kind, "query", {"sql": sql}, denied=kind == "denied", rows=rows)


def judge(call: Call, result: Any) -> str | None:
    """Why the answer to ``call`` is a failure, or None when it is the expected one."""
    text = text_of(result)
    if call.denied:
        return None if result.is_error and "denied" in text else f"not denied: {text[:120]}"
    if result.is_error:
        return f"tool error: {text[:120]}"
    answer = json.loads(text)
    if call.tool == "list_tables" and sorted(answer["tables"]) != ["customers", "orders"]:
        return f"wrong tables: {answer['tables']}"
    if call.tool == "describe_table" and "email" in {c["name"] for c in answer["columns"]}:
        return "describe_table shows a denied column"
    if call.rows is not None and answer["row_count"] != call.rows:
        return f"wrong row_count {answer['row_count']} for {call.arguments['sql']}"
    return None
