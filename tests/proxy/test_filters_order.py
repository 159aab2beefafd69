"""Under a row filter on PostgreSQL, the order of a result the agent did not order follows
its own values, not the plan, which PostgreSQL chooses from statistics over every tenant's
rows (tenth outside attack: whether another tenant's rows hold a value, and how many rows it
has, read from the order of a UNION's rows). Differential: two databases with the same rows
of tenant A and other rows of tenant B must answer alike, order included. Cases are in
``data_filters_order/cases.yaml``."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

import sqlfence
from tests.postgres_server import PostgresServer

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data_filters_order" / "cases.yaml").read_text()
)["cases"]
SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 50) g;
CREATE TABLE orders (id int, tenant_id text, status text, total int, customer_id int);
INSERT INTO orders SELECT g, 'A', CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END, g % 40,
  1 + g % 50 FROM generate_series(1, 200) g;
"""
POLICY = {"read_only": True, "max_rows": None, "row_filters": {"orders": "tenant_id = :tenant"}}


@pytest.fixture(params=CASES, ids=[case["name"] for case in CASES])
def databases(
    request: pytest.FixtureRequest, postgres_server: PostgresServer
) -> Iterator[tuple[dict[str, Any], str, str]]:
    """The case, the database without hidden rows, the one with them."""
    case = request.param
    base = postgres_server.url.rsplit("/", 1)[0]
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        for name, hidden in zip(names, (False, True), strict=True):
            with psycopg.connect(f"{base}/{name}", autocommit=True) as owner:
                owner.execute(SCHEMA)
                if hidden:
                    owner.execute(case["hidden"])
                owner.execute("ANALYZE")
        yield case, f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(url: str, probes: list[str]) -> list[list[tuple[Any, ...]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = sqlfence.connect(url, policy=POLICY, tenant="A", audit=False, telemetry=False)
    try:
        return [[tuple(row) for row in conn.execute(probe).fetchall()] for probe in probes]
    finally:
        conn.close()


def test_hidden_rows_decide_no_order_of_an_unordered_result(
    databases: tuple[dict[str, Any], str, str],
) -> None:
    case, without, with_hidden = databases
    probes = case["probes"]
    for probe, one, other in zip(
        probes, _answers(without, probes), _answers(with_hidden, probes), strict=True
    ):
        assert one, probe
        assert one == other, f"{probe}: the hidden rows decided the order"
