"""InterSystems IRIS through ``iris.dbapi``: ``iris://user:password@host:port/NAMESPACE``.

Query options: ``timeout`` (connect timeout, seconds) and ``sharedmemory`` (true/false).
The second layer is the driver's per-cursor query timeout (``setQueryTimeout``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlfence import databases
from sqlfence.policies.engine import Guard
from sqlfence.proxy.drivers import ConnectionURL, Driver

_TRUE = {"1", "true", "yes", "on"}
# Implicit joins (`Company->Name`) follow reference properties (a property whose type is a
# persistent class, projected as a column holding the referenced row's ID) and parent-child
# relationships; foreign keys do not support arrow syntax (InterSystems SQL, "Implicit Joins
# (Arrow Syntax)"). So the arrow catalog is read from the class dictionary, never from the
# foreign keys of INFORMATION_SCHEMA. System classes (`%` packages) are left out to keep the
# read small: an arrow from one of their tables stays unresolved, and is denied under table
# rules.
_REFERENCES_QUERY = """
SELECT o.SqlSchemaName, o.SqlTableName, p.SqlFieldName, p.Name, p.Cardinality, p.Collection,
       t.SqlSchemaName, t.SqlTableName
FROM %Dictionary.CompiledProperty p
JOIN %Dictionary.CompiledClass o ON o.Name = p.parent
JOIN %Dictionary.CompiledClass t ON t.Name = p.Type
WHERE o.ClassType = 'persistent' AND t.ClassType = 'persistent'
  AND NOT (o.Name %STARTSWITH '%')
"""
_STAR_COLUMNS_QUERY = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS
WHERE NOT (TABLE_SCHEMA %STARTSWITH '%') AND TABLE_SCHEMA <> 'INFORMATION_SCHEMA'
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""
# The server's refusal when its licence has no unit left; the Community Edition's five
# licence units are reported to give about five connections in all.
_LICENCE_REFUSAL = re.compile(r"\blicen[cs]e\s+limit\b|\bno\s+licen[cs]e\s+units?\b", re.I)
LICENCE_LIMIT = (
    "IRIS refused the connection: its licence limit is reached (the Community Edition allows "
    "about 5 connections at once, sqlfence's admin session and every fence connection "
    "included); close idle connections or sandboxes, or give the server a licence with more "
    "units"
)


def reference_catalog(rows: Iterable[Sequence[Any]]) -> dict[str, str]:
    """``Schema.Table.Column -> Schema.Table`` for every column an arrow can follow.

    ``rows`` are ``_REFERENCES_QUERY``'s: the owning table, the property's SQL field name
    and property name, its relationship cardinality and collection kind, and the table of
    its type. A reference or ``one``/``parent`` relationship is a column; a ``children``
    relationship has no column, the arrow names the relationship (``Lines->Amount`` from the
    parent). Collections and the ``many`` side are no arrow. A name that holds a dot, or a
    column claimed twice (any case) for different tables, is left out: such an arrow stays
    unresolved, and is denied under table rules, rather than judged against a guess.
    """
    found: dict[str, tuple[str, str]] = {}
    clashes: set[str] = set()
    for schema, table, field, name, cardinality, collection, ref_schema, ref_table in rows:
        kind = str(cardinality or "").lower()
        if collection or kind == "many":
            continue
        column = name if kind == "children" else (field or name)
        parts = [str(part or "") for part in (schema, table, column, ref_schema, ref_table)]
        if not all(parts) or any("." in part for part in parts):
            continue
        key, target = ".".join(parts[:3]), ".".join(parts[3:])
        seen = found.setdefault(key.lower(), (key, target))
        if seen[1].lower() != target.lower():
            clashes.add(key.lower())
    return {key: target for lowered, (key, target) in found.items() if lowered not in clashes}


def is_licence_refusal(error: BaseException | str) -> bool:
    """True when IRIS refused a connection because its licence has no unit left."""
    return bool(_LICENCE_REFUSAL.search(str(error)))


class IrisDriver(Driver):
    """intersystems-irispython's ``iris.dbapi``."""

    database = databases.IRIS

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        params: dict[str, Any] = {
            "hostname": url.host or "localhost",
            "port": url.port or databases.IRIS.default_port,
            "namespace": url.database or "USER",
            "username": url.username or "",
            "password": url.password or "",
        }
        options = dict(url.options)
        if "timeout" in options:
            params["timeout"] = int(float(options.pop("timeout")))
        if "sharedmemory" in options:
            params["sharedmemory"] = options.pop("sharedmemory").lower() in _TRUE
        params.update(options)
        params.update(kwargs)
        return self.module.connect(**params)

    def load_catalog(self, raw: Any) -> dict[str, str]:
        """The columns ``->`` can follow and the tables they reach, from the class dictionary
        (``%Dictionary.CompiledProperty`` and ``CompiledClass``; see ``reference_catalog``).

        Written against the class reference and the arrow-syntax documentation; not yet run
        against a live IRIS here. A failure (a login that may not read the dictionary, say)
        leaves the catalog empty, and then arrows are denied under table rules (fail closed).
        """
        rows = self._catalog_rows(raw, _REFERENCES_QUERY)
        return reference_catalog(rows) if rows else {}

    def load_star_columns(self, raw: Any) -> dict[str, list[str]]:
        """Every table's and view's columns outside the system schemas, in ``*``'s order,
        from ``INFORMATION_SCHEMA.COLUMNS`` (written to the documentation, not yet run
        against a live IRIS; a failure leaves it empty, and masked tables are then refused)."""
        columns: dict[str, list[str]] = {}
        for schema, table, column in self._catalog_rows(raw, _STAR_COLUMNS_QUERY):
            # IRIS compares names case-insensitively
            columns.setdefault(f"{schema}.{table}".lower(), []).append(column)
        return columns

    def _catalog_rows(self, raw: Any, sql: str) -> list[Any]:
        """The rows of one of the fence's catalog queries; none when the login may not read
        them (what depends on them then fails closed)."""
        cursor = raw.cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        except self.error_class:
            return []
        finally:
            cursor.close()

    def prepare_cursor(self, cursor: Any, guard: Guard) -> None:
        timeout = guard.policy.statement_timeout_ms
        if timeout is not None and hasattr(cursor, "setQueryTimeout"):
            cursor.setQueryTimeout(max(1, round(timeout / 1000)))

    def describe(self, error: BaseException) -> str:
        sqlcode = getattr(error, "sqlcode", None)
        message = str(error) or type(error).__name__
        if is_licence_refusal(message):
            message = f"{LICENCE_LIMIT} ({message})"
        return f"[SQLCODE {sqlcode}] {message}" if sqlcode is not None else message


DRIVER = IrisDriver()
