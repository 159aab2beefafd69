"""Statement facts from the whole tree (cases in data/analysis.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlglot.dialects.dialect import Dialect

from sqlfence.sql.analysis import analyze
from sqlfence.sql.fingerprint import fingerprint
from sqlfence.sql.names import Namer

CASES = yaml.safe_load((Path(__file__).parent / "data" / "analysis.yaml").read_text())
SCHEMAS = {"postgres": "public", "sqlite": "main"}


def _facts(sql: str, dialect_name: str) -> Any:
    dialect = Dialect.get_or_raise(dialect_name)
    return analyze(sql, dialect, Namer(dialect, SCHEMAS[dialect_name])).facts


@pytest.mark.parametrize("case", CASES, ids=[f"{c['dialect']}:{c['sql'][:50]}" for c in CASES])
def test_facts(case: dict[str, Any]) -> None:
    """Each listed fact of the case matches what analysis collects."""
    facts = _facts(case["sql"], case["dialect"])
    for key in ("tables", "written", "functions", "star_tables"):
        if key in case:
            assert sorted(getattr(facts, key)) == sorted(case[key]), key
    for key in ("operation", "writes", "into", "locks", "is_ddl", "statement_count", "summary"):
        if key in case:
            assert getattr(facts, key) == case[key], key
    if "unparsed" in case:
        assert bool(facts.unparsed) is case["unparsed"]
    if "columns" in case:
        expected = {(owner, name) for owner, name in case["columns"]}
        assert expected <= set(facts.columns)


def test_fingerprint_ignores_literals_and_case() -> None:
    """Statements differing only in literals, list lengths and keyword case share a shape."""
    a = fingerprint("SELECT * FROM t WHERE id = 1 AND x IN (1, 2, 3)", "sqlite")
    b = fingerprint("select * from t where id = 42 and x in (7)", "sqlite")
    c = fingerprint("SELECT * FROM t WHERE id = ?", "sqlite")
    d = fingerprint("SELECT * FROM u WHERE id = 1", "sqlite")
    assert a == b
    assert c != d
    assert a != d


def test_analysis_never_raises_on_garbage() -> None:
    """Unparseable and untokenizable text becomes an 'unparsed' fact, not an exception."""
    for sql in ["'unterminated", "SELECT (((", "\x00\x01", "$$", "SELECT * FROM t WHERE"]:
        assert _facts(sql, "postgres").unparsed
