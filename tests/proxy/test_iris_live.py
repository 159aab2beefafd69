"""The guarded driver against a live IRIS, when ``SQLFENCE_IRIS_URL`` points at one.

IRIS cannot run on the CI machines, so this module is skipped without the variable (the one
exception to "missing components fail in CI"). Run it with the IRIS Community container:
``SQLFENCE_IRIS_URL=iris://_SYSTEM:SYS@localhost:1972/USER pytest tests/proxy/test_iris_live.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

import sqlfence

IRIS_URL = os.environ.get("SQLFENCE_IRIS_URL")
pytestmark = [
    pytest.mark.iris,
    pytest.mark.skipif(not IRIS_URL, reason="SQLFENCE_IRIS_URL is not set"),
]


@pytest.fixture
def table() -> Iterator[str]:
    """A scratch table with ten rows, dropped afterwards."""
    assert IRIS_URL is not None
    name = f"SQLUser.Fence{uuid.uuid4().hex[:8]}"
    admin = sqlfence.connect(IRIS_URL, policy=sqlfence.Policy.unrestricted())
    admin.execute(f"CREATE TABLE {name} (ID INTEGER PRIMARY KEY, Name VARCHAR(20))")
    cursor = admin.cursor()
    cursor.executemany(
        f"INSERT INTO {name} (ID, Name) VALUES (?, ?)", [(i, f"n{i}") for i in range(10)]
    )
    admin.commit()
    yield name
    admin.execute(f"DROP TABLE {name}")
    admin.commit()
    admin.close()


def test_select_with_injected_top(table: str) -> None:
    """A scan gets TOP n injected and returns at most max_rows rows."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"max_rows": 3}) as conn:
        cursor = conn.execute(f"SELECT ID FROM {table} ORDER BY ID")
        assert [row[0] for row in cursor.fetchall()] == [0, 1, 2]
        assert cursor.decision is not None
        assert "TOP 3" in cursor.decision.sql


def test_trailing_semicolon_is_stripped(table: str) -> None:
    """IRIS rejects a trailing ';' (SQLCODE -25); the fence removes it."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"max_rows": 100}) as conn:
        assert len(conn.execute(f"SELECT ID FROM {table};").fetchall()) == 10


def test_denial_and_error_mapping(table: str) -> None:
    """Denials raise PolicyViolation; IRIS errors become sqlfence classes with SQLCODE."""
    assert IRIS_URL is not None
    with sqlfence.connect(IRIS_URL, policy={"denied_tables": [table]}) as conn:
        with pytest.raises(sqlfence.PolicyViolation):
            conn.execute(f"SELECT * FROM {table}")
        with pytest.raises(sqlfence.DatabaseError):
            conn.execute("SELECT * FROM SQLUser.NoSuchTableAnywhere")
