"""How the shell shows results: values readable (NULL, blobs, line breaks), aligned tables,
psql-like status lines, and the same results as JSON. Pure logic: text in, text out."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence
from typing import Any

from sqlfence.cli.output import one_line

NULL = "NULL"
BLOB_BYTES = 32  # bytes of a blob shown in full; a longer one is cut and says its size
_NUMBERS = (int, float, decimal.Decimal)


def cell(value: Any) -> str:
    """A value as a table cell: NULL, blobs as ``\\x`` hex, text on one line."""
    if value is None:
        return NULL
    if isinstance(value, (bytes, bytearray, memoryview)):
        return blob(bytes(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return one_line(str(value))


def blob(data: bytes) -> str:
    """``\\x`` and the hex digits (as psql shows bytea); past BLOB_BYTES, cut with its size."""
    if len(data) <= BLOB_BYTES:
        return "\\x" + data.hex()
    return f"\\x{data[:BLOB_BYTES].hex()}... ({len(data)} bytes)"


def jsonable(value: Any) -> Any:
    """A value for a JSON row: numbers, text, booleans and null as they are; blobs as ``\\x``
    hex in full; dates, decimals and anything else as text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of an aligned result table; numbers right-aligned, as psql does."""
    cells = [[cell(value) for value in row] for row in rows]
    header = [one_line(name) for name in names]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    numeric = [
        bool(rows) and all(isinstance(r[i], _NUMBERS) or r[i] is None for r in rows)
        for i in range(len(names))
    ]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    for row in cells:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append(" | ".join(parts).rstrip())
    return lines


def row_count(count: int, truncated: bool) -> str:
    """``(3 rows)``, saying when the row limit cut the result."""
    note = ", truncated by the row limit" if truncated else ""
    return f"({count} row{'' if count == 1 else 's'}{note})"


def status(operation: str | None, rowcount: int) -> str:
    """What a statement without a result did: ``INSERT 3``, ``DELETE 0``; ``CREATE`` for DDL
    and other statements whose driver reports no row count (-1)."""
    tag = (operation or "ok").upper()
    return f"{tag} {rowcount}" if rowcount >= 0 else tag
