"""Parser errors in SQL terms: where, near what, and what was expected (no parser internals)."""

from __future__ import annotations

import re

from sqlglot.errors import SqlglotError


def describe(error: Exception) -> str:
    """A parser error as a person reads it: where, near what, and what was expected, in SQL
    terms (no parser internals)."""
    details = getattr(error, "errors", None)
    if isinstance(error, SqlglotError) and details:
        first = details[0]
        where = f"syntax error at line {first.get('line')}, column {first.get('col')}"
        near = str(first.get("highlight") or "").strip()
        description = _in_sql_terms(str(first.get("description", "")))
        return f"{where}{f' near {near!r}' if near else ''}: {description}"
    text = str(error).splitlines()[0] if str(error) else ""
    tokenizing = re.fullmatch(r"Error tokenizing '(.*)'", text, re.DOTALL)
    if tokenizing:
        return (
            f"the text cannot be split into words near {tokenizing.group(1)[-40:]!r} "
            "(an unterminated string, quoted name or comment?)"
        )
    if isinstance(error, SqlglotError):
        return text or "syntax error"
    return f"{type(error).__name__}: {text}"


_TOKEN = re.compile(r"<Token token_type: TokenType\.\w+, text: (.*?), line: \d+, col: .*?>")
_PHRASES = (
    (re.compile(r" for <class '[^']+'>"), ""),
    (re.compile(r"^Invalid expression / Unexpected token$"), "unexpected text here"),
    (re.compile(r"^Required keyword: '(\w+)' missing$"), r"\1 missing"),
    (re.compile(r"^Expecting (.+)$"), r"expected \1"),
    (re.compile(r"^Expected (.+?) but got (.+)$"), r"expected \1, found \2"),
)


def _in_sql_terms(description: str) -> str:
    """sqlglot's description without its token reprs and class names."""
    text = _TOKEN.sub(lambda match: repr(match.group(1)), description)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text or "syntax error"
