"""SQL generator for InterSystems IRIS.

Row limits follow IRIS's rules: one style per SELECT (TOP, LIMIT or FETCH; SQLCODE -386
otherwise), and an ORDER BY in a subquery, view or parenthesized UNION leg needs TOP (`TOP
ALL` when there is no limit), because LIMIT or FETCH after ORDER BY is unsupported there.

sqlglot's compiled `Generator` refuses Python subclasses when `sqlglotc` is installed, so
this one extends the pure-Python `Generator` of the same sqlglot release, loaded from its
source file. Generating is the slower half of a round trip and only runs for rewritten
statements; parsing keeps the compiled parser.
"""

from __future__ import annotations

import importlib.util
import sys
import typing as t
from pathlib import Path
from types import ModuleType

from sqlglot import exp
from sqlglot import generator as sqlglot_generator
from sqlglot.dialects.dialect import trim_sql

from sqlfence.sql.dialects.iris_expressions import (
    LIMIT_KEYWORD_META,
    ODBC_FN_META,
    PERCENT_PREDICATES,
    TOP_PARENS_META,
    ImplicitJoin,
)
from sqlfence.sql.dialects.iris_rewrite import FROM_HINTS


def _interpreted_generator_module() -> ModuleType:
    """sqlglot's generator module, as Python source even when a compiled build is loaded."""
    if sqlglot_generator.__file__ is None or sqlglot_generator.__file__.endswith(".py"):
        return sqlglot_generator
    name = "sqlfence.sql.dialects._sqlglot_generator_source"
    if name in sys.modules:
        return sys.modules[name]
    source = Path(sqlglot_generator.__file__).with_name("generator.py")
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load sqlglot's generator source from {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if t.TYPE_CHECKING:
    from sqlglot.generator import Generator as _Generator
else:
    _Generator = _interpreted_generator_module().Generator

Style = t.Literal["top", "limit", "fetch", "top-all", "none"]


def limit_style(select: exp.Select) -> Style:
    """Say how the row limit of `select` is written in IRIS.

    A new `exp.Limit` (no meta) is written as TOP; one parsed from `LIMIT n` stays LIMIT, as
    does any limit with an OFFSET (TOP takes none), unless it sits on a UNION leg other than
    the last. After an ORDER BY inside a subquery, where IRIS rejects LIMIT and FETCH, a
    limit without OFFSET becomes TOP, and an ORDER BY with no limit gets `TOP ALL`.
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


def _is_from_hint(option: exp.Expr) -> bool:
    return option.name.split(" ", 1)[0].upper() in FROM_HINTS


class IRISGenerator(_Generator):
    """Writes sqlglot trees, including the IRIS shapes, as IRIS SQL."""

    LIMIT_IS_TOP = False  # select_sql chooses TOP or LIMIT per statement
    SET_OP_LIMITS = True
    MOD_OPERATOR = "#"
    NVL2_SUPPORTED = False

    # IRIS's DDL has no BOOLEAN: BIT maps to %Library.Boolean
    TYPE_MAPPING = {**_Generator.TYPE_MAPPING, exp.DType.BOOLEAN: "BIT"}

    TRANSFORMS = {
        **_Generator.TRANSFORMS,
        ImplicitJoin: lambda self, e: f"{self.sql(e, 'this')}->{self.sql(e, 'expression')}",
        exp.Execute: lambda self, e: (
            f"{'?=' if e.args.get('return_status') else ''}CALL {self.sql(e, 'this')}"
        ),
        exp.StartsWith: lambda self, e: self.binary(e, "%STARTSWITH"),
        exp.StrPosition: lambda self, e: (
            f"POSITION({self.sql(e, 'substr')} IN {self.sql(e, 'this')})"
        ),
        exp.Trim: trim_sql,
        exp.CurrentTimestamp: lambda self, e: self._niladic(e, "CURRENT_TIMESTAMP"),
        exp.CurrentTime: lambda self, e: self._niladic(e, "CURRENT_TIME"),
        exp.CurrentUser: lambda self, e: self._niladic(e, "CURRENT_USER"),
        exp.Transaction: lambda self, e: "START TRANSACTION",
    }

    def _niladic(self, expression: exp.Expr, name: str) -> str:
        # IRIS writes these without parentheses unless they take a precision
        return self.func(name, expression.this) if expression.this else name

    def anonymous_sql(self, expression: exp.Anonymous) -> str:
        name = str(expression.this)
        args = expression.expressions
        if name in PERCENT_PREDICATES and len(args) == 2:
            return f"{self.sql(args[0])} {name} {self.sql(args[1])}"
        # Routine names keep their case: `Sample.Proc`, `##class(Pkg.Cls).Method`.
        sql = self.func(name, *args, normalize="." not in name)
        return f"{{fn {sql}}}" if expression.meta_get(ODBC_FN_META) else sql

    def hint_sql(self, expression: exp.Hint) -> str:
        options = [self.sql(o) for o in expression.expressions if not _is_from_hint(o)]
        return f" {' '.join(options)}" if options else ""

    def from_sql(self, expression: exp.From) -> str:
        select = expression.parent
        hint = select.args.get("hint") if isinstance(select, exp.Select) else None
        hints = [self.sql(o) for o in hint.expressions if _is_from_hint(o)] if hint else []
        prefix = "".join(f" {h}" for h in hints)
        return f"{self.seg('FROM')}{prefix} {self.sql(expression, 'this')}"

    def insert_sql(self, expression: exp.Insert) -> str:
        alternative = expression.args.get("alternative")
        hint = expression.args.get("hint")
        if not (alternative and hint):
            return super().insert_sql(expression)
        # IRIS writes its options after OR UPDATE: INSERT OR UPDATE %NOLOCK INTO t ...
        options = self.hint_sql(hint)
        expression = expression.copy()
        expression.set("hint", None)
        head = f"INSERT OR {alternative}"
        return super().insert_sql(expression).replace(head, f"{head}{options}", 1)

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
        count = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
        if count is None:  # FETCH FIRST ROW ONLY
            return "1"
        sql = self.sql(count)
        parens = limit.meta_get(TOP_PARENS_META, 0)
        if not parens and not (count.is_number or isinstance(count, (exp.Placeholder, exp.Var))):
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
