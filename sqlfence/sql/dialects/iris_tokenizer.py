"""Tokenizer for InterSystems IRIS SQL.

IRIS names may start with `%` (`%ID`, `%EXACT`, `%Library.String`, `%STARTSWITH`) and may
contain `#`, `$` and `@` after the first character (`a#b` is one identifier; modulo is
`a # b`). sqlglot's compiled scanner reads `%` as an operator, so after scanning, a `%`
directly followed by a word is joined with it into one token. That pass runs only when the
statement contains a `%`, and touches each token once, without regular expressions.
"""

from __future__ import annotations

from sqlglot import tokens
from sqlglot.tokens import Token, TokenType

# Token types that no IRIS keyword produces, reused for IRIS's `%` operators.
PERCENT_PREDICATE = TokenType.SOUNDS_LIKE
"""`%MATCHES`, `%PATTERN`, `%INLIST`, `%INSET`, `%FIND` (binary predicates)."""
NOINDEX = TokenType.MEMBER_OF
"""`%NOINDEX`, a prefix on one condition."""

PERCENT_PREDICATES = frozenset({"%MATCHES", "%PATTERN", "%INLIST", "%INSET", "%FIND"})

_PERCENT_TOKEN_TYPES: dict[str, TokenType] = {
    "%STARTSWITH": TokenType.CARET_AT,  # sqlglot parses CARET_AT into exp.StartsWith
    "%NOINDEX": NOINDEX,
    **dict.fromkeys(PERCENT_PREDICATES, PERCENT_PREDICATE),
}

# Operators of other dialects that would misread IRIS text (`a#>b` is not JSON in IRIS),
# template delimiters, and the `/*+` hint comment, which IRIS treats as a plain comment.
_FOREIGN_KEYWORDS = frozenset(
    {
        "{%", "{%+", "{%-", "%}", "+%}", "-%}", "{{+", "{{-", "+}}", "-}}",
        "/*+", "::", "?::", "??", "->>", "#>", "#>>", "<->", "<<->>", "<=>",
        "~~~", "~~", "~~*", "~*", "-|-", "&<", "&>", "|>", "=>", ":=",
    }
)  # fmt: skip


class IRISTokenizer(tokens.Tokenizer):
    """Splits IRIS SQL into sqlglot tokens; see the module docstring for `%` names."""

    IDENTIFIERS = ['"']
    QUOTES = ["'"]
    STRING_ESCAPES = ["'"]
    VAR_SINGLE_TOKENS = {"#", "$", "@"}

    KEYWORDS = {
        **{k: v for k, v in tokens.Tokenizer.KEYWORDS.items() if k not in _FOREIGN_KEYWORDS},
        "TOP": TokenType.TOP,
        # CALL gets the EXECUTE token type, which no IRIS statement uses otherwise; EXECUTE
        # and EXEC stay opaque commands.
        "CALL": TokenType.EXECUTE,
        "EXECUTE": TokenType.COMMAND,
        "EXEC": TokenType.COMMAND,
        "LOAD": TokenType.COMMAND,
    }

    COMMANDS = tokens.Tokenizer.COMMANDS - {TokenType.EXECUTE}

    def tokenize(self, sql: str) -> list[Token]:
        """Return the tokens of `sql`, with `%name` joined into one token."""
        scanned = super().tokenize(sql)
        return _join_percent_names(sql, scanned) if "%" in sql else scanned


def _join_percent_names(sql: str, scanned: list[Token]) -> list[Token]:
    joined: list[Token] = []
    count = len(scanned)
    i = 0
    while i < count:
        token = scanned[i]
        if token.token_type == TokenType.MOD and i + 1 < count:
            word = scanned[i + 1]
            first = sql[word.start : word.start + 1]
            if (
                word.start == token.end + 1
                and word.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
                and (first.isalpha() or first == "_")
            ):
                text = "%" + sql[word.start : word.end + 1]
                joined.append(
                    Token(
                        _PERCENT_TOKEN_TYPES.get(text.upper(), TokenType.VAR),
                        text,
                        line=word.line,
                        col=word.col,
                        start=token.start,
                        end=word.end,
                        comments=[*token.comments, *word.comments],
                    )
                )
                i += 2
                continue
        joined.append(token)
        i += 1
    return joined
