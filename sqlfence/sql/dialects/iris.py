"""sqlglot dialect for InterSystems IRIS SQL, registered as `iris`.

`sqlglot.parse_one(sql, read="iris")` works once this module is imported or the package is
installed (entry point `sqlglot.dialects`); `read=IRIS` always works. Parsing uses
sqlglot's compiled stock parser, fed rewritten tokens (`iris_rewrite` says why and how), so
it runs at the speed of sqlglot's built-in dialects; generating uses sqlglot's pure-Python
generator (`iris_generator`).

Tree shapes a caller can rely on:

- Row limits sit in `select.args["limit"]`: `TOP n` and `LIMIT n` as `exp.Limit` (count in
  `.expression`; `TOP ((n))` keeps the bare count and remembers the parentheses in meta),
  FETCH as `exp.Fetch`; OFFSET in `select.args["offset"]`. **`TOP ALL` is an `exp.Limit`
  whose expression is `exp.Var(this="ALL")`, so `limit.is_limit_all` is true: it means no
  limit.** IRIS's `LIMIT ALL n` is plain `LIMIT n`. Generation writes a new `exp.Limit` as
  `TOP n`, keeps `LIMIT n [OFFSET m]` and `OFFSET m ROWS FETCH ...` in their own style when
  only the count is replaced, and never writes TOP together with LIMIT (IRIS SQLCODE -386).
  An ORDER BY in a subquery, view or parenthesized UNION leg gets `TOP ALL`, or TOP instead
  of LIMIT, as IRIS requires. A LIMIT after the last SELECT of a UNION without ORDER BY
  belongs to that SELECT, as in IRIS; a limit set on the UNION node itself is written so
  that it covers the whole UNION. TOP with OFFSET, or two row limits on one SELECT, do not
  parse (IRIS rejects them).
- `%` names keep their `%`: `%ID` is a column, `%EXACT(x)` an `exp.Anonymous` named `%EXACT`,
  `x %STARTSWITH 'A'` an `exp.StartsWith`, `x %MATCHES y` (and `%PATTERN`, `%INLIST`,
  `%INSET`, `%FIND`) an `exp.Anonymous` named after the operator, printed infix. Statement
  options (`SELECT %NOLOCK`, `INSERT %NOCHECK`) and FROM hints (`%INORDER`, `%FIRSTTABLE t`)
  are `exp.Var`s in the statement's `exp.Hint`; they name no data.
- `a->b` is an `ImplicitJoin`; `implicit_join_targets` finds the tables that arrows read.
- `CALL p(x)` / `?=CALL p(x)` is a `Call` (sqlglot's `exp.Execute`) whose `this` is the
  function node. Schema-qualified calls anywhere (`Sample.Proc(1)`, also as table-valued
  functions in FROM) are `exp.Anonymous` named `Sample.Proc`; ObjectScript's
  `##class(Pkg.Cls).Method()` is an `exp.Anonymous` named `##class(Pkg.Cls).Method`.
  `procedure_name` reads all of them; `is_denied_function` checks a name against
  `IRIS_DENIED_FUNCTIONS`.
- ODBC escapes `{d '...'}`, `{t '...'}`, `{ts '...'}` are casts of the string to DATE, TIME,
  TIMESTAMP and print as `CAST('...' AS DATE)`; `{fn f(x)}` is the function `f(x)` and prints
  back as the escape; `#` is modulo (`exp.Mod`), `||` concatenation.
- Functions keep their names and arguments as written (`exp.Anonymous`), apart from the
  aggregates and the functions with special syntax listed in `iris_rewrite.TYPED_FUNCTIONS`;
  so they print back verbatim, never in another dialect's spelling.
- Not supported (parse errors, which a guard treats as a denial): `%NOINDEX` before a
  condition, `FOR SOME %ELEMENT`, embedded-SQL host variables (`:var`), and `_` used as
  ObjectScript's concatenation operator.
- Statements sqlglot cannot represent become `exp.Command`, which a policy can refuse:
  CREATE/DROP DATABASE, CREATE/ALTER/DROP USER and ROLE, SET OPTION, LOAD DATA, EXECUTE,
  BUILD INDEX, TUNE TABLE, FREEZE/PURGE, TRAIN/VALIDATE MODEL, LOCK, cursors, %CHECKPRIV,
  %INTRANSACTION, foreign servers and tables, CREATE METHOD/QUERY, and CREATE PROCEDURE,
  FUNCTION or TRIGGER (their bodies are ObjectScript, Python or SQL blocks).
  `START TRANSACTION` is `exp.Transaction`.

Identifiers: IRIS documents both simple and delimited (double-quoted) identifiers as not
case-sensitive, so the dialect normalizes case-insensitively whether quoted or not
(`NormalizationStrategy.CASE_INSENSITIVE`). Unqualified names belong to `DEFAULT_SCHEMA`.
A trailing `;` parses, but IRIS rejects it (SQLCODE -25): send `strip_terminator(sql)`.

sqlglot's node classes cannot be subclassed under `sqlglotc`, so the IRIS-only nodes are
existing sqlglot classes under IRIS names (`ImplicitJoin`, `Call`); see `iris_expressions`.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import TokenType

from sqlfence import databases
from sqlfence.sql.dialects import iris_parsing
from sqlfence.sql.dialects.iris_expressions import (
    CLASS_METHOD_PREFIX,
    PERCENT_PREDICATES,
    Call,
    ImplicitJoin,
    procedure_name,
)
from sqlfence.sql.dialects.iris_functions import (
    IRIS_DENIED_FUNCTIONS,
    IRIS_DENIED_PREFIXES,
    is_denied_function,
)
from sqlfence.sql.dialects.iris_generator import IRISGenerator
from sqlfence.sql.dialects.iris_joins import implicit_join_targets
from sqlfence.sql.dialects.iris_rewrite import HINT_SEPARATOR
from sqlfence.sql.dialects.iris_tokenizer import IRISTokenizer

__all__ = [
    "CLASS_METHOD_PREFIX",
    "DEFAULT_SCHEMA",
    "IRIS",
    "IRIS_DENIED_FUNCTIONS",
    "IRIS_DENIED_PREFIXES",
    "PERCENT_PREDICATES",
    "Call",
    "ImplicitJoin",
    "implicit_join_targets",
    "is_denied_function",
    "procedure_name",
    "strip_terminator",
]

DEFAULT_SCHEMA = databases.IRIS.default_schema
"""The schema IRIS gives unqualified table, view and procedure names (``SQLUser``)."""


class IRIS(Dialect):
    """InterSystems IRIS SQL."""

    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_INSENSITIVE

    Tokenizer = IRISTokenizer
    Generator = IRISGenerator
    # Parser: sqlglot's stock (compiled) parser, fed rewritten tokens, see iris_tokenizer.

    def parse(self, sql: str, **opts: t.Any) -> list[exp.Expr | None]:
        """Parse IRIS SQL into trees; raises `sqlglot.errors.ParseError`."""
        tokens, fixes = IRISTokenizer(dialect=self).tokenize_with_fixes(sql)
        return iris_parsing.parse(self.parser(**opts), tokens, sql, fixes)

    def parse_into(
        self, expression_type: exp.IntoType, sql: str, **opts: t.Any
    ) -> list[exp.Expr | None]:
        """Parse IRIS SQL into the given node type(s); raises `sqlglot.errors.ParseError`."""
        if expression_type is exp.Hint:
            # the parser asks for hints only for the tokens iris_rewrite made of % options
            options = sql.split(HINT_SEPARATOR)
            return [exp.Hint(expressions=[exp.var(option) for option in options])]
        tokens, fixes = IRISTokenizer(dialect=self).tokenize_with_fixes(sql)
        return iris_parsing.parse(self.parser(**opts), tokens, sql, fixes, into=expression_type)


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
