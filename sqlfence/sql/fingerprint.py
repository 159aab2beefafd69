"""Statement fingerprints: the shape of a statement with literals and parameters normalised.

Allowlists are sets of fingerprints (``sqlfence policy learn`` builds them from audit logs).
"""

from __future__ import annotations

import hashlib

from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import Token, TokenType

_LITERAL_TOKENS = frozenset(
    {
        TokenType.NUMBER,
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.BIT_STRING,
        TokenType.HEX_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.RAW_STRING,
        TokenType.PLACEHOLDER,
        TokenType.PARAMETER,
    }
)


def fingerprint_tokens(tokens: tuple[Token, ...] | list[Token]) -> str:
    """A short digest of the statement's shape: literals and parameters become ``?``.

    Lists of literals collapse (``IN (1, 2, 3)`` and ``IN (4)`` share a fingerprint), and the
    case of keywords and unquoted names does not matter.
    """
    parts: list[str] = []
    for token in tokens:
        if token.token_type in _LITERAL_TOKENS:
            if len(parts) >= 2 and parts[-1] == "," and parts[-2] == "?":
                parts.pop()
                continue
            parts.append("?")
        elif token.token_type is TokenType.SEMICOLON:
            continue
        elif token.token_type is TokenType.VAR:
            parts.append(token.text.lower())  # unquoted names compare without case
        elif token.token_type is TokenType.IDENTIFIER:
            parts.append(f'"{token.text}"')
        else:
            parts.append(token.text.upper())
    return hashlib.blake2b(" ".join(parts).encode(), digest_size=8).hexdigest()


def fingerprint(sql: str, dialect: str | Dialect) -> str:
    """The fingerprint of ``sql`` (see ``fingerprint_tokens``); raises on untokenizable text."""
    return fingerprint_tokens(Dialect.get_or_raise(dialect).tokenize(sql))
