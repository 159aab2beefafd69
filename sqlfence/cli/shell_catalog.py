"""``\\d``, ``\\dt`` and ``\\d NAME``: the tables and views the shell's identity may read.

The catalog is read on a second connection of its own, read-only in the database (as the MCP
server does), because the agent's policy usually denies the system catalog; what it lists is
cut down to what the agent's policy lets it read (``mcp_catalog.visible``), and denied
columns are left out of ``\\d NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

import sqlfence
from sqlfence import databases
from sqlfence.integrations import mcp_catalog

_READER = sqlfence.Policy.unrestricted().model_copy(update={"allow_multiple_statements": False})


@dataclass(frozen=True)
class Relation:
    """A table or view the agent may read, named as it would write it."""

    name: str
    kind: str  # TABLE or VIEW


class Catalog:
    """What the agent of ``agent`` may read of the database at ``url`` (opened when first used)."""

    def __init__(self, url: str, agent: sqlfence.GuardedConnection) -> None:
        self._url = url
        self._agent = agent
        self._reader: sqlfence.GuardedConnection | None = None

    def relations(self, tables_only: bool = False) -> list[Relation]:
        """The tables (and views) the agent may read, in catalog order."""
        guard = self._agent.guard
        system = self._agent.session.system
        database = databases.find(system)
        if database is None:
            raise sqlfence.NotSupportedError(f"\\d is not available for {system}")
        found = []
        for schema, name, is_view in self._read(database.catalog.list_tables):
            if tables_only and is_view:
                continue
            if mcp_catalog.visible(guard, schema, name):
                shown = name if not schema or schema == guard.namer.default_schema else None
                found.append(Relation(shown or f"{schema}.{name}", "VIEW" if is_view else "TABLE"))
        return found

    def columns(self, table: str) -> list[tuple[str, str, bool, bool]] | None:
        """``(name, type, not null, primary key)`` of each column the agent may read of
        ``table``; None when there is no such table the agent may read."""
        guard = self._agent.guard
        system = self._agent.session.system
        schema, _, name = table.rpartition(".")
        schema = schema or guard.namer.default_schema or ""
        reference = exp.table_(name, db=schema or None, quoted=True).sql(dialect=guard.dialect)
        if not self._agent.decide(f"SELECT 1 FROM {reference}").allowed:
            return None  # a denied table is shown as a missing one
        if not mcp_catalog.visible(guard, schema or None, name):
            return None
        database = databases.find(system)
        if database is None:
            raise sqlfence.NotSupportedError(f"\\d NAME is not available for {system}")
        queries = database.catalog
        params = (schema, name) if queries.describe_with_schema else (name,)
        rows = self._read(queries.describe_table, params)
        return [
            (column, str(kind), bool(not_null), bool(pk))
            for column, kind, not_null, pk in rows
            if not mcp_catalog.column_denied(guard, schema or None, name, column)
        ] or None

    def close(self) -> None:
        """Close the catalog's own connection, if it was opened."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _read(self, sql: str, params: Any = None) -> list[Any]:
        reader = self._open()
        try:
            return list(reader.execute(sql, params).fetchall())
        finally:
            reader.rollback()

    def _open(self) -> sqlfence.GuardedConnection:
        if self._reader is None:
            system = self._agent.session.system
            if self._agent.session.namespace == ":memory:":
                raise sqlfence.NotSupportedError(
                    "an in-memory database is its own connection's alone: its catalog "
                    "cannot be read beside it (use a database file)"
                )
            self._reader = sqlfence.connect(
                self._url,
                policy=_READER,
                telemetry=False,
                **mcp_catalog.read_only_options(system),
            )
        return self._reader
