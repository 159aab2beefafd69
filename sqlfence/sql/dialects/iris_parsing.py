"""Parse IRIS SQL with sqlglot's stock parser, then repair the tree shapes IRIS needs.

`iris_rewrite` turns IRIS-only syntax into tokens the stock parser reads and reports which
repairs (`Fix` bits) the resulting trees need; each repair visits only the node types it
changes, and a statement that needs none is returned as parsed.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.errors import ParseError

from sqlfence.sql.dialects.iris_expressions import (
    LIMIT_KEYWORD_META,
    ODBC_FN_META,
    PERCENT_PREDICATE_CLASSES,
    TOP_PARENS_META,
    ImplicitJoin,
)
from sqlfence.sql.dialects.iris_rewrite import (
    ANONYMOUS_MARKER,
    CALL_MARKER,
    ODBC_FN_MARKER,
    RETURNING_CALL_MARKER,
    Fix,
)

if t.TYPE_CHECKING:
    from sqlglot.parser import Parser
    from sqlglot.tokenizer_core import Token

_PERCENT_PREDICATE_TYPES = tuple(PERCENT_PREDICATE_CLASSES)
_CALL_CLAUSES = frozenset({"expressions", "hint"})


def parse(
    parser: Parser,
    tokens: list[Token],
    sql: str,
    fixes: int,
    into: exp.IntoType | None = None,
) -> list[exp.Expr | None]:
    """Parse rewritten `tokens` and repair the trees.

    Raises:
        sqlglot.errors.ParseError: also for the few inputs on which sqlglot itself fails
            with another exception (an empty delimited identifier, deep nesting), so that a
            caller denying unparsable SQL catches every failure with one except clause.
    """
    try:
        trees = parser.parse(tokens, sql) if into is None else parser.parse_into(into, tokens, sql)
    except (ValueError, TypeError, IndexError, RecursionError) as error:
        raise ParseError(f"IRIS SQL not understood: {error}") from error
    if not fixes:
        return trees
    return [None if tree is None else repair(tree, fixes) for tree in trees]


def repair(tree: exp.Expr, fixes: int) -> exp.Expr:
    """Turn the stock parser's reading of rewritten IRIS tokens into the IRIS tree shapes."""
    if fixes & Fix.ANONYMOUS:
        for func in tree.find_all(exp.Anonymous):
            name = func.this
            if not isinstance(name, str):
                continue
            if name.endswith(ANONYMOUS_MARKER):
                func.set("this", name[: -len(ANONYMOUS_MARKER)])
            elif name.endswith(ODBC_FN_MARKER):
                func.set("this", name[: -len(ODBC_FN_MARKER)])
                func.meta[ODBC_FN_META] = True
    if fixes & Fix.PERCENT_PREDICATE:
        for node in list(tree.find_all(*_PERCENT_PREDICATE_TYPES)):
            name = PERCENT_PREDICATE_CLASSES[type(node)]
            node.replace(exp.Anonymous(this=name, expressions=[node.this, node.expression]))
    if fixes & Fix.ARROW:
        for node in list(tree.find_all(exp.JSONBExtract)):
            _implicit_join(node)
    if fixes & Fix.QUALIFIED_CALL:
        for node in list(tree.find_all(exp.Dot, exp.Table)):
            _qualified_call(node)
    if fixes & Fix.INSERT_OR_UPDATE:
        for insert in tree.find_all(exp.Insert):
            insert.set("alternative", "UPDATE")
    if fixes & Fix.CALL:
        tree = _call(tree)
    if fixes & (Fix.TOP | Fix.LIMIT | Fix.ROW_LIMIT_RULES):
        limit = tree.args.get("limit") if isinstance(tree, exp.Select) else None
        if isinstance(limit, exp.Limit) and not fixes & Fix.MANY_ROW_LIMITS:
            nodes: t.Iterable[exp.Expr] = (limit,)  # the only row limit, on the root
        else:
            nodes = tree.find_all(exp.Limit, exp.SetOperation)
        unions: list[exp.SetOperation] = []
        for node in nodes:
            if isinstance(node, exp.Limit):
                _limit(node)
            elif isinstance(node, exp.SetOperation):
                unions.append(node)
        for union in unions:
            _union_limit(union)
    return tree


def _call(tree: exp.Expr) -> exp.Expr:
    hint = tree.args.get("hint") if isinstance(tree, exp.Select) else None
    markers = {option.name for option in hint.expressions} if hint else set()
    if CALL_MARKER not in markers and RETURNING_CALL_MARKER not in markers:
        return tree
    routine = tree.expressions[0] if len(tree.expressions) == 1 else None
    if isinstance(routine, (exp.Column, exp.Dot)):
        # `CALL Sample.Proc` without parentheses takes no arguments
        routine = exp.Anonymous(this=routine.sql("iris"), expressions=[])
    other = [key for key, value in tree.args.items() if value and key not in _CALL_CLAUSES]
    if not isinstance(routine, exp.Func) or other:
        raise ParseError(f"CALL takes one procedure call, not {tree.sql('iris')}")
    returns = exp.Placeholder() if RETURNING_CALL_MARKER in markers else None
    return exp.Execute(this=routine, return_status=returns)


def _implicit_join(node: exp.JSONBExtract) -> None:
    field = node.expression
    if isinstance(field, exp.Column) and not field.table:
        field = field.this
    if not isinstance(field, exp.Identifier):
        raise ParseError(f"Expected a field name after ->, got {field.sql('iris')}")
    node.replace(ImplicitJoin(this=node.this, expression=field))


def _qualified_call(node: exp.Expr) -> None:
    # `Sample.Proc(1)` runs a stored procedure: its schema stays in the function name, so a
    # policy that denies functions by name sees `Sample.Proc`, not a bare `Proc`. The same
    # holds for a table-valued function in FROM.
    if isinstance(node, exp.Dot):
        func, qualifier = node.expression, node.this
        if isinstance(func, exp.Anonymous) and isinstance(
            qualifier, (exp.Column, exp.Dot, exp.Identifier)
        ):
            name = f"{qualifier.sql('iris')}.{func.name}"
            node.replace(exp.Anonymous(this=name, expressions=func.expressions))
    elif isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and node.db:
        func = node.this
        qualifier = ".".join(part.sql("iris") for part in node.parts[:-1])
        node.set(
            "this", exp.Anonymous(this=f"{qualifier}.{func.name}", expressions=func.expressions)
        )
        node.set("db", None)
        node.set("catalog", None)


def _limit(limit: exp.Limit) -> None:
    if not limit.meta_get("top"):
        limit.meta[LIMIT_KEYWORD_META] = True
        return
    select = limit.parent
    if isinstance(select, exp.Select) and select.args.get("offset"):
        raise ParseError("TOP cannot be combined with OFFSET (IRIS SQLCODE -386)")
    count = limit.expression
    parens = 0
    while isinstance(count, exp.Paren):
        count, parens = count.this, parens + 1
    if isinstance(count, exp.Column) and count.name.upper() == "ALL" and not count.table:
        count = exp.var("ALL")
    limit.set("expression", count)
    if parens:
        limit.meta[TOP_PARENS_META] = parens


def _union_limit(union: exp.SetOperation) -> None:
    # IRIS applies a LIMIT/FETCH written after the last SELECT of a UNION, with no ORDER BY,
    # to that SELECT alone (unless it is parenthesized).
    last = union.expression
    moved = [key for key in ("limit", "offset") if union.args.get(key)]
    if union.args.get("order") or not moved or not isinstance(last, exp.Select):
        return
    if last.args.get("limit") or last.args.get("offset"):
        raise ParseError("Two row limits on one SELECT (IRIS SQLCODE -386)")
    for key in moved:
        last.set(key, union.args[key].pop())
