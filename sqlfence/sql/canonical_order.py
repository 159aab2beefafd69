"""Under row filters, a result the agent did not order comes in an order of its own values.

PostgreSQL plans a statement from statistics over every row of a table, other tenants'
included, and the plan decides the order of a result that has no ORDER BY (HashAggregate or
Sort, which side of a join drives): that order would tell about the rows the filter hides
(an outside attack read from it whether another tenant's rows hold a value). So a top-level
query without ORDER BY becomes ``SELECT * FROM (<query>) AS sqlfence_rows ORDER BY
concat(sqlfence_rows)``: its rows ordered by their own text, the same whatever the
plan. Its LIMIT and OFFSET move outside, so that they pick rows by that order too; its WITH
is hoisted (a data-modifying CTE must stay at the top). A query with an ORDER BY keeps its
own (rows equal on its keys may still fall either way), and so do what the wrapper cannot
hold: SELECT ... INTO, a locking clause, DISTINCT ON. On SQLite, where a row has no text,
the rows are ordered by each column in turn (``ORDER BY 1, 2, ...``), so only where the select
list says how many there are (no ``*``).
"""

from __future__ import annotations

from sqlglot import exp

ROWS = "sqlfence_rows"


def canonical_order(tree: exp.Expr, dialect: str = "postgres") -> exp.Expr:
    """``tree``, or the query wrapped so that its rows come ordered by their own values."""
    if not isinstance(tree, (exp.Select, exp.SetOperation)) or tree.args.get("order"):
        return tree
    width = _width(tree) if dialect == "sqlite" else None
    if dialect == "sqlite" and width is None:
        return tree
    distinct = tree.args.get("distinct")
    if isinstance(tree, exp.Select) and (
        tree.args.get("into") or tree.args.get("locks") or (distinct and distinct.args.get("on"))
    ):
        return tree
    moved = {key: tree.args.get(key) for key in ("with_", "limit", "offset")}
    for key in moved:
        tree.set(key, None)
    rows = exp.to_identifier(ROWS)
    outer = exp.Select(expressions=[exp.Star()]).from_(
        exp.Subquery(this=tree, alias=exp.TableAlias(this=rows)), copy=False
    )
    if width is not None:  # SQLite: a row has no text of its own, so each column in turn
        keys: list[exp.Expr] = [exp.Literal.number(n) for n in range(1, width + 1)]
    else:
        # the row's text as PostgreSQL writes it (record_out), by no cast: a cast to text may
        # be one the owner defined, and the fence runs none of the owner's code under filters
        keys = [exp.Anonymous(this="concat", expressions=[exp.column(ROWS)])]  # no %: pyformat
    outer.set("order", exp.Order(expressions=[exp.Ordered(this=key) for key in keys]))
    for key, value in moved.items():
        if value is not None:
            outer.set(key, value)
    return outer


def _width(tree: exp.Expr) -> int | None:
    """How many columns a query returns, when its select list says so (no ``*``)."""
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return None
    items = tree.expressions
    if any(isinstance(item, exp.Star) or isinstance(item.unalias(), exp.Star) for item in items):
        return None
    if any(isinstance(item, exp.Column) and isinstance(item.this, exp.Star) for item in items):
        return None  # t.*
    return len(items) or None


# Aggregates whose result is in the order of their input rows: a list, a text, a document
_LISTING = (exp.GroupConcat, exp.ArrayAgg, exp.JSONArrayAgg)
_LISTING_NAMES = frozenset({"jsonb_agg", "xmlagg", "json_object_agg", "jsonb_object_agg"})


def ordered_aggregates(tree: exp.Expr) -> None:
    """Give each order-sensitive aggregate without an ORDER BY of its own one by its own
    value (PostgreSQL): ``string_agg(x, ',' ORDER BY concat(x))``; in the plan's order, its
    result would follow other tenants' statistics as an unordered result does. Changes
    ``tree`` in place; DISTINCT aggregates are left alone (their ORDER BY must be an
    argument, and they are sorted to remove duplicates)."""
    for node in list(tree.find_all(*_LISTING, exp.Anonymous)):
        if isinstance(node, exp.Anonymous):
            if str(node.this).lower() not in _LISTING_NAMES or not node.expressions:
                continue
            first, *rest = node.expressions
            if not isinstance(first, (exp.Order, exp.Distinct)):
                node.set("expressions", [_by_itself(first), *rest])
            continue
        value = node.this
        if value is None or isinstance(value, (exp.Order, exp.Distinct)):
            continue
        node.set("this", _by_itself(value))


def _by_itself(value: exp.Expr) -> exp.Order:
    key = exp.Anonymous(this="concat", expressions=[value.copy()])
    return exp.Order(this=value.copy(), expressions=[exp.Ordered(this=key)])
