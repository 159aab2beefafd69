"""What the shell reads: lines gathered into whole statements, split where the SQL ends.

A statement ends at a ``;`` the dialect's tokenizer sees (not one inside a string, a quoted
name, a comment or a dollar quote); a line may hold several statements and a statement may
span lines. Each statement is a slice of what was typed, never re-written. Pure logic.
"""

from __future__ import annotations

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import TokenType


class StatementBuffer:
    """Lines typed so far; ``add`` returns the statements they complete."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._text = ""

    @property
    def pending(self) -> bool:
        """True while a statement has begun and not ended (the prompt shows it continues)."""
        return bool(self._text.strip())

    def add(self, line: str) -> list[str]:
        """Take one line; the statements it completes, in order (each with its ``;``)."""
        self._text = f"{self._text}\n{line}" if self._text else line
        try:
            tokens = self._dialect.tokenize(self._text)
        except TokenError:  # an open string, quoted name or comment: wait for more lines
            return []
        statements = []
        start = 0
        for token in tokens:
            if token.token_type == TokenType.SEMICOLON:
                statement = self._text[start : token.end + 1].strip()
                start = token.end + 1
                if statement != ";":
                    statements.append(statement)
        rest = self._text[start:]
        self._text = rest if _has_tokens(self._dialect, rest) else ""
        return statements

    def finish(self) -> str | None:
        """At the end of input: what is left (a last statement without ``;``), if anything."""
        rest, self._text = self._text.strip(), ""
        return rest or None

    def clear(self) -> None:
        """Forget a statement begun (Ctrl-C at the prompt)."""
        self._text = ""


def _has_tokens(dialect: Dialect, text: str) -> bool:
    """Is there more than whitespace and comments in ``text``?"""
    try:
        return bool(dialect.tokenize(text))
    except TokenError:
        return True
