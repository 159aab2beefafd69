"""SQL generator for InterSystems IRIS (see `sqlfence.sql.dialects.iris` for the tree shapes).

Row limits follow IRIS's rules: one style per SELECT (TOP, LIMIT or FETCH; SQLCODE -386
otherwise), and an ORDER BY in a subquery or view needs TOP (`TOP ALL` when there is no
limit), because LIMIT or FETCH after ORDER BY is unsupported there.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp, generator

from sqlfence.sql.dialects.iris_expressions import (
    Call,
    ClassMethodCall,
    ImplicitJoin,
    NoIndex,
    PercentPredicate,
)
from sqlfence.sql.dialects.iris_parser import FROM_HINTS_META, LIMIT_KEYWORD_META, TOP_PARENS_META

Style = t.Literal["top", "limit", "fetch", "top-all", "none"]


def limit_style(select: exp.Select) -> Style:
    """Say how the row limit of `select` is written in IRIS.

    A new `exp.Limit` (no meta) is written as TOP; one parsed from `LIMIT n` stays LIMIT, as
    does any limit with an OFFSET (TOP takes none). Where IRIS rejects LIMIT or FETCH, after
    an ORDER BY inside a subquery, a limit without OFFSET becomes TOP, and an ORDER BY with
    no limit gets `TOP ALL`.
    """
    limit = select.args.get("limit")
    offset = select.args.get("offset")
    order_in_subquery = bool(select.args.get("order")) and _is_nested(select)
    if limit is None:
        return "top-all" if order_in_subquery else "none"
    if order_in_subquery and not offset:
        return "top"
    if isinstance(limit, exp.Fetch):
        return "fetch"
    if offset is not None:
        return "limit"
    if limit.meta_get(LIMIT_KEYWORD_META) and not _is_leading_union_leg(select):
        return "limit"
    return "top"


def _is_nested(select: exp.Select) -> bool:
    parent = select.parent
    while isinstance(parent, exp.SetOperation):
        parent = parent.parent
    return parent is not None


def _is_leading_union_leg(select: exp.Select) -> bool:
    # Only the last SELECT of a UNION may end in LIMIT; the others carry TOP.
    parent = select.parent
    return isinstance(parent, exp.SetOperation) and parent.this is select


def _count(limit: exp.Limit | exp.Fetch) -> exp.Expr | None:
    return limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression


class IRISGenerator(generator.Generator):
    """Writes sqlglot trees, including the IRIS nodes, as IRIS SQL."""

    LIMIT_IS_TOP = False  # select_sql below chooses TOP or LIMIT per statement
    SET_OP_LIMITS = True
    MOD_OPERATOR = "#"
    NVL2_SUPPORTED = False

    TRANSFORMS = {
        **generator.Generator.TRANSFORMS,
        ImplicitJoin: lambda self, e: f"{self.sql(e, 'this')}->{self.sql(e, 'expression')}",
        Call: lambda self, e: f"{'?=' if e.args.get('returns') else ''}CALL {self.sql(e, 'this')}",
        ClassMethodCall: lambda self, e: self.func(
            f"##class({e.this.name}).{self.sql(e, 'method')}", *e.expressions, normalize=False
        ),
        PercentPredicate: lambda self, e: self.binary(e, e.args["op"]),
        NoIndex: lambda self, e: f"%NOINDEX {self.sql(e, 'this')}",
        exp.StartsWith: lambda self, e: self.binary(e, "%STARTSWITH"),
        exp.Date: lambda self, e: self._odbc_literal(e, "d", "DATE"),
        exp.Time: lambda self, e: self._odbc_literal(e, "t", "TIME"),
        exp.Timestamp: lambda self, e: self._odbc_literal(e, "ts", "TIMESTAMP"),
    }

    def _odbc_literal(self, expression: exp.Expr, escape: str, type_name: str) -> str:
        value = expression.this
        if isinstance(value, exp.Literal) and value.is_string:
            return f"{{{escape} {self.sql(value)}}}"
        return f"CAST({self.sql(value)} AS {type_name})"

    def anonymous_sql(self, expression: exp.Anonymous) -> str:
        name = str(expression.this)
        # Routine names keep their case: `Sample.Proc`, `%SYSTEM.Util_Foo`.
        return self.func(name, *expression.expressions, normalize="." not in name)

    def hint_sql(self, expression: exp.Hint) -> str:
        return " " + " ".join(self.sql(option) for option in expression.expressions)

    def from_sql(self, expression: exp.From) -> str:
        hints = " ".join(expression.meta_get(FROM_HINTS_META, ()))
        hints = f" {hints}" if hints else ""
        return f"{self.seg('FROM')}{hints} {self.sql(expression, 'this')}"

    # Row limits ---------------------------------------------------------------------------

    def select_sql(self, expression: exp.Select) -> str:
        style = limit_style(expression)
        limit = expression.args.get("limit")
        top = ""
        if style == "top-all":
            top = " TOP ALL"
        elif style == "top" and limit is not None:
            top = f" TOP {self._top_count(limit)}"

        hint = self.sql(expression, "hint")
        distinct = self.sql(expression, "distinct")
        distinct = f" {distinct}" if distinct else ""
        projections = self.expressions(expression)
        projections = f"{self.sep()}{projections}" if projections else projections
        sql = self.query_modifiers(
            expression,
            f"SELECT{hint}{distinct}{top}{projections}",
            self.sql(expression, "into", comment=False),
            self.sql(expression, "from_", comment=False),
        )
        if expression.args.get("with_"):
            sql = self.maybe_comment(sql, expression)
            expression.pop_comments()
        return self.prepend_ctes(expression, sql)

    def _top_count(self, limit: exp.Limit | exp.Fetch) -> str:
        count = _count(limit)
        if count is None:  # FETCH FIRST ROW ONLY
            return "1"
        sql = self.sql(count)
        parens = limit.meta_get(TOP_PARENS_META, 0)
        if not parens and not (count.is_number or isinstance(count, exp.Placeholder)):
            parens = 1
        return f"{'(' * parens}{sql}{')' * parens}"

    def offset_limit_modifiers(
        self, expression: exp.Expr, fetch: bool, limit: exp.Fetch | exp.Limit | None
    ) -> list[str]:
        if isinstance(expression, exp.Select) and limit_style(expression) in ("top", "top-all"):
            return []
        return super().offset_limit_modifiers(expression, fetch, limit)

    def limit_sql(self, expression: exp.Limit, top: bool = False) -> str:
        if expression.is_limit_all:  # TOP ALL moved onto a UNION: no limit at all
            return ""
        return f"{self.seg('LIMIT')} {self.sql(expression, 'expression')}"

    def set_operations(self, expression: exp.SetOperation) -> str:
        last = expression.expression
        if (
            not expression.args.get("order")
            and (expression.args.get("limit") or expression.args.get("offset"))
            and isinstance(last, exp.Select)
        ):
            # A bare last SELECT would take the LIMIT for itself; parenthesized, the LIMIT
            # applies to the whole UNION.
            expression = expression.copy()
            expression.expression.replace(exp.Subquery(this=expression.expression.copy()))
        return super().set_operations(expression)
