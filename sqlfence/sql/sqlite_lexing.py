"""Where SQLite's tokenizer and sqlglot's read a text differently, and how to parse ?NNN.

SQLite takes every character at or above U+0080 as part of a name, and gives its named
parameters Tcl-style extents (``$a(...)``, ``:a::b``, ``@a(...)``); sqlglot does neither, and
cannot parse ``?NNN``. Pure functions over the text and sqlglot's tokens.
"""

from __future__ import annotations

import re

from sqlglot.tokenizer_core import Token, TokenType

_NUMBERED = re.compile(r"\?\d+")
_SIGILS = frozenset({TokenType.COLON, TokenType.PARAMETER})  # SQLite's :name and @name
_SUFFIXES = frozenset({TokenType.L_PAREN, TokenType.DCOLON})
_QUOTED_TOKENS = frozenset(
    {TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING, TokenType.HEX_STRING,
     TokenType.BIT_STRING, TokenType.BYTE_STRING, TokenType.RAW_STRING}
)  # fmt: skip


def parseable(sql: str) -> str:
    """``sql`` with SQLite's ``?NNN`` written as a named parameter of the same length
    (``:ppp``), which sqlglot parses; every token keeps its place in the caller's text."""
    if "?" not in sql:
        return sql
    return _NUMBERED.sub(lambda match: ":" + "p" * (len(match.group(0)) - 1), sql)


def misreading(sql: str, tokens: tuple[Token, ...]) -> str | None:
    """Why SQLite would read the text otherwise than sqlglot's tokens, or None."""
    if not sql.isascii():
        odd = _odd_space(sql, tokens)
        if odd is not None:
            return (
                f"U+{ord(odd):04X} between words: SQLite reads every non-ASCII character as "
                "part of a name, the fence as a space"
            )
    if "$" in sql or ":" in sql or "@" in sql:
        variable = _sqlite_variable(tokens)
        if variable is not None:
            return (
                f"SQLite reads {variable!r} as the start of one Tcl-style parameter, which "
                "the fence reads otherwise: use ? or a plain :name"
            )
    return None


def _odd_space(sql: str, tokens: tuple[Token, ...]) -> str | None:
    """A non-ASCII character sqlglot skipped as whitespace between tokens (outside comments).

    SQLite's tokenizer takes every character at or above U+0080 as part of an identifier
    (or of a parameter name), so text sqlglot splits there is one word to SQLite.
    """
    previous = -1
    for token in (*tokens, None):
        start = token.start if token is not None else len(sql)
        gap = sql[previous + 1 : start]
        if gap and not gap.isascii() and "--" not in gap and "/*" not in gap:
            for character in gap:
                if not character.isascii():
                    return character
        if token is not None:
            previous = token.end
    return None


def _sqlite_variable(tokens: tuple[Token, ...]) -> str | None:
    """A parameter whose extent SQLite and sqlglot read differently, or None.

    SQLite's named parameters take Tcl-style suffixes: ``$a``, ``:a``, ``@a`` followed right
    away by ``::b`` or ``(...)`` are one parameter to SQLite, however much text the
    parentheses hold, while sqlglot reads a cast or a call. ``$a`` in any form is refused
    (sqlglot reads it as a name).
    """
    for index, token in enumerate(tokens):
        if token.text.startswith("$") and token.token_type not in _QUOTED_TOKENS:
            return token.text
        if token.token_type not in _SIGILS or index + 2 >= len(tokens):
            continue
        name, after = tokens[index + 1], tokens[index + 2]
        if (
            name.start == token.end + 1
            and after.start == name.end + 1
            and name.token_type not in _QUOTED_TOKENS
            and after.token_type in _SUFFIXES
        ):
            return f"{token.text}{name.text}{after.text}"
    return None
