"""sqlglot dialect for InterSystems IRIS SQL, registered as `iris`.

`sqlglot.parse_one(sql, read="iris")` works once the package is installed (entry point
`sqlglot.dialects`); `read=IRIS` works without it.

Tree shapes a caller can rely on:

- Row limits sit in `select.args["limit"]`: `TOP n` and `LIMIT n` as `exp.Limit` (count in
  `.expression`; `TOP ((n))` keeps the bare count and remembers the parentheses), FETCH as
  `exp.Fetch`; OFFSET in `select.args["offset"]`. **`TOP ALL` is an `exp.Limit` whose
  expression is `exp.Var(this="ALL")`, so `limit.is_limit_all` is true: it means no limit.**
  IRIS's `LIMIT ALL n` is just `LIMIT n`. Generation writes a new `exp.Limit` as `TOP n`,
  keeps `LIMIT n [OFFSET m]` and `OFFSET m ROWS FETCH ...` in their own style when only the
  count is replaced, and never writes TOP together with LIMIT (IRIS SQLCODE -386). An ORDER BY
  in a subquery, view or UNION leg gets `TOP ALL`, or TOP instead of LIMIT, as IRIS requires.
  A trailing LIMIT after a UNION without ORDER BY belongs to the last SELECT, as in IRIS.
- `%` names keep their `%`: `%ID` is a column, `%EXACT(x)` an `exp.Anonymous` named `%EXACT`,
  `x %STARTSWITH 'A'` an `exp.StartsWith`, `%MATCHES`/`%PATTERN`/`%INLIST`/`%INSET`/`%FIND` a
  `PercentPredicate`. SELECT/INSERT/UPDATE/DELETE keywords (`%NOLOCK`, ...) are `exp.Var`s in
  the statement's `exp.Hint`; FROM hints (`%INORDER`, `%FIRSTTABLE t`, ...) are text in
  `from_.meta["iris_from_hints"]`, since they name no data.
- `a->b` is an `ImplicitJoin`; `implicit_join_targets` finds the tables arrows read.
- `CALL p(x)` / `?=CALL p(x)` is a `Call` whose `this` is the function node; schema-qualified
  calls anywhere (`Sample.Proc(1)`) are `exp.Anonymous` named `Sample.Proc`, and
  `##class(Pkg.Cls).Method()` is a `ClassMethodCall`; `procedure_name` reads all of them.
- ODBC escapes `{d '...'}`, `{t '...'}`, `{ts '...'}` are `exp.Date`/`exp.Time`/
  `exp.Timestamp` and print back as escapes; `{fn f(x)}` is the function `f(x)`.
- Functions other than a few aggregates stay `exp.Anonymous`, so they print back verbatim.
- Statements sqlglot cannot represent become `exp.Command` (a policy can refuse them): LOAD,
  EXECUTE, SET OPTION, CREATE DATABASE/USER/PROCEDURE/FUNCTION/METHOD/QUERY/TRIGGER, BUILD
  INDEX, TUNE TABLE, LOCK, FREEZE/PURGE, TRAIN/VALIDATE MODEL, %CHECKPRIV, %INTRANSACTION, ...

Identifiers: IRIS documents both simple and delimited (double-quoted) identifiers as not
case-sensitive, so the dialect normalizes case-insensitively whether quoted or not
(`NormalizationStrategy.CASE_INSENSITIVE`). Unqualified names belong to `DEFAULT_SCHEMA`.
IRIS rejects a trailing `;` (SQLCODE -25): send `strip_terminator(sql)`.
"""

from __future__ import annotations

from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from sqlfence.sql.dialects.iris_expressions import (
    Call,
    ClassMethodCall,
    ImplicitJoin,
    NoIndex,
    PercentPredicate,
    procedure_name,
)
from sqlfence.sql.dialects.iris_functions import IRIS_DENIED_FUNCTIONS, is_denied_function
from sqlfence.sql.dialects.iris_generator import IRISGenerator
from sqlfence.sql.dialects.iris_joins import implicit_join_targets
from sqlfence.sql.dialects.iris_parser import IRISParser
from sqlfence.sql.dialects.iris_tokenizer import IRISTokenizer

__all__ = [
    "DEFAULT_SCHEMA",
    "IRIS",
    "IRIS_DENIED_FUNCTIONS",
    "Call",
    "ClassMethodCall",
    "ImplicitJoin",
    "NoIndex",
    "PercentPredicate",
    "implicit_join_targets",
    "is_denied_function",
    "procedure_name",
    "strip_terminator",
]

DEFAULT_SCHEMA = "SQLUser"
"""The schema IRIS gives unqualified table, view and procedure names."""


class IRIS(Dialect):
    """InterSystems IRIS SQL."""

    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_INSENSITIVE

    Tokenizer = IRISTokenizer
    Parser = IRISParser
    Generator = IRISGenerator


def strip_terminator(sql: str) -> str:
    """Remove the trailing `;` (and whitespace or comments after it) that IRIS rejects.

    Only the end of the text changes; a `;` inside a string or comment is left alone, as is
    text the tokenizer cannot read (the guard rejects that anyway).
    """
    try:
        scanned = IRISTokenizer(dialect=IRIS).tokenize(sql)
    except TokenError:
        return sql
    end = len(sql)
    while scanned and scanned[-1].token_type == TokenType.SEMICOLON:
        end = scanned.pop().start
    return sql[:end].rstrip() if end < len(sql) else sql
