"""Tokenizer for InterSystems IRIS SQL.

sqlglot's compiled parser cannot be subclassed when `sqlglotc` is installed (mypyc refuses
interpreted subclasses of its native classes), so IRIS syntax is handled around it: the
scanner below reads IRIS's characters (`%` names, `#`, `->`), `iris_rewrite` turns IRIS-only
token sequences into ones the stock parser reads, and `iris_parsing` repairs the few tree
shapes that need it afterwards.
"""

from __future__ import annotations

from sqlglot import tokens
from sqlglot.tokenizer_core import Token, TokenType

from sqlfence.sql.dialects.iris_rewrite import Fix, rewrite

# Operators of other dialects that would misread IRIS text (`a#>b` is not JSON in IRIS),
# template delimiters, and the `/*+` hint comment, which IRIS treats as a plain comment.
_FOREIGN_KEYWORDS = frozenset(
    {
        "{%", "{%+", "{%-", "%}", "+%}", "-%}", "{{+", "{{-", "+}}", "-}}",
        "/*+", "::", "?::", "??", "->>", "#>", "#>>", "<->", "<<->>", "<=>",
        "~~~", "~~", "~~*", "~*", "-|-", "&<", "&>", "|>", "=>", ":=",
    }
)  # fmt: skip

# Statements sqlglot has no node for: the scanner turns each into one exp.Command.
COMMAND_KEYWORDS = (
    "CREATE DATABASE", "DROP DATABASE", "CREATE USER", "ALTER USER", "DROP USER",
    "CREATE ROLE", "DROP ROLE", "SET OPTION", "LOAD", "BUILD INDEX", "TUNE TABLE",
    "FREEZE PLANS", "UNFREEZE PLANS", "PURGE", "TRAIN MODEL", "VALIDATE MODEL",
    "CANCEL QUERY", "LOCK", "UNLOCK", "SAVEPOINT", "OPEN", "CLOSE", "EXEC", "EXECUTE",
    "CREATE FOREIGN", "ALTER FOREIGN", "DROP FOREIGN", "CREATE ML", "ALTER ML", "DROP ML",
    "SET ML", "CREATE MODEL", "ALTER MODEL", "DROP MODEL", "CREATE AGGREGATE",
    "DROP AGGREGATE", "CREATE METHOD", "CREATE QUERY", "DROP METHOD", "DROP QUERY",
    # routines and triggers whose bodies are ObjectScript, Python or SQL blocks
    "CREATE PROCEDURE", "CREATE FUNCTION", "CREATE TRIGGER", "CREATE OR REPLACE PROCEDURE",
    "CREATE OR REPLACE FUNCTION", "CREATE OR REPLACE TRIGGER", "CREATE OR REPLACE METHOD",
    "CREATE OR REPLACE QUERY",
)  # fmt: skip


class IRISTokenizer(tokens.Tokenizer):
    """Splits IRIS SQL into tokens the stock sqlglot parser can read."""

    IDENTIFIERS = ['"']
    QUOTES = ["'"]
    STRING_ESCAPES = ["'"]
    # Identifier characters after the first: IRIS reads `a#b` and `x$y` as single names.
    VAR_SINGLE_TOKENS = {"#", "$", "@"}

    SINGLE_TOKENS = {
        **tokens.Tokenizer.SINGLE_TOKENS,
        "%": TokenType.PERCENT,  # starts a name; never an operator
        "#": TokenType.MOD,  # IRIS's modulo operator
    }

    KEYWORDS = {
        **{k: v for k, v in tokens.Tokenizer.KEYWORDS.items() if k not in _FOREIGN_KEYWORDS},
        **dict.fromkeys(COMMAND_KEYWORDS, TokenType.COMMAND),
        # the parser builds `#>` into a binary node, never a lambda; repaired to ImplicitJoin
        "->": TokenType.HASH_ARROW,
        "TOP": TokenType.TOP,
        "START TRANSACTION": TokenType.BEGIN,
        "CALL": TokenType.VAR,  # CALL statements are rewritten, see iris_rewrite
    }

    def tokenize(self, sql: str) -> list[Token]:
        """Return the tokens of `sql`, with IRIS-only syntax rewritten."""
        return self.tokenize_with_fixes(sql)[0]

    def tokenize_with_fixes(self, sql: str) -> tuple[list[Token], int]:
        """Return the rewritten tokens and the `Fix` bits for the tree repairs they need."""
        scanned = super().tokenize(sql)
        return rewrite(sql, scanned) if scanned else (scanned, Fix.NONE)
