"""``on_row_limit``: a result with more rows than max_rows is cut (``truncated``) or, with
``error``, raises RowLimitExceeded, so that a caller who cannot see a cut never gets one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import sqlfence

FETCHES = ["fetchone", "fetchmany", "fetchall", "iterate"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    path = tmp_path / "limit.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE n (i INTEGER)")
        db.executemany("INSERT INTO n VALUES (?)", [(i,) for i in range(5)])
    return f"sqlite:///{path}"


def _read(cursor: sqlfence.GuardedCursor, how: str) -> list[object]:
    if how == "fetchone":
        rows = []
        while (row := cursor.fetchone()) is not None:
            rows.append(row)
        return rows
    if how == "fetchmany":
        return cursor.fetchmany(10)
    if how == "iterate":
        return list(cursor)
    return cursor.fetchall()


@pytest.mark.parametrize("how", FETCHES)
def test_error_raises_past_the_cap(url: str, how: str) -> None:
    with sqlfence.connect(url, policy={"max_rows": 3, "on_row_limit": "error"}) as conn:
        cursor = conn.execute("SELECT i FROM n ORDER BY i")
        with pytest.raises(sqlfence.RowLimitExceeded, match="more than 3 rows"):
            _read(cursor, how)


@pytest.mark.parametrize("how", FETCHES)
def test_error_lets_a_result_at_the_cap_through(url: str, how: str) -> None:
    with sqlfence.connect(url, policy={"max_rows": 5, "on_row_limit": "error"}) as conn:
        cursor = conn.execute("SELECT i FROM n ORDER BY i")
        assert len(_read(cursor, how)) == 5
        assert not cursor.truncated


@pytest.mark.parametrize("how", FETCHES)
def test_truncate_cuts_and_says_so(url: str, how: str) -> None:
    with sqlfence.connect(url, policy={"max_rows": 3}) as conn:
        cursor = conn.execute("SELECT i FROM n ORDER BY i")
        assert len(_read(cursor, how)) == 3
        assert cursor.truncated


def test_error_asks_the_database_for_one_row_more() -> None:
    decision = sqlfence.Guard({"max_rows": 3, "on_row_limit": "error"}).decide("SELECT i FROM n")
    assert decision.sql == "SELECT i FROM n LIMIT 4"
    assert decision.max_rows == 3
