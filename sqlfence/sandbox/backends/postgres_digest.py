"""The content digest of a PostgreSQL database, computed a table at a time as a stream.

An in-server snapshot is a ``TEMPLATE`` clone; its manifest records this digest, and a
restore recomputes it on the copy before swapping the copy in, so a clone changed behind
the manifest is refused. Each table is one aggregate the server streams through: the count
of its rows and the sum of a keyed 64-bit hash of each row (``hash_record_extended``,
seeded with a random key made for the snapshot and kept in the manifest with the digest).
The sum does not depend on row order, so nothing is sorted, and nothing is held but the
running sum: a table of any size is digested in constant memory, in the time of one scan.

Each value is hashed in a form that is equal only for identical values: types whose
equality is identity (integers, booleans, bytea, uuid, dates and times, text compared
byte-wise as ``COLLATE "C"``) as they are, floats and numerics by their binary form
(``-0`` against ``0``, ``1.0`` against ``1.00``), every other type by its text form. What it
guarantees: a change to any row, schema or table list changes the digest, except with odds
of about 2^-64 for a change made without knowing the key (the manifest's, 0600).

(No I/O here: the backend runs ``COLUMNS`` and ``table_query`` and feeds ``Digest``.)
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

VERSION = "v2:"
# The columns of one table, in order: name, type name, whether the type is pg_catalog's own
# base type (a domain or an extension's type takes the text form).
COLUMNS = """
SELECT a.attname, t.typname, t.typtype = 'b' AND t.typnamespace = 'pg_catalog'::regnamespace
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum"""
# Equal under their hash opclass only when identical.
_AS_IS = frozenset(
    ("bool", "int2", "int4", "int8", "oid", "bytea", "uuid", "date", "time", "timestamp",
     "timestamptz", "char")
)  # fmt: skip
_BYTE_WISE_TEXT = frozenset(("text", "varchar", "name"))
_BINARY = {"float4": "float4send", "float8": "float8send", "numeric": "numeric_send"}


def new_key() -> int:
    """A fresh hash seed (63 bits, so it is a PostgreSQL bigint)."""
    return secrets.randbits(63)


def key_of(recorded: str) -> int:
    """The key a ``VERSION`` digest was made with."""
    return int(recorded[len(VERSION) :].split(":", 1)[0])


def value_form(sql: Any, column: str, type_name: str, builtin: bool) -> Any:
    """The SQL expression a column's values are hashed as (see the module's docstring)."""
    ident = sql.Identifier("t", column)
    if builtin and type_name in _AS_IS:
        return ident
    if builtin and type_name in _BYTE_WISE_TEXT:
        return sql.SQL('({} COLLATE "C")').format(ident)
    if builtin and type_name in _BINARY:
        return sql.SQL(_BINARY[type_name] + "({})").format(ident)
    return sql.SQL("ROW({})::text").format(ident)  # the type's own output, of any type


def table_query(
    sql: Any, schema: str, table: str, columns: list[tuple[str, str, bool]], key: int
) -> Any:
    """``SELECT count, sum of keyed row hashes`` over one table (0 for no rows)."""
    source = sql.Identifier(schema, table)
    if not columns:
        return sql.SQL("SELECT count(*), 0 FROM {} AS t").format(source)
    row = sql.SQL(", ").join(value_form(sql, *column) for column in columns)
    return sql.SQL(
        "SELECT count(*), coalesce(sum(hash_record_extended(ROW({}), {})), 0) FROM {} AS t"
    ).format(row, sql.Literal(key), source)


class Digest:
    """SHA-256 over the schema and each table's (name, count, sum), as ``VERSION`` text."""

    def __init__(self, key: int) -> None:
        self.key = key
        self._sha = hashlib.sha256(f"{VERSION}{key}".encode())

    def schema(self, description: str) -> None:
        """Add the schema (columns, types, defaults of every table)."""
        self._sha.update(description.encode())

    def table(self, name: str, count: int, total: int) -> None:
        """Add one table's row count and row-hash sum."""
        self._sha.update(f"\n{name}:{count}:{total}".encode())

    def hexdigest(self) -> str:
        """``v2:<key>:<sha256>``: what a manifest records and a restore compares."""
        return f"{VERSION}{self.key}:{self._sha.hexdigest()}"
