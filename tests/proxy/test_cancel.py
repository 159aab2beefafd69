"""``GuardedConnection.cancel()`` (sqlfence/proxy/connection.py and each driver): another
thread stops the running statement, which raises OperationalError saying it was cancelled
(not that a timeout passed); the connection goes on working."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sqlfence

# A statement that runs until it is stopped, on either database.
ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def _cancel_while_running(conn: sqlfence.GuardedConnection, sql: str) -> BaseException:
    """Run ``sql`` on a thread, cancel it from here until it stops; what it raised."""
    raised: dict[str, BaseException] = {}

    def run() -> None:
        try:
            conn.execute(sql).fetchall()
        except BaseException as error:  # handed to the test
            raised["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30  # a hang detector, not a timing assertion
    while worker.is_alive() and time.monotonic() < deadline:
        conn.cancel()
        worker.join(0.05)
    assert not worker.is_alive(), "cancel() did not stop the statement"
    return raised["error"]


def _sqlite(tmp_path: Path, **policy: Any) -> sqlfence.GuardedConnection:
    return sqlfence.connect(
        f"sqlite:///{tmp_path / 'c.db'}?mode=rwc", policy={"read_only": True, **policy}
    )


def _postgres(pg_url: str, **policy: Any) -> sqlfence.GuardedConnection:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sqlfence.PrivilegeWarning)
        return sqlfence.connect(pg_url, policy={"read_only": True, **policy})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Any]:
    if request.param == "sqlite":
        return lambda **policy: _sqlite(tmp_path, **policy)
    pg_url = request.getfixturevalue("pg_url")
    return lambda **policy: _postgres(pg_url, **policy)


def test_cancel_stops_the_running_statement_and_says_so(connect: Callable[..., Any]) -> None:
    conn = connect()
    error = _cancel_while_running(conn, ENDLESS)
    assert isinstance(error, sqlfence.OperationalError), error
    assert "statement cancelled: cancel() was called while it ran" in str(error)
    assert "timeout" not in str(error)
    conn.rollback()  # PostgreSQL: a cancelled statement aborts its transaction
    assert conn.execute("SELECT 1").fetchall() == [(1,)]  # the connection goes on
    conn.close()


def test_a_cancel_with_nothing_running_leaves_the_next_statement_alone(
    connect: Callable[..., Any],
) -> None:
    """cancel() between statements does nothing; a later timeout still says timeout."""
    conn = connect(statement_timeout_ms=200)
    conn.cancel()
    assert conn.execute("SELECT 2").fetchall() == [(2,)]
    conn.cancel()
    with pytest.raises(sqlfence.OperationalError) as raised:
        conn.execute(ENDLESS).fetchall()
    assert "cancelled: cancel()" not in str(raised.value)
    assert "timeout" in str(raised.value)
    conn.close()


def test_cancel_on_a_closed_connection_does_nothing(tmp_path: Path) -> None:
    conn = _sqlite(tmp_path)
    conn.close()
    conn.cancel()
