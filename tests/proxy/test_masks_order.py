"""A masked value decides nothing an agent can see, the order of the rows included: an
index's order (the planner's choice, or SQLite's INDEXED BY), a clustering key (a rowid,
a WITHOUT ROWID key) or a partition would rank each row by its masked value, and
``row_number() OVER ()``, ``LIMIT`` or an aggregate's order would show the rank.

The oracle is differential: each case's table is built on two databases that differ only
in the masked column's values (ascending in one, descending in the other, row for row),
and every probe must give the same outcome on both, rows and their order, or be refused.
Cases are in ``data_masks_order/cases.yaml``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

import sqlfence
from tests.postgres_server import PostgresServer

DATA: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "data_masks_order" / "cases.yaml").read_text()
)
TABLE = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER, name TEXT,"
    " salary INTEGER, email TEXT)"
)
MASKED = {"customers.salary": "redact", "customers.email": "email"}
AGGREGATE = {"postgres": "string_agg(id::text, ',')", "sqlite": "group_concat(id, ',')"}
ROWS = 400
CASES = [
    pytest.param((case, dialect), id=f"{dialect}: {case['name']}")
    for case in DATA["cases"]
    for dialect in ("sqlite", "postgres")
    if case.get("dialect", dialect) == dialect
]


def _rows(secret: str, flipped: bool) -> list[tuple[object, ...]]:
    """The same rows but for the secret column's values, reversed in the flipped copy."""
    rows: list[tuple[object, ...]] = []
    for n in range(1, ROWS + 1):
        value = ROWS + 1 - n if flipped else n
        key = value if secret == "id" else n
        salary = value * 10 if secret == "salary" else n * 10
        rows.append((key, 1 + n % 2, f"name{n}", salary, f"user{n}@example.com"))
    return rows


def _build(
    raw: Any,
    many: Callable[[str, list[Any]], object],
    case: dict[str, Any],
    flipped: bool,
    mark: str,
) -> None:
    raw.execute("CREATE TABLE tenants (id INTEGER PRIMARY KEY)")
    raw.execute("INSERT INTO tenants VALUES (1), (2)")
    for statement in case.get("table", TABLE).split(";"):
        raw.execute(statement)
    marks = ", ".join([mark] * 5)
    insert = f"INSERT INTO customers (id, tenant_id, name, salary, email) VALUES ({marks})"
    many(insert, _rows(case.get("secret", "salary"), flipped))
    for statement in case.get("setup", "").split(";"):
        if statement.strip():
            raw.execute(statement)
    raw.execute("ANALYZE")


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str]:
    found: tuple[dict[str, Any], str] = request.param
    return found


@pytest.fixture
def databases(
    case: tuple[dict[str, Any], str], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The ascending database's URL, then the descending one's."""
    table, dialect = case
    urls = []
    if dialect == "sqlite":
        for flipped in (False, True):
            path = tmp_path / f"{'b' if flipped else 'a'}.db"
            raw = sqlite3.connect(path)
            _build(raw, raw.executemany, table, flipped, "?")
            raw.commit()
            raw.close()
            urls.append(f"sqlite:///{path}")
        yield urls[0], urls[1]
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.databases(2) as urls:
        for url, flipped in zip(urls, (False, True), strict=True):
            with psycopg.connect(url, autocommit=True) as served:
                _build(served, served.cursor().executemany, table, flipped, "%s")
        yield urls[0], urls[1]


def _outcomes(url: str, case: dict[str, Any], dialect: str, probes: list[str]) -> list[object]:
    policy = {
        "read_only": False,
        "statements": ["*"],
        "max_rows": None,
        "masked_columns": case.get("masked", MASKED),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = sqlfence.connect(url, policy=policy, audit=False, telemetry=False)
    try:
        for statement in case.get("session", ()):
            with contextlib.suppress(sqlfence.PolicyViolation):
                conn.execute(statement)
        outcomes: list[object] = []
        for probe in probes:
            try:
                rows = conn.execute(probe.replace("{agg}", AGGREGATE[dialect])).fetchall()
            except sqlfence.PolicyViolation:
                outcomes.append("refused")
            else:
                outcomes.append([tuple(row) for row in rows])
            conn.rollback()
        return outcomes
    finally:
        conn.close()


def test_masked_values_decide_neither_the_rows_nor_their_order(
    case: tuple[dict[str, Any], str], databases: tuple[str, str]
) -> None:
    table, dialect = case
    runs, refused = list(table.get("runs", ())), list(table.get("refused", ()))
    probes = runs + refused
    ascending = _outcomes(databases[0], table, dialect, probes)
    descending = _outcomes(databases[1], table, dialect, probes)
    for probe, one, other in zip(probes, ascending, descending, strict=True):
        assert one == other, f"{probe}: the masked values decided the result"
        if probe in refused:
            assert one == "refused", f"ran: {probe}"
        else:
            assert one != "refused", f"refused: {probe}"
