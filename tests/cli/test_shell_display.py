"""How the shell shows values and results (``shell_display``): plain values in, text out."""

from __future__ import annotations

import decimal

import pytest

from sqlfence.cli import shell_display as display


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "NULL"),
        (b"\x00\xff", "\\x00ff"),
        (bytearray(b"ab"), "\\x6162"),
        (memoryview(b"\x01"), "\\x01"),
        (bytes(range(40)), "\\x" + bytes(range(32)).hex() + "... (40 bytes)"),
        ("two\nlines", "two\\nlines"),
        (True, "true"),
        (decimal.Decimal("1.50"), "1.50"),
        ("NULL", "NULL"),
    ],
)
def test_cells(value: object, shown: str) -> None:
    """NULL is NULL, blobs are hex (long ones cut with their size), text stays on one line."""
    assert display.cell(value) == shown


def test_table_aligns_numbers_right() -> None:
    """Columns are as wide as their widest value; numeric columns are right-aligned."""
    lines = display.table(["id", "name"], [(1, "a"), (10, None)])
    assert lines == ["id | name", "---+-----", " 1 | a", "10 | NULL"]


@pytest.mark.parametrize(
    ("operation", "rowcount", "shown"),
    [("insert", 3, "INSERT 3"), ("delete", 0, "DELETE 0"), ("create", -1, "CREATE"),
     (None, -1, "OK")],
)  # fmt: skip
def test_status(operation: str | None, rowcount: int, shown: str) -> None:
    """DML says how many rows; DDL (row count -1) says what it was, never "-1 rows"."""
    assert display.status(operation, rowcount) == shown


def test_row_count() -> None:
    """One row, several rows, and a result the row limit cut."""
    assert display.row_count(1, False) == "(1 row)"
    assert display.row_count(5, True) == "(5 rows, truncated by the row limit)"


def test_jsonable() -> None:
    """JSON rows keep numbers and null, and carry blobs in full as hex."""
    assert [display.jsonable(v) for v in (None, 1, 1.5, b"\x01" * 40)] == [
        None, 1, 1.5, "\\x" + "01" * 40,
    ]  # fmt: skip
