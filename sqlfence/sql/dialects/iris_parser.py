"""Parser for InterSystems IRIS SQL (see `sqlfence.sql.dialects.iris` for the tree shapes)."""

from __future__ import annotations

import typing as t

from sqlglot import exp, parser
from sqlglot.tokens import Token, TokenType

from sqlfence.sql.dialects.iris_expressions import (
    Call,
    ClassMethodCall,
    ImplicitJoin,
    NoIndex,
    PercentPredicate,
)
from sqlfence.sql.dialects.iris_tokenizer import NOINDEX, PERCENT_PREDICATE

# Meta keys on exp.Limit: which clause the statement used, so generation keeps it.
LIMIT_KEYWORD_META = "iris_limit_keyword"
"""Set on an exp.Limit parsed from `LIMIT n`; absent for `TOP n` and for new nodes."""
TOP_PARENS_META = "iris_top_parens"
"""How many parentheses wrapped the TOP count: `TOP ((5))` keeps its literal out of the cache."""
FROM_HINTS_META = "iris_from_hints"
"""Tuple of the `%` optimizer hints written after FROM, as text (`%FIRSTTABLE Sample.Person`)."""

STATEMENT_OPTIONS = frozenset(
    {
        # SELECT
        "%NOLOCK", "%NOFPLAN", "%NORUNTIME", "%PROFILE", "%PROFILE_ALL",
        # INSERT, UPDATE, DELETE
        "%NOCHECK", "%NOINDEX", "%NOJOURN", "%NOTRIGGER",
    }
)  # fmt: skip
FROM_HINTS = frozenset(
    {
        "%ALLINDEX", "%FIRSTTABLE", "%FULL", "%IGNOREINDEX", "%IGNOREINDICES", "%INORDER",
        "%NOFLATTEN", "%NOMERGE", "%NOREDUCE", "%NOSVSO", "%NOTOPOPT", "%NOUNIONOROPT",
        "%PARALLEL", "%STARTTABLE",
    }
)  # fmt: skip
_HINTS_NAMING_TABLES = frozenset({"%FIRSTTABLE", "%STARTTABLE"})
_HINTS_NAMING_INDEXES = frozenset({"%IGNOREINDEX", "%IGNOREINDICES"})

# Statements sqlglot has no node for; they become exp.Command so a policy can refuse them.
COMMAND_WORDS = frozenset(
    {
        "BUILD", "CANCEL", "CLOSE", "FREEZE", "LOCK", "OPEN", "PURGE", "SAVEPOINT", "TRAIN",
        "TUNE", "UNFREEZE", "UNLOCK", "VALIDATE", "%CHECKPRIV", "%INTRANSACTION",
    }
)  # fmt: skip

# Functions whose sqlglot node generates back the same IRIS text. Every other function stays
# an exp.Anonymous that keeps its name and arguments exactly, because sqlglot's portable nodes
# would print some of them in other dialects' spellings (POSITION as STR_POSITION, ...).
_TYPED_FUNCTIONS = frozenset(
    {"AVG", "COUNT", "MAX", "MIN", "SUM", "COALESCE", "LOWER", "UPPER", "ABS", "ROUND"}
)
_FOREIGN_FUNCTION_PARSERS = frozenset({"CONVERT", "DECODE"})


class IRISParser(parser.Parser):
    """Parses IRIS SQL; raises `sqlglot.errors.ParseError` on text IRIS would reject."""

    FUNCTIONS = {k: v for k, v in parser.Parser.FUNCTIONS.items() if k in _TYPED_FUNCTIONS}
    FUNCTION_PARSERS = {
        k: v
        for k, v in parser.Parser.FUNCTION_PARSERS.items()
        if k not in _FOREIGN_FUNCTION_PARSERS
    }

    # `->` is IRIS's implicit join, never a lambda or a JSON accessor.
    LAMBDAS = {k: v for k, v in parser.Parser.LAMBDAS.items() if k != TokenType.ARROW}
    COLUMN_OPERATORS = {
        TokenType.DOT: None,
        TokenType.ARROW: lambda self, this, field: self._build_implicit_join(this, field),
    }

    # `#` is modulo; `%` alone is no operator in IRIS.
    FACTOR = {
        **{k: v for k, v in parser.Parser.FACTOR.items() if k != TokenType.MOD},
        TokenType.HASH: exp.Mod,
    }

    RANGE_PARSERS = {
        **parser.Parser.RANGE_PARSERS,
        PERCENT_PREDICATE: lambda self, this: self._parse_percent_predicate(this),
    }
    UNARY_PARSERS = {
        **parser.Parser.UNARY_PARSERS,
        NOINDEX: lambda self: self.expression(NoIndex(this=self._parse_equality())),
    }
    PRIMARY_PARSERS = {
        **parser.Parser.PRIMARY_PARSERS,
        TokenType.HASH: lambda self, token: self._parse_class_method_call(token),
    }
    STATEMENT_PARSERS = {
        **parser.Parser.STATEMENT_PARSERS,
        TokenType.EXECUTE: lambda self: self._parse_call(),
        TokenType.PLACEHOLDER: lambda self: self._parse_call_with_return(),
    }

    ODBC_DATETIME_LITERALS = {"d": exp.Date, "t": exp.Time, "ts": exp.Timestamp}
    INSERT_ALTERNATIVES = {"UPDATE"}

    def _parse_statement(self) -> exp.Expr | None:
        if self._curr and self._curr.text.upper() in COMMAND_WORDS:
            self._advance()
            return self._parse_as_command(self._prev)
        return super()._parse_statement()

    # Row limits ---------------------------------------------------------------------------

    def _parse_limit(
        self,
        this: exp.Expr | None = None,
        top: bool = False,
        skip_limit_token: bool = False,
    ) -> exp.Expr | None:
        if top:
            return self._parse_top(this)
        if not skip_limit_token and self._match(TokenType.LIMIT):
            self._match(TokenType.ALL)  # `LIMIT ALL n`: ALL is a noise word in IRIS
            limit = self.expression(
                exp.Limit(this=this, expression=self._parse_term()), self._prev
            )
            limit.meta[LIMIT_KEYWORD_META] = True
            return limit
        return super()._parse_limit(this, top=top, skip_limit_token=skip_limit_token)

    def _parse_top(self, this: exp.Expr | None) -> exp.Expr | None:
        if not self._match(TokenType.TOP):
            return this
        parens = 0
        if self._match(TokenType.ALL):
            count: exp.Expr | None = exp.var("ALL")
        else:
            while self._match(TokenType.L_PAREN):
                parens += 1
            count = self._parse_primary() or self._parse_placeholder()
            if count is None:
                self.raise_error("Expected a row count, ? or ALL after TOP")
            for _ in range(parens):
                self._match_r_paren()
        limit = self.expression(exp.Limit(this=this, expression=count))
        limit.meta["top"] = True  # sqlglot's own marker: a later LIMIT must not join it
        if parens:
            limit.meta[TOP_PARENS_META] = parens
        return limit

    def _parse_query_modifiers(self, this: t.Any) -> t.Any:
        this = super()._parse_query_modifiers(this)
        if isinstance(this, exp.Select):
            limit = this.args.get("limit")
            if limit is not None and limit.meta_get("top") and this.args.get("offset"):
                self.raise_error("TOP cannot be combined with OFFSET (IRIS SQLCODE -386)")
        return this

    def _parse_set_operations(self, this: exp.Expr | None) -> exp.Expr | None:
        this = super()._parse_set_operations(this)
        if isinstance(this, exp.SetOperation) and not this.args.get("order"):
            # IRIS applies a trailing LIMIT/FETCH that follows no ORDER BY to the last SELECT
            # of the UNION only, unless that SELECT is parenthesized.
            last = this.expression
            moved = [key for key in ("limit", "offset") if this.args.get(key)]
            if isinstance(last, exp.Select) and moved:
                if last.args.get("limit") or last.args.get("offset"):
                    self.raise_error("Two row limits on one SELECT (IRIS SQLCODE -386)")
                for key in moved:
                    last.set(key, this.args[key].pop())
        return this

    # `%` keywords -------------------------------------------------------------------------

    def _parse_hint(self) -> exp.Hint | None:
        options: list[exp.Expr] = []
        while self._curr and self._curr.text.upper() in STATEMENT_OPTIONS:
            self._advance()
            options.append(exp.var(self._prev.text.upper()))
        return self.expression(exp.Hint(expressions=options)) if options else None

    def _parse_from(
        self,
        joins: bool = False,
        skip_from_token: bool = False,
        consume_pipe: bool = False,
    ) -> exp.From | None:
        if not skip_from_token and not self._match(TokenType.FROM):
            return None
        hints: list[str] = []
        while self._curr and self._curr.text.upper() in FROM_HINTS:
            hints.append(self._parse_from_hint())
        from_ = super()._parse_from(joins=joins, skip_from_token=True, consume_pipe=consume_pipe)
        if from_ is not None and hints:
            from_.meta[FROM_HINTS_META] = tuple(hints)
        return from_

    def _parse_from_hint(self) -> str:
        self._advance()
        keyword = self._prev.text.upper()
        if keyword in _HINTS_NAMING_TABLES:
            return f"{keyword} {self._parse_dotted_name_text()}"
        if keyword in _HINTS_NAMING_INDEXES:
            names = [self._parse_dotted_name_text()]
            while self._match(TokenType.COMMA):
                names.append(self._parse_dotted_name_text())
            return f"{keyword} {', '.join(names)}"
        return keyword

    def _parse_dotted_name_text(self) -> str:
        start = self._curr
        if not self._match_set((TokenType.VAR, TokenType.IDENTIFIER, TokenType.STAR)):
            self.raise_error("Expected a name")
        while self._match(TokenType.DOT):
            self._advance()
        return self._find_sql(start, self._prev)

    def _parse_percent_predicate(self, this: exp.Expr | None) -> exp.Expr:
        op = self._prev.text.upper()
        return self.expression(
            PercentPredicate(this=this, expression=self._parse_bitwise(), op=op)
        )

    def _parse_types(
        self,
        check_func: bool = False,
        schema: bool = False,
        allow_identifiers: bool = True,
        with_collation: bool = False,
    ) -> exp.Expr | None:
        # Class names as column types: %String, %Library.String(MAXLEN=50).
        if allow_identifiers and self._curr and self._curr.text.startswith("%"):
            start = self._curr
            self._parse_dotted_name_text()
            if self._match(TokenType.L_PAREN):
                depth = 1
                while self._curr and depth:
                    depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(
                        self._curr.token_type, 0
                    )
                    self._advance()
            return exp.DataType(
                this=exp.DType.USERDEFINED, kind=self._find_sql(start, self._prev)
            )
        return super()._parse_types(
            check_func=check_func,
            schema=schema,
            allow_identifiers=allow_identifiers,
            with_collation=with_collation,
        )

    # Arrows, routines ---------------------------------------------------------------------

    def _build_implicit_join(self, this: exp.Expr | None, field: exp.Expr | None) -> exp.Expr:
        if isinstance(field, exp.Column) and not field.table:
            field = field.this
        if not isinstance(field, exp.Identifier):
            self.raise_error("Expected a field name after ->")
        return self.expression(ImplicitJoin(this=this, expression=field))

    def _parse_column_ops(self, this: exp.Expr | None) -> exp.Expr | None:
        this = super()._parse_column_ops(this)
        # `Sample.Proc(1)` is a stored procedure: keep its schema in the function name so a
        # policy denying functions by name sees `Sample.Proc`, not a bare `Proc`.
        if isinstance(this, exp.Dot) and isinstance(this.expression, exp.Anonymous):
            qualifier = this.this
            if isinstance(qualifier, (exp.Column, exp.Dot, exp.Identifier)):
                func = this.expression
                name = f"{qualifier.sql(dialect=self.dialect)}.{func.name}"
                return self.expression(
                    exp.Anonymous(this=name, expressions=func.expressions), comments=this.comments
                )
        return this

    def _parse_call(self, returns: exp.Expr | None = None) -> Call:
        start = self._curr
        routine = self._parse_column()
        if isinstance(routine, (exp.Column, exp.Dot)):
            # `CALL Sample.Proc` without parentheses takes no arguments
            routine = exp.Anonymous(this=routine.sql(dialect=self.dialect), expressions=[])
        if not isinstance(routine, exp.Func):
            self.raise_error("Expected a procedure name after CALL", token=start)
        return self.expression(Call(this=routine, returns=returns))

    def _parse_call_with_return(self) -> Call:
        returns = self.expression(exp.Placeholder())
        if not (self._match(TokenType.EQ) and self._match(TokenType.EXECUTE)):
            self.raise_error("Expected =CALL after ?")
        return self._parse_call(returns=returns)

    def _parse_class_method_call(self, token: Token) -> exp.Expr | None:
        # `##class(Package.Class).Method(args)`; the first # is `token`.
        if not (self._match(TokenType.HASH) and self._match_text_seq("CLASS")):
            self.raise_error("Expected ##class", token=token)
        self._match_l_paren()
        class_name = self._parse_dotted_name_text()
        self._match_r_paren()
        if not self._match(TokenType.DOT):
            self.raise_error("Expected .Method after ##class(...)")
        method = self._parse_id_var(any_token=True)
        args = self._parse_wrapped_csv(self._parse_expression, optional=True)
        return self.expression(
            ClassMethodCall(this=exp.var(class_name), method=method, expressions=args)
        )


__all__ = [
    "COMMAND_WORDS",
    "FROM_HINTS",
    "FROM_HINTS_META",
    "LIMIT_KEYWORD_META",
    "STATEMENT_OPTIONS",
    "TOP_PARENS_META",
    "IRISParser",
]
