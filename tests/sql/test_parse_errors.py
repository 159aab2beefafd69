"""A statement the parser cannot read is denied with a reason in SQL terms: where, near
what, and what was expected; never the parser's internals."""

from __future__ import annotations

import pytest

import sqlfence

CASES = [
    ("SELECT FROM WHERE", "line 1, column 17 near 'WHERE': expected table name, found 'WHERE'"),
    ("SELECT * FROM t WHERE (a = 1", "near '1': expected )"),
    ("SELECT a b c FROM t", "near 'c': unexpected text here"),
    ("SELECT 1 +", "near '+': expression missing"),
    ("SELECT 'abc", 'cannot be split into words near "SELECT \'ab" (an unterminated string'),
    ("SELECT 1\nFROM t WHERE", "line 2, column"),
]


@pytest.mark.parametrize(("sql", "said"), CASES)
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_parse_errors_read_as_sql(sql: str, said: str, dialect: str) -> None:
    reason = sqlfence.Guard({}, dialect=dialect).decide(sql).explain()
    assert said in reason, reason
    for internal in ("<Token", "TokenType", "<class", "Required keyword", "Invalid expression"):
        assert internal not in reason
