"""Row-limit injection: make a query return at most ``max_rows`` rows, never loosening a limit.

The caller's text is kept whenever it can be: no rewrite when the limit already fits, and a
splice of ``LIMIT n`` (or of the one literal that changes) where the dialect allows it.
Only the remaining cases (IRIS ``TOP``, parameter and expression limits, ``LIMIT ALL``,
``FETCH``) regenerate the statement from the tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

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
    if isinstance(root, exp.Values) and _name(analysis) == "postgres":
        target: exp.Expr = root
    elif isinstance(root, exp.Subquery):
        target = _limited_inner(root)
    elif isinstance(root, _QUERY_NODES):
        target = root
    else:
        return None
    limit = target.args.get("limit")
    if isinstance(target, exp.Select) and not target.expressions:
        return None  # PostgreSQL's empty select list: sqlglot would misread an added LIMIT
    if limit is None:
        if splice:
            return _splice_end(analysis, max_rows)
        if target is not root:
            return None  # a parenthesised query where LIMIT cannot follow: the cursor caps
        if not regenerable(analysis):
            return None
        target.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return root.sql(dialect=analysis.dialect)
    count = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
    if count is None and isinstance(limit, exp.Fetch):
        return None  # FETCH FIRST ROW ONLY: one row
    sqlite = _name(analysis) == "sqlite"
    bound = row_bound(count, clamped=not sqlite)
    if bound is not None and bound <= max_rows:
        return None
    literal = literal_count(count)
    if literal is not None and literal > _BIGINT_MAX:
        return None  # the database refuses such a count itself; the cursor caps regardless
    if sqlite and literal is None:
        # A parameter or expression count stays as written: SQLite's own reading of odd
        # values ('7abc', 5.9, NULL: an error) is kept, and the cursor caps the rows (SQLite
        # steps no further than the rows fetched).
        return None
    ceiling = exp.Literal.number(max_rows)
    fetch = isinstance(limit, exp.Fetch)
    if splice and target is root:
        # Replace the count's own text, so the caller's placeholders keep their order
        # (regenerating would move `OFFSET %s LIMIT %s` or SQLite's `LIMIT ?, ?` around).
        if literal is not None or _means_unlimited(count):
            spliced = _splice_count(analysis, lambda _text: str(max_rows), fetch)
        else:
            spliced = _splice_count(
                analysis,
                # FETCH takes a parenthesised expression (PostgreSQL's grammar: c_expr)
                lambda text: (
                    f"({_bounded_text(text, max_rows, analysis)})"
                    if fetch
                    else _bounded_text(text, max_rows, analysis)
                ),
                fetch,
            )
        if spliced is not None:
            return spliced
    if _positional_parameters(analysis) > 1 or not regenerable(analysis):
        return None  # a regenerated text could bind them to other clauses: the cursor caps
    if literal_count(count) is not None or _means_unlimited(count):
        if splice and isinstance(count, exp.Literal):
            spliced = _splice_literal(analysis.sql, count, str(max_rows))
            if spliced is not None:
                return spliced
        replacement: exp.Expr = ceiling
    elif count is not None:
        replacement = _bounded(count, max_rows, analysis)
    else:
        replacement = ceiling
    limit.set("count" if isinstance(limit, exp.Fetch) else "expression", replacement)
    return root.sql(dialect=analysis.dialect)


def _limited_inner(root: exp.Subquery) -> exp.Expr:
    """The node whose limit counts in ``(( ... ))``: the outermost one that has a limit.

    ``(SELECT ... LIMIT 500)`` cannot take a second LIMIT after the parenthesis (PostgreSQL:
    "multiple LIMIT clauses"), so an inner limit is lowered in place instead.
    """
    node: exp.Expr = root
    while isinstance(node, exp.Subquery) and node.args.get("limit") is None:
        node = node.this
    return node if node.args.get("limit") is not None else root


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
    if isinstance(node, exp.Cast):
        return row_bound(node.this, clamped)
    if isinstance(node, exp.Coalesce):  # COALESCE(NULLIF(x, -1), n): x unless x is -1
        first = node.this
        if isinstance(first, exp.Nullif) and literal_count(first.expression) == -1:
            inner = row_bound(first.this, clamped=True)
            rest = [row_bound(arg, clamped) for arg in node.expressions]
            if inner is not None and rest and None not in rest:
                return max(inner, *(r for r in rest if r is not None))
        return None
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


def _bounded(count: exp.Expr, max_rows: int, analysis: Analysis) -> exp.Expr:
    """A parameter or expression limit held at ``max_rows``, keeping parameter order.

    PostgreSQL: ``LEAST(count, n)``. SQLite reads a negative limit as "no limit" and compares
    text above numbers, so there: ``COALESCE(NULLIF(MAX(-1, MIN(CAST(CAST(count AS NUMERIC)
    AS INTEGER), n)), -1), n)``, where -1 (or less) gives ``n`` rows, as the caller asked for
    every row.
    """
    ceiling = exp.Literal.number(max_rows)
    if _name(analysis) != "sqlite":
        bound = count.copy()
        if isinstance(bound, (exp.Placeholder, exp.Parameter)):
            bound = exp.Cast(this=bound, to=exp.DataType.build("BIGINT"))
        return exp.Least(this=bound, expressions=[ceiling])
    # NUMERIC first: SQLite reads LIMIT '1e1' as 10, CAST('1e1' AS INTEGER) as 1.
    as_number = exp.Cast(this=count.copy(), to=exp.DataType.build("NUMERIC"))
    as_integer = exp.Cast(this=as_number, to=exp.DataType.build("INTEGER"))
    least = exp.Least(this=as_integer, expressions=[ceiling])
    floor = exp.Greatest(this=exp.Literal.number(-1), expressions=[least])
    return exp.Coalesce(
        this=exp.Nullif(this=floor, expression=exp.Literal.number(-1)),
        expressions=[ceiling.copy()],
    )


_COUNT_ENDS = frozenset(
    {
        TokenType.OFFSET, TokenType.COMMA, TokenType.FETCH, TokenType.FOR, TokenType.SEMICOLON,
        TokenType.ROW, TokenType.ROWS,
    }
)  # fmt: skip
_FETCH_WORDS = frozenset({TokenType.FIRST, TokenType.NEXT})
_BIGINT_MAX = 2**63 - 1
_POSITIONAL = frozenset({TokenType.PLACEHOLDER, TokenType.PARAMETER, TokenType.MOD})


def _splice_count(
    analysis: Analysis, bounded: Callable[[str], str], fetch: bool = False
) -> str | None:
    """The text with the root query's LIMIT (or FETCH) count replaced by ``bounded(text)``.

    The count is the text after the last LIMIT outside parentheses, up to OFFSET, ``,``
    (then SQLite's ``LIMIT offset, count`` puts the count after it), FOR, ``;`` or the end;
    for FETCH, the text between FIRST/NEXT and ROW/ROWS. None when the tokens do not show
    such a clause.
    """
    tokens = analysis.tokens
    keyword = TokenType.FETCH if fetch else TokenType.LIMIT
    depth = 0
    limit_at = None
    for index in range(len(tokens) - 1, -1, -1):
        kind = tokens[index].token_type
        if kind is TokenType.R_PAREN:
            depth += 1
        elif kind is TokenType.L_PAREN:
            depth -= 1
        elif kind is keyword and depth == 0:
            limit_at = index
            break
    if limit_at is None:
        return None
    if fetch:
        if limit_at + 1 >= len(tokens) or tokens[limit_at + 1].token_type not in _FETCH_WORDS:
            return None
        limit_at += 1  # past FIRST / NEXT
    span = _clause(tokens, limit_at + 1)
    if span is None:
        return None
    start, end = span
    if end + 1 < len(tokens) and tokens[end + 1].token_type is TokenType.COMMA:
        span = _clause(tokens, end + 2)  # LIMIT offset, count
        if span is None:
            return None
        start, end = span
    sql = analysis.sql
    first, last = tokens[start].start, tokens[end].end
    return f"{sql[:first]}{bounded(sql[first : last + 1])}{sql[last + 1 :]}"


def _clause(tokens: tuple[Token, ...], start: int) -> tuple[int, int] | None:
    """The token range of one expression from ``start`` to the next clause at depth 0."""
    depth = 0
    end = None
    for index in range(start, len(tokens)):
        kind = tokens[index].token_type
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
            if depth < 0:
                break
        elif depth == 0 and kind in _COUNT_ENDS:
            break
        end = index
    return None if end is None else (start, end)


def _bounded_text(count: str, max_rows: int, analysis: Analysis) -> str:
    """``_bounded`` for the count's source text (kept as written, placeholders included)."""
    if _name(analysis) != "sqlite":
        if _BARE_PARAMETER.match(count):
            count = f"CAST({count} AS BIGINT)"
        return f"LEAST({count}, {max_rows})"
    number = f"CAST(CAST({count} AS NUMERIC) AS INTEGER)"
    return f"COALESCE(NULLIF(MAX(-1, MIN({number}, {max_rows})), -1), {max_rows})"


# A bare PostgreSQL parameter gets the type LIMIT gives it, bigint: inside LEAST alone it
# would be typed integer, and '5000000000' would fail where the caller's LIMIT works.
_BARE_PARAMETER = re.compile(r"\s*(%s|%\(\w+\)s|\$\d+)\s*$")


def regenerable(analysis: Analysis) -> bool:
    """Whether the tree can be written back as SQL: not when SQLite's ?NNN parameters were
    read under another name (the tree holds that name, not the caller's)."""
    return not (_name(analysis) == "sqlite" and _NUMBERED.search(analysis.sql))


_NUMBERED = re.compile(r"\?\d")


def _positional_parameters(analysis: Analysis) -> int:
    """How many parameters the text may bind by position (an upper bound)."""
    return sum(1 for token in analysis.tokens if token.token_type in _POSITIONAL)


def _splice_end(analysis: Analysis, max_rows: int) -> str:
    """Insert `` LIMIT n`` after the statement's last token, before any terminator or comment;
    before a locking clause (PostgreSQL wants ``LIMIT`` ahead of ``FOR UPDATE``)."""
    end = 0
    for token in reversed(analysis.tokens):
        if token.token_type is not TokenType.SEMICOLON:
            end = token.end + 1
            break
    if analysis.trees and _locked(analysis.trees[0]):
        end = _locking_clause_start(analysis.tokens, end)
    sql = analysis.sql
    return f"{sql[:end]} LIMIT {max_rows}{sql[end:]}"


def _locked(root: exp.Expr) -> bool:
    """Whether the statement ends in a locking clause: sqlglot gives the one after a UNION
    to its last arm."""
    node = root
    while isinstance(node, exp.SetOperation) and not node.args.get("locks"):
        node = node.expression
    return bool(node.args.get("locks"))


def _locking_clause_start(tokens: tuple[Token, ...], end: int) -> int:
    """Where the first ``FOR`` outside parentheses starts (the text before its whitespace)."""
    depth = 0
    previous_end = 0
    for token in tokens:
        kind = token.token_type
        if kind is TokenType.L_PAREN:
            depth += 1
        elif kind is TokenType.R_PAREN:
            depth -= 1
        elif kind is TokenType.FOR and depth == 0:
            return previous_end
        previous_end = token.end + 1
    return end


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
