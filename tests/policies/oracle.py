"""What the differential oracles of row filters and masks share: two real databases of one
dialect filled alike but for what the agent may see, a statement's rows and the tables'
state after it (rolled back), and rows compared as values whatever the driver's types."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.postgres_server import PostgresServer

# fill(execute, variant, parameter mark): makes one database's tables and rows
Fill = Callable[[Callable[..., Any], bool, str], None]


def value(cell: Any) -> Any:
    """A cell as compared: booleans as 0/1, numbers as rounded floats."""
    if isinstance(cell, bool):
        return int(cell)
    if isinstance(cell, (int, float, Decimal)):
        return round(float(cell), 6)
    return cell


def rows(found: list[Any]) -> list[tuple[Any, ...]]:
    """Rows in a stable order, their cells as compared."""
    return sorted((tuple(value(v) for v in row) for row in found), key=repr)


def run(
    connection: Any, dialect: str, sql: str, params: list[Any] | None, tables: tuple[str, ...]
) -> tuple[list[tuple[Any, ...]] | None, dict[str, list[Any]]]:
    """The rows a statement returns (None for none) and every table's rows after it, all
    rolled back. Without parameters the text is sent alone (psycopg reads % only with them)."""
    cursor = connection.cursor()
    if dialect == "sqlite":
        cursor.execute("BEGIN")
    try:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)
        found = rows(cursor.fetchall()) if cursor.description else None
        state = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")
            state[table] = cursor.fetchall()
        return found, state
    finally:
        connection.rollback() if dialect == "postgres" else cursor.execute("ROLLBACK")


def sqlite_pair(
    directory: Path, fill: Fill, prepare: Callable[[Any], None] | None = None
) -> Iterator[tuple[Any, Any]]:
    """Two SQLite databases in ``directory``: filled with ``variant`` False, then True."""
    connections = []
    for name, variant in (("first.db", False), ("second.db", True)):
        connection = sqlite3.connect(directory / name, isolation_level=None)
        if prepare is not None:
            prepare(connection)
        fill(connection.execute, variant, "?")
        connections.append(connection)
    yield connections[0], connections[1]
    for connection in connections:
        connection.close()


def postgres_pair(server: PostgresServer, prefix: str, fill: Fill) -> Iterator[tuple[Any, Any]]:
    """Two new PostgreSQL databases on ``server``, filled with ``variant`` False, then True;
    dropped afterwards."""
    import psycopg

    names = [f"{prefix}_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    base = server.url.rsplit("/", 1)[0]
    connections = []
    with psycopg.connect(server.url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    for name, variant in zip(names, (False, True), strict=True):
        connection = psycopg.connect(f"{base}/{name}", autocommit=True)
        fill(connection.execute, variant, "%s")
        connection.autocommit = False
        connections.append(connection)
    yield connections[0], connections[1]
    for connection in connections:
        connection.close()
    with psycopg.connect(server.url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
