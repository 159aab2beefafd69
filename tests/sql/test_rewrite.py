"""Row-limit injection (cases in data/rewrite.yaml) and its guarantees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot.dialects.dialect import Dialect

from sqlfence.sql.analysis import analyze
from sqlfence.sql.names import Namer
from sqlfence.sql.rewrite import limit_rows, literal_count

CASES = yaml.safe_load((Path(__file__).parent / "data" / "rewrite.yaml").read_text())


def _rewrite(sql: str, dialect_name: str, max_rows: int = 100) -> str | None:
    dialect = Dialect.get_or_raise(dialect_name)
    return limit_rows(analyze(sql, dialect, Namer(dialect, None)), max_rows)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['dialect']}:{c['sql']}" for c in CASES])
def test_rewrite(case: dict[str, Any]) -> None:
    """The rewritten text is exactly the expected one (None: the caller's text is kept)."""
    assert _rewrite(case["sql"], case["dialect"]) == case["expected"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['dialect']}:{c['sql']}" for c in CASES])
def test_rewrite_is_stable(case: dict[str, Any]) -> None:
    """A rewritten statement needs no further rewrite: its limit is intact."""
    rewritten = _rewrite(case["sql"], case["dialect"])
    if rewritten is not None:
        assert _rewrite(rewritten, case["dialect"]) is None


def test_never_loosens_a_smaller_limit() -> None:
    """Every existing limit at or below max_rows is left alone."""
    for n in (0, 1, 7, 99, 100):
        assert _rewrite(f"SELECT * FROM t LIMIT {n}", "postgres") is None


def test_literal_count() -> None:
    """Plain, negative and parenthesised numbers are read; anything else is not."""
    parse = sqlglot.parse_one
    assert literal_count(parse("SELECT 1 LIMIT 5").args["limit"].expression) == 5
    assert literal_count(parse("SELECT 1 LIMIT -1", read="sqlite").args["limit"].expression) == -1
    assert literal_count(parse("SELECT 1 LIMIT (5)").args["limit"].expression) == 5
    assert literal_count(parse("SELECT 1 LIMIT ?").args["limit"].expression) is None
