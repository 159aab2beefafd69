"""What the fence reads of a SQLite database's schema, in every attached database: views'
and triggers' names and text, WITHOUT ROWID tables, keys, virtual tables' shadow and
content tables. Reads only (PRAGMA table-valued functions and sqlite_master).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any


def tables_and_rowids(raw: Any) -> list[tuple[str, str, bool]]:
    """(schema, table, whether it is WITHOUT ROWID) of every attached database."""
    try:
        listed = raw.execute("SELECT schema, name, wr FROM pragma_table_list WHERE type = 'table'")
        return [(schema, name, bool(wr)) for schema, name, wr in listed.fetchall()]
    except sqlite3.Error:  # before SQLite 3.37: the table's own CREATE text says so
        found = []
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            for name, sql in raw.execute(f"SELECT name, sql FROM {master} WHERE type = 'table'"):
                found.append((schema, name, bool(_WITHOUT_ROWID.search(sql or ""))))
        return found


_WITHOUT_ROWID = re.compile(r"\)[\s,A-Z]*WITHOUT\s+ROWID[\s,A-Z]*$", re.IGNORECASE)


def code_names(raw: Any) -> set[str]:
    """The names of every view and trigger of every attached database (lower case)."""
    found: set[str] = set()
    for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
        master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
        listed = raw.execute(f"SELECT name FROM {master} WHERE type IN ('view', 'trigger')")
        found.update(name.lower() for (name,) in listed.fetchall())
    return found


def view_definitions(raw: Any) -> list[tuple[str, str, str]]:
    """(schema, view, its CREATE VIEW text) of every attached database."""
    found = []
    for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
        master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
        for name, sql in raw.execute(f"SELECT name, sql FROM {master} WHERE type = 'view'"):
            if sql:
                found.append((schema, name, sql))
    return found


def primary_key(raw: Any, schema: str, table: str) -> list[str]:
    rows = raw.execute("SELECT name FROM pragma_table_info(?, ?) WHERE pk > 0", (table, schema))
    return [row[0] for row in rows.fetchall()]


_CONTENT = re.compile(r"""\bcontent\s*=\s*(?:'([^']+)'|"([^"]+)"|([A-Za-z_][\w$]*))""", re.I)


def content_tables(raw: Any) -> dict[str, str]:
    """External-content FTS tables (``USING fts5(..., content=orders)``) -> their content
    table, in every attached database: the index, readable in the shadow tables, holds the
    content table's text."""
    found: dict[str, str] = {}
    for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
        master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
        rows = raw.execute(
            f"SELECT name, sql FROM {master} WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'"
        ).fetchall()
        for name, sql in rows:
            match = _CONTENT.search(sql or "")
            source = next((g for g in match.groups() if g), "") if match else ""
            if source:
                found[f"{schema}.{name}".lower()] = f"{schema}.{source}".lower()
    return found


def shadow_tables(raw: Any) -> dict[str, set[str]]:
    """Each virtual table's shadow tables (FTS, R-tree: ``docs_content``, ``geo_node``...),
    which hold its rows and can be read directly: what reading it reads besides it. From
    ``PRAGMA table_list`` (SQLite 3.37 and later; none known before)."""
    try:
        listed = raw.execute("SELECT schema, name, type FROM pragma_table_list").fetchall()
    except sqlite3.Error:
        return {}
    virtual = [(schema, name) for schema, name, kind in listed if kind == "virtual"]
    found: dict[str, set[str]] = {}
    for schema, name, kind in listed:
        if kind != "shadow":
            continue
        owners = [v for s, v in virtual if s == schema and name.lower().startswith(f"{v.lower()}_")]
        if owners:
            owner = max(owners, key=len)
            found.setdefault(f"{schema}.{owner}".lower(), set()).add(f"{schema}.{name}".lower())
    return found
