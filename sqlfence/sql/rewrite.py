"""Row-limit injection: make a query return at most ``max_rows`` rows, never loosening a limit.

The caller's text is kept whenever it can be: no rewrite when the limit already fits, and a
splice of ``LIMIT n`` (or of the one literal that changes) where the dialect allows it.
Only the remaining cases (IRIS ``TOP``, parameter and expression limits, ``LIMIT ALL``,
``FETCH``) regenerate the statement from the tree.
"""

from __future__ import annotations

from sqlglot import exp

from sqlfence.sql.analysis import Analysis

# Dialects where `<query> LIMIT n` is valid after any query, so the text can be spliced.
_TRAILING_LIMIT = frozenset({"sqlite", "postgres", "mysql", "duckdb"})
_QUERY_NODES = (exp.Select, exp.SetOperation)


def limit_rows(analysis: Analysis, max_rows: int) -> str | None:
    """The text to execute so that at most ``max_rows`` rows come back; None to keep the text.

    Only a single query is rewritten; DML with RETURNING, CALL and the like are capped by the
    cursor instead.
    """
    if analysis.facts.statement_count != 1 or not analysis.trees:
        return None
    root = analysis.trees[0]
    splice = _name(analysis) in _TRAILING_LIMIT
    wrapped = isinstance(root, exp.Subquery) or (
        isinstance(root, exp.Values) and _name(analysis) == "postgres"
    )
    if not wrapped and not isinstance(root, _QUERY_NODES):
        return None
    limit = root.args.get("limit")
    if limit is None:
        if wrapped:
            return _splice_end(analysis, max_rows) if splice else None
        if splice:
            return _splice_end(analysis, max_rows)
        root.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return root.sql(dialect=analysis.dialect)
    count = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
    if count is None and isinstance(limit, exp.Fetch):
        return None  # FETCH FIRST ROW ONLY: one row
    bound = row_bound(count, clamped=_name(analysis) != "sqlite")
    if bound is not None and bound <= max_rows:
        return None
    value = literal_count(count)
    ceiling = exp.Literal.number(max_rows)
    if value is not None or _means_unlimited(count):
        if splice and isinstance(count, exp.Literal):
            spliced = _splice_literal(analysis.sql, count, str(max_rows))
            if spliced is not None:
                return spliced
        replacement: exp.Expr = ceiling
    elif count is not None:
        replacement = _bounded(count, ceiling, analysis)
    else:
        replacement = ceiling
    if isinstance(limit, exp.Fetch):
        limit.set("count", replacement)
    else:
        limit.set("expression", replacement)
    return root.sql(dialect=analysis.dialect)


def literal_count(node: exp.Expression | None) -> int | None:
    """The integer a limit expression is, when it is a plain (possibly negative) number."""
    if isinstance(node, exp.Paren):
        return literal_count(node.this)
    if isinstance(node, exp.Neg):
        inner = literal_count(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def row_bound(node: exp.Expression | None, clamped: bool) -> int | None:
    """The most rows a limit expression can allow, when that is known; None when unbounded.

    ``clamped`` means a negative value cannot mean "no limit" here (PostgreSQL rejects it;
    in SQLite only an enclosing ``MAX(0, ...)`` clamps it).
    """
    if isinstance(node, exp.Paren):
        return row_bound(node.this, clamped)
    value = literal_count(node)
    if value is not None:
        if value >= 0:
            return value
        return 0 if clamped else None
    if isinstance(node, (exp.Least, exp.Greatest)):
        args = [node.this, *node.expressions]
        if isinstance(node, exp.Greatest) and any(literal_count(a) == 0 for a in args):
            clamped = True
        bounds = [row_bound(arg, clamped) for arg in args]
        known = [b for b in bounds if b is not None]
        if isinstance(node, exp.Least) and known and (clamped or len(known) == len(args)):
            return min(known)
        if isinstance(node, exp.Greatest) and len(known) == len(args):
            return max(known)
    return None


def _means_unlimited(node: exp.Expression | None) -> bool:
    """LIMIT ALL, LIMIT NULL and TOP ALL ask for every row."""
    if node is None or isinstance(node, exp.Null):
        return True
    return isinstance(node, exp.Var) and node.name.upper() == "ALL"


def _bounded(count: exp.Expr, ceiling: exp.Expr, analysis: Analysis) -> exp.Expr:
    """``LEAST(count, ceiling)`` for a parameter or expression limit, keeping parameter order."""
    least = exp.Least(this=count.copy(), expressions=[ceiling])
    if _name(analysis) == "sqlite":
        # SQLite reads a negative limit as "no limit": clamp below at zero as well.
        return exp.Greatest(this=exp.Literal.number(0), expressions=[least])
    return least


def _splice_end(analysis: Analysis, max_rows: int) -> str:
    """Insert `` LIMIT n`` after the statement's last token, before any terminator or comment."""
    end = 0
    for token in reversed(analysis.tokens):
        if token.text != ";":
            end = token.end + 1
            break
    sql = analysis.sql
    return f"{sql[:end]} LIMIT {max_rows}{sql[end:]}"


def _splice_literal(sql: str, literal: exp.Literal, text: str) -> str | None:
    meta = literal.meta
    start, end = meta.get("start"), meta.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    if sql[start : end + 1] != literal.this:
        return None
    return f"{sql[:start]}{text}{sql[end + 1 :]}"


def _name(analysis: Analysis) -> str:
    return type(analysis.dialect).__name__.lower()
