"""A row filter's policy key: ``table``, ``schema.table``, ``schema.*`` or ``*.column``."""

from __future__ import annotations


class FilterError(ValueError):
    """A filter expression that is not a valid row filter (the message says why)."""


def check_key(key: object) -> None:
    """Raise FilterError unless ``key`` is ``table``, ``schema.table``, ``schema.*`` or
    ``*.column``."""
    if not isinstance(key, str) or not key.strip():
        raise FilterError("a row filter's key must name a table")
    parts = key.split(".")
    if len(parts) > 3 or any(not part.strip() for part in parts):
        raise FilterError(f"{key!r} is not table, schema.table, schema.* or *.column")
    if parts[-1] == "*" and len(parts) == 1:
        raise FilterError("'*' alone would filter every table: name the tables, or use *.column")


def column_key(key: str) -> str | None:
    """The column of a ``*.column`` key (every table that has the column), else None."""
    schema, dot, column = key.partition(".")
    return column.strip().strip('"').lower() if dot and schema == "*" and column != "*" else None
