"""The caller's positional parameters through a rewrite: named apart, then made positional.

A rewrite moves text around; a statement with several positional parameters (``?``, ``%s``)
could come out binding them in another order. Each is first named with an unguessable marker,
and the rewritten text must hold the markers in the caller's order (``sql/row_filters.py``).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from sqlfence.sql.analysis import Analysis
from sqlfence.sql.with_check import Refused


def positional(analysis: Analysis) -> list[tuple[int, int]]:
    """The text spans of the caller's positional parameters, in order."""
    tokens = analysis.tokens
    spans = []
    for index, token in enumerate(tokens):
        if token.token_type is TokenType.PLACEHOLDER and token.text == "?":
            spans.append((token.start, token.end))
        elif (
            token.token_type is TokenType.MOD
            and index + 1 < len(tokens)
            and tokens[index + 1].text in ("s", "b", "t")
            and tokens[index + 1].start == token.end + 1
        ):
            spans.append((token.start, tokens[index + 1].end))
    return spans


def marked(sql: str, spans: list[tuple[int, int]], nonce: str, dialect: str) -> str:
    """``sql`` with each positional parameter named ``sqlfence<nonce>x<i>``."""
    parts, last = [], 0
    for index, (start, end) in enumerate(spans):
        name = f"sqlfence{nonce}x{index}"
        mark = f"%({name})s" if dialect == "postgres" else f":{name}"
        parts += [sql[last:start], mark]
        last = end + 1
    parts.append(sql[last:])
    return "".join(parts)


def unmark(tree: exp.Expr, nonce: str, count: int, dialect: Dialect) -> None:
    """Check the markers come out in the caller's order, then make them positional again."""
    found = [n for n in tree.find_all(exp.Placeholder) if f"sqlfence{nonce}x" in n.name]
    if len(found) != count:
        raise Refused("the statement's parameters could not be kept apart in the rewrite")
    text = tree.sql(dialect=dialect)
    at = -1
    for index in range(count):
        position = text.find(f"sqlfence{nonce}x{index}", at + 1)
        if position < 0:
            raise Refused("rewriting the statement would bind its parameters in another order")
        at = position
    for node in found:
        node.set("this", None)
