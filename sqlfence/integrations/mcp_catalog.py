"""What an agent may see of the catalog: table visibility under a policy, and catalog SQL.

Shared by the SQLAlchemy dialects (reflection) and the MCP server (``list_tables``,
``describe_table``): a table exists for the agent only when its policy lets it read it.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from sqlfence.policies.engine import Guard
from sqlfence.policies.tables import is_catalog_table, table_matches

# The catalog SQL the MCP server runs for each database system (fixed text, never the agent's).
# Each row: schema, name, and whether it is a view.
LIST_TABLES = {
    "sqlite": (
        "SELECT NULL, name, type = 'view' FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY name"
    ),
    "postgresql": (
        "SELECT table_schema, table_name, table_type = 'VIEW' FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY table_schema, table_name"
    ),
    "intersystems_iris": (
        "SELECT TABLE_SCHEMA, TABLE_NAME, CASE WHEN TABLE_TYPE = 'VIEW' THEN 1 ELSE 0 END "
        "FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA NOT LIKE '%SYS%' AND TABLE_SCHEMA NOT LIKE 'Ens%' "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME"
    ),
}
# Is {column} of the outer row (c) part of its table's primary key? (information_schema)
_PRIMARY_KEY = (
    "SELECT 1 FROM information_schema.table_constraints k "
    "JOIN information_schema.key_column_usage u ON u.constraint_schema = k.constraint_schema "
    "AND u.constraint_name = k.constraint_name AND u.table_name = k.table_name "
    "WHERE k.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema "
    "AND k.table_name = c.table_name AND u.column_name = {column}"
)
DESCRIBE_TABLE = {
    # table_xinfo lists generated columns too (hidden 2, 3); hidden 1 is a virtual table's own
    "sqlite": 'SELECT name, type, "notnull", pk FROM pragma_table_xinfo(?) WHERE hidden <> 1',
    "postgresql": (
        "SELECT c.column_name, c.data_type, c.is_nullable = 'NO', EXISTS ("
        + _PRIMARY_KEY.format(column="c.column_name")
        + ") FROM information_schema.columns c "
        "WHERE c.table_schema = %s AND c.table_name = %s ORDER BY c.ordinal_position"
    ),
    "intersystems_iris": (
        "SELECT c.COLUMN_NAME, c.DATA_TYPE, CASE WHEN c.IS_NULLABLE = 'NO' THEN 1 ELSE 0 END, "
        "CASE WHEN EXISTS ("
        + _PRIMARY_KEY.format(column="c.COLUMN_NAME")
        + ") THEN 1 ELSE 0 END FROM INFORMATION_SCHEMA.COLUMNS c "
        "WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION"
    ),
}
EXPLAIN = {
    "sqlite": "EXPLAIN QUERY PLAN ",
    "postgresql": "EXPLAIN ",
    "intersystems_iris": "EXPLAIN ",
}


# What changes with any DDL: PostgreSQL has no schema version, so the catalog's size stands in.
SCHEMA_STAMP = {
    "sqlite": "PRAGMA schema_version",
    "postgresql": (
        "SELECT (SELECT count(*) FROM pg_class), (SELECT max(oid::int8) FROM pg_class), "
        "(SELECT count(*) FROM pg_attribute WHERE attnum > 0), "
        "(SELECT count(*) FROM pg_attrdef), (SELECT count(*) FROM pg_rewrite)"
    ),
}


def schema_stamp(server: Any) -> tuple[Any, ...] | None:
    """Something that changes when the schema does, read on the server's own (unrestricted,
    read-only) fence connection; None where the database has none (IRIS)."""
    sql = SCHEMA_STAMP.get(server.session.system)
    if sql is None:
        return None
    cursor = server.execute(sql)
    try:
        return tuple(cursor.fetchone() or ())
    finally:
        cursor.close()
        server.rollback()


def qualified(guard: Guard, schema: str | None, table: str) -> tuple[str, ...]:
    """``(schema, table)`` as the guard compares names; reflected names are exact (quoted)."""
    namer = guard.namer
    schema = schema or namer.default_schema
    parts = (schema, table) if schema else (table,)
    return tuple(namer.normalize(part, quoted=True) for part in parts)


def visible(guard: Guard, schema: str | None, table: str) -> bool:
    """May the policy's agent read ``schema.table``? What catalog views show and hide."""
    name = ".".join(qualified(guard, schema, table))
    patterns = guard.patterns
    if patterns.denied_set and patterns.denied_set.matches(name, loose=True):
        return False
    bases = patterns.views.get(name, frozenset())
    if patterns.denied_set and any(patterns.denied_set.matches(b, loose=True) for b in bases):
        return False  # a view (or parent table) over a denied table
    if not guard.policy.allow_system_catalog and any(
        is_catalog_table(patterns.dialect, b) for b in bases
    ):
        return False
    allowed = patterns.allowed_set
    return allowed is None or allowed.matches(name, loose=False)


def column_denied(guard: Guard, schema: str | None, table: str, column: str) -> bool:
    """Is ``column`` of ``schema.table`` on the policy's denied_columns list?"""
    owner = qualified(guard, schema, table)
    name = guard.namer.normalize(column, quoted=True).lower()
    # a generated column reads the columns it is computed from
    read = {name} | guard.patterns.generated_columns.get(".".join(owner), {}).get(name, set())
    return any(
        table_matches(table_pattern, owner, True)
        and any(fnmatchcase(each, column_pattern) for each in read)
        for table_pattern, column_pattern in guard.patterns.denied_columns
    )
