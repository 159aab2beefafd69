"""What an agent may see of the catalog: table visibility under a policy, and catalog SQL.

Shared by the SQLAlchemy dialects (reflection) and the MCP server (``list_tables``,
``describe_table``): a table exists for the agent only when its policy lets it read it.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from sqlglot import exp

from sqlfence import databases
from sqlfence.policies.engine import Guard
from sqlfence.policies.tables import is_catalog_table, table_matches


def read_only_options(system: str) -> dict[str, Any]:
    """The connect() keywords that make a session of ``system`` read-only in the database
    itself (none where sqlfence knows no such option: IRIS)."""
    database = databases.find(system)
    return dict(database.read_only_options) if database is not None else {}


def schema_stamp(server: Any) -> tuple[Any, ...] | None:
    """Something that changes when the schema does, read on the server's own (unrestricted,
    read-only) fence connection; None where the database has none (IRIS)."""
    database = databases.find(server.session.system)
    sql = database.catalog.schema_stamp if database is not None else None
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
    if allowed is not None and not allowed.matches(name, loose=False):
        return False
    if guard.policy.row_filters or guard.policy.masked_columns:
        # a view or part over a filtered or masked table, a table of unknown columns: what
        # the rewrite refuses to read is not listed either (the decision is cached)
        reference = exp.table_(table, db=schema, quoted=True).sql(dialect=guard.dialect)
        return guard.decide(f"SELECT * FROM {reference}").allowed
    return True


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
