"""Opening SQLite: a file that does not exist is an error, not a new empty database (a
misspelt path must not hand the agent an empty database); creating one is explicit."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import sqlfence

WRITER = {"read_only": False, "statements": ["select", "create", "insert"]}


@pytest.mark.parametrize("policy", [None, {"read_only": True}, WRITER])
def test_a_missing_file_is_refused_and_not_created(
    tmp_path: Path, policy: dict[str, Any] | None
) -> None:
    path = tmp_path / "misspelt.db"
    with pytest.raises(sqlfence.OperationalError, match=r"no SQLite database at .*mode=rwc"):
        sqlfence.connect(f"sqlite:///{path}", policy=policy or {})
    assert not path.exists()


@pytest.mark.parametrize("how", ["url", "keyword"])
def test_creating_is_explicit(tmp_path: Path, how: str) -> None:
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}" + ("?mode=rwc" if how == "url" else "")
    extra: dict[str, Any] = {"mode": "rwc"} if how == "keyword" else {}
    with sqlfence.connect(url, policy=WRITER, **extra) as conn:
        conn.execute("CREATE TABLE t (x INT)")
    assert path.exists()


def test_an_existing_file_and_memory_open_as_before(tmp_path: Path) -> None:
    path = tmp_path / "there.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x INT)")
    with sqlfence.connect(f"sqlite:///{path}", policy={}) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with sqlfence.connect("sqlite:///:memory:", policy={}) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
