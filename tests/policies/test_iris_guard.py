"""The fence on IRIS SQL: implicit joins, TOP limits, terminators, ObjectScript escapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlfence import Guard

DATA = yaml.safe_load((Path(__file__).parent / "iris" / "decisions.yaml").read_text())


def _guard(case: dict[str, Any]) -> Guard:
    catalog = DATA["catalog"] if case.get("catalog") else None
    return Guard(DATA["policies"][case["policy"]], dialect="iris", catalog=catalog)


@pytest.mark.parametrize(
    "case", DATA["cases"], ids=[f"{c['policy']}:{c['sql'][:60]}" for c in DATA["cases"]]
)
def test_iris_decision(case: dict[str, Any]) -> None:
    """Each IRIS statement gets the expected verdict, rule and final text."""
    decision = _guard(case).decide(case["sql"])
    assert decision.allowed is case["allowed"], decision.explain()
    if "rule" in case:
        assert case["rule"] in {reason.rule for reason in decision.reasons}
    if "final" in case:
        expected = case["final"] if case["final"] is not None else case["sql"]
        assert decision.sql == expected


def test_rewrites_never_mix_top_and_limit() -> None:
    """No rewritten IRIS statement contains both TOP and LIMIT (SQLCODE -386)."""
    guard = Guard({"max_rows": 10}, dialect="iris")
    for sql in [
        "SELECT Name FROM Sample.Person LIMIT 500",
        "SELECT TOP 500 Name FROM Sample.Person",
        "SELECT Name FROM Sample.Person ORDER BY Name",
        "SELECT Name FROM Sample.Person UNION SELECT Name FROM Sample.Employee",
        "SELECT Name FROM (SELECT TOP 50 Name FROM Sample.Person ORDER BY Name) AS s",
    ]:
        final = guard.decide(sql).sql.upper()
        assert not (" TOP " in final and " LIMIT " in final), final


def test_iris_rewrites_are_stable() -> None:
    """A rewritten IRIS statement needs no second rewrite: its limit is intact."""
    guard = Guard({"max_rows": 10}, dialect="iris")
    for sql in ["SELECT Name FROM Sample.Person", "SELECT TOP 500 Name FROM Sample.Person"]:
        once = guard.decide(sql)
        assert once.rewritten
        again = Guard({"max_rows": 10}, dialect="iris").decide(once.sql)  # nothing cached
        assert again.allowed
        assert not again.rewritten
