"""The token budget: what a text would cost to judge, counted before parsing, and refused
when over ``max_statement_tokens``."""

from __future__ import annotations

import pytest

from sqlfence.policies.engine import Guard
from sqlfence.sql.size import token_count

RAISED = {"allowed_tables": ["t"], "max_statement_length": 50_000_000}


@pytest.mark.parametrize(
    ("sql", "tokens"),
    [
        ("SELECT 1", 2),
        ("SELECT a, b FROM t WHERE x = 'it''s, a string' AND y = \"odd\"\"name\"", 14),
        ("SELECT * FROM t WHERE id IN (1,2,3)", 14),
        ("", 0),
        ("/* a comment */ SELECT 1", 8),
    ],
)
def test_tokens_are_counted(sql: str, tokens: int) -> None:
    assert token_count(sql, 1000) == tokens


def test_counting_stops_past_the_budget() -> None:
    """A 10 MB text is counted only up to the budget."""
    text = ",".join(["1"] * 5_000_000)
    assert token_count(text, 100) == 101


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_huge_in_list_is_refused_unparsed(dialect: str) -> None:
    """With the length limit raised, a 10 MB IN-list is denied by the token budget."""
    sql = "SELECT * FROM t WHERE id IN (" + ",".join(str(i) for i in range(1_400_000)) + ")"
    decision = Guard(RAISED, dialect=dialect).decide(sql)
    assert not decision.allowed
    assert decision.rule == "max_statement_tokens"
    assert "more than 50000 tokens" in decision.explain()


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_under_the_budget_is_judged_as_usual(dialect: str) -> None:
    """A 40,000-token statement is allowed; one over a lowered budget is denied."""
    sql = "SELECT * FROM t WHERE id IN (" + ",".join(str(i) for i in range(19_990)) + ")"
    assert Guard(RAISED, dialect=dialect).decide(sql).allowed
    lowered = Guard({**RAISED, "max_statement_tokens": 1_000}, dialect=dialect).decide(sql)
    assert not lowered.allowed
    assert lowered.rule == "max_statement_tokens"


def test_a_long_string_costs_as_its_length() -> None:
    """A 200 kB literal is judged as usual; a 60 MB one is over the budget (judging it would
    take seconds and gigabytes)."""
    sql = "SELECT * FROM t WHERE name = '" + "x" * 200_000 + "'"
    assert Guard(RAISED).decide(sql).allowed
    huge = Guard({**RAISED, "max_statement_length": 100_000_000}).decide(
        "SELECT '" + "a" * 60_000_000 + "'"
    )
    assert not huge.allowed
    assert huge.rule == "max_statement_tokens"
