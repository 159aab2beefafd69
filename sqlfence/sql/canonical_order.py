"""Under row filters, every order a result shows comes from its own values, never the plan's.

PostgreSQL plans a statement from statistics over every row of a table, other tenants'
included, and the plan decides whatever order the statement leaves open (HashAggregate or
Sort, which side of a join drives, which index is read): that order would tell about the
rows the filter hides (an outside attack read from it whether another tenant's rows hold a
value, and how many there are). So the fence closes each place the order shows:

- a top-level query without ORDER BY becomes ``SELECT * FROM (<query>) AS sqlfence_rows
  ORDER BY concat(sqlfence_rows)``: its rows ordered by their own text, the same whatever
  the plan. Its LIMIT and OFFSET move outside, so that they pick rows by that order too; its
  WITH is hoisted (a data-modifying CTE must stay at the top);
- a query with an ORDER BY keeps it and gets the level's own values after it
  (``tie_breakers``), so rows equal on the agent's keys fall one way only;
- so does every inner level whose order is seen: one with LIMIT, OFFSET or DISTINCT ON
  (which rows are kept), ``ARRAY(SELECT ...)`` and the SELECT an INSERT reads (the order of
  the values, and of the serial keys they are given);
- order-sensitive window functions (``tie_breakers.order_windows``) and aggregates
  (``ordered_aggregates``);
- on PostgreSQL, a data-modifying statement's RETURNING rows, which come in the order the
  plan changed them: the statement becomes a CTE read back in order.

What the wrapper cannot hold keeps its own order: SELECT ... INTO, a locking clause. On
SQLite, where a row has no text, the rows are ordered by each column in turn (``ORDER BY 1,
2, ...``), so only where the select list says how many there are (no ``*``).
"""

from __future__ import annotations

from sqlglot import exp

from sqlfence.sql.tie_breakers import (
    GUARDED,
    LISTING,
    PARAMETERS,
    TableWidth,
    level_key,
    listing,
    order_windows,
    text_of,
    width_of,
)
from sqlfence.sql.with_check import Refused

ROWS = "sqlfence_rows"
CHANGED = "sqlfence_changed"
RESERVED = "sqlfence_"  # the rewrite's own names


def refuse_reserved(tree: exp.Expr) -> None:
    """Refuse a statement naming anything ``sqlfence_...``: a column ``AS sqlfence_rows``
    would take the place of the whole row in the rewrite's key."""
    for identifier in tree.find_all(exp.Identifier):
        if identifier.name.lower().startswith(RESERVED):
            raise Refused(
                f"{identifier.name}: names beginning {RESERVED} are the fence's own (its "
                "rewrite orders rows by them); under row filters or masks the agent's "
                "statements do not use them"
            )


def canonical_order(
    tree: exp.Expr, dialect: str = "postgres", table_width: TableWidth | None = None
) -> exp.Expr:
    """``tree``, with each order it shows made total by the rows' own values (on SQLite a
    ``*`` is counted by ``table_width``, the catalog's)."""
    tree = _without_parentheses(tree)
    endless = any(w.args.get("recursive") for w in tree.find_all(exp.With))
    levels = list(tree.find_all(exp.Select, exp.SetOperation))
    for level in reversed(levels):  # the inner levels first: an outer one may wrap them
        if level.meta.get(GUARDED):
            continue
        if endless and _limited(level):
            continue  # a recursive CTE may end only by the LIMIT: no sort may read it all
        if isinstance(level, exp.Select):
            order_windows(level, dialect)
        if level is not tree and _order_seen(level):
            place = exp.null()
            level.replace(place)  # the wrapper takes ``level`` in: mark where it stood
            place.replace(_in_order(level, dialect, table_width))
    if isinstance(tree, (exp.Select, exp.SetOperation)):
        if endless and _limited(tree):
            return tree
        return _in_order(tree, dialect, table_width)
    if dialect == "postgres" and isinstance(tree, exp.DML) and tree.args.get("returning"):
        return _returning_in_order(tree)
    return tree


def _limited(level: exp.Expr) -> bool:
    return bool(level.args.get("limit") or level.args.get("offset"))


def _order_seen(level: exp.Expr) -> bool:
    """Does the order of an inner level's rows show in the result?"""
    if _limited(level):
        return True
    distinct = level.args.get("distinct")  # a set operation's is a flag
    if isinstance(distinct, exp.Distinct) and distinct.args.get("on"):
        return True
    parent = level.parent
    return isinstance(parent, exp.Array) or (
        isinstance(parent, (exp.Insert, exp.Create)) and level.arg_key == "expression"
    )  # the rows an INSERT or CREATE TABLE AS stores come in that order: serial keys, ctid


# Where a parenthesised query stands for a query: its parentheses say nothing (a scalar
# subquery's, or a set operation's arm's, do)
_BARE_PARENTS = (exp.Insert, exp.Create, exp.Array, exp.Subquery)
_MODIFIERS = ("order", "limit", "offset")


def _without_parentheses(tree: exp.Expr) -> exp.Expr:
    """``tree`` with each parenthesised query that stands for a query taken out of its
    parentheses: ``(SELECT ...)`` as the statement, the query of an INSERT, a CREATE TABLE
    AS, ARRAY(...) or another pair of parentheses. One with its own ORDER BY, LIMIT or OFFSET
    (``(SELECT ...) LIMIT 3``) becomes ``SELECT * FROM (SELECT ...) AS sqlfence_rows LIMIT
    3``, a level like any other."""
    for node in reversed(list(tree.find_all(exp.Subquery))):
        parent = node.parent
        if node.args.get("alias") is not None or not (
            parent is None or isinstance(parent, _BARE_PARENTS)
        ):
            continue
        if isinstance(parent, (exp.Insert, exp.Create)) and node.arg_key != "expression":
            continue
        inner = node.this
        if not isinstance(inner, (exp.Select, exp.SetOperation, exp.Subquery)):
            continue
        replacement: exp.Expr = inner
        moved = {key: node.args.get(key) for key in _MODIFIERS if node.args.get(key)}
        if moved or node.args.get("with_"):
            replacement = _rows_of(inner)
            for key, value in {**moved, "with_": node.args.get("with_")}.items():
                if value is not None:
                    replacement.set(key, value)
        if node is tree:
            tree = replacement
        else:
            node.replace(replacement)
    return tree


def _in_order(level: exp.Expr, dialect: str, table_width: TableWidth | None) -> exp.Expr:
    """``level``, or what replaces it, ordered totally."""
    order = level.args.get("order")
    if isinstance(level, exp.Select):
        distinct = level.args.get("distinct")
        on = distinct.args.get("on") if distinct is not None else None
        if order is not None or on is not None:
            keys = level_key(level, dialect, table_width)
            if order is None and on is not None:  # DISTINCT ON: ORDER BY begins with its keys
                leading = on.expressions if isinstance(on, exp.Tuple) else [on]
                order = exp.Order(expressions=_ordered([e.copy() for e in leading], dialect))
                level.set("order", order)
            if keys is not None and order is not None:
                order.set("expressions", [*order.expressions, *_ordered(keys, dialect)])
            return level
        if level.args.get("into") or level.args.get("locks"):  # not wrapped: ordered in place
            keys = level_key(level, dialect, table_width)
            if keys is not None:
                level.set("order", exp.Order(expressions=_ordered(keys, dialect)))
            return level
    if dialect == "postgres":
        return _wrapped(level)
    width = width_of(level, table_width)
    if width is not None:  # SQLite: a row has no text of its own, so each column in turn
        positions: list[exp.Expr] = [exp.Literal.number(n) for n in range(1, width + 1)]
        kept = order.expressions if order is not None else []
        level.set("order", exp.Order(expressions=[*kept, *_ordered(positions, dialect)]))
    return level


def _wrapped(level: exp.Expr) -> exp.Expr:
    """``SELECT * FROM (<level>) AS sqlfence_rows ORDER BY <its keys>, concat(sqlfence_rows)``
    (PostgreSQL): a set operation's ORDER BY names only its own output columns, so its keys
    hold outside too."""
    moved = {key: level.args.get(key) for key in ("with_", "order", "limit", "offset")}
    for key in moved:
        level.set(key, None)
    outer = _rows_of(level)
    kept = moved.pop("order")
    whole = exp.Anonymous(this="concat", expressions=[exp.column(ROWS)])  # record_out, no cast
    keys = [*(kept.expressions if kept is not None else []), exp.Ordered(this=whole)]
    outer.set("order", exp.Order(expressions=keys))
    for key, value in moved.items():
        if value is not None:
            outer.set(key, value)
    return outer


def _rows_of(query: exp.Expr) -> exp.Select:
    """``SELECT * FROM (<query>) AS sqlfence_rows``."""
    alias = exp.TableAlias(this=exp.to_identifier(ROWS))
    return exp.Select(expressions=[exp.Star()]).from_(
        exp.Subquery(this=query, alias=alias), copy=False
    )


def _returning_in_order(statement: exp.Expr) -> exp.Expr:
    """``WITH sqlfence_changed AS (<statement>) SELECT * FROM sqlfence_changed ORDER BY
    concat(sqlfence_changed)``: the RETURNING rows in the order of their own values."""
    with_ = statement.args.get("with_")
    statement.set("with_", None)
    changed = exp.to_identifier(CHANGED)
    cte = exp.CTE(this=statement, alias=exp.TableAlias(this=changed))
    outer = exp.Select(expressions=[exp.Star()]).from_(exp.Table(this=changed.copy()), copy=False)
    whole = exp.Anonymous(this="concat", expressions=[exp.column(CHANGED)])
    outer.set("order", exp.Order(expressions=[exp.Ordered(this=whole)]))
    ctes = [*(with_.expressions if with_ is not None else []), cte]
    recursive = with_.args.get("recursive") if with_ is not None else None
    outer.set("with_", exp.With(expressions=ctes, recursive=recursive))
    return outer


def _ordered(keys: list[exp.Expr], dialect: str) -> list[exp.Expr]:
    """Ascending keys, NULLs where the dialect puts them (sqlglot writes no NULLS clause)."""
    return [exp.Ordered(this=key, nulls_first=dialect == "sqlite") for key in keys]


# Where a listing aggregate's ORDER BY goes: on the value (``this``), on the second argument
# (``expression``), or on the last of ``expressions``
_ON_THIS = (exp.GroupConcat, exp.ArrayAgg, exp.JSONArrayAgg)
_ON_EXPRESSION = (exp.JSONBObjectAgg,)


def ordered_aggregates(tree: exp.Expr) -> None:
    """Give each order-sensitive aggregate a total order (PostgreSQL): by the arguments of
    every such aggregate of its level, so that two of them still line up (``array_agg(id),
    array_agg(note)``), after the agent's own ORDER BY if it has one: ``string_agg(x, ','
    ORDER BY concat(ROW(x, ',')))``. Fed in the plan's order, its result would follow other
    tenants' statistics as an unordered result does. Changes ``tree`` in place; DISTINCT
    aggregates are left alone (PostgreSQL sorts their input by the value), and so are a
    window's (``order_windows`` orders its rows)."""
    levels: dict[int, list[exp.Expr]] = {}
    for node in tree.find_all(*LISTING, exp.Anonymous):
        if (
            listing(node)
            and not isinstance(node.parent, exp.Window)
            and not node.find(exp.Distinct)
        ):
            levels.setdefault(id(node.parent_select), []).append(node)
    for aggregates in levels.values():
        arguments = [arg for node in aggregates for arg in _arguments(node)]
        if any(arg.find(*PARAMETERS) for arg in arguments):  # a parameter is bound once
            fields: list[exp.Expr] = [c for arg in arguments for c in arg.find_all(exp.Column)]
        else:
            fields = arguments
        if not fields:
            continue
        key = text_of([field.copy() for field in fields])
        for aggregate in aggregates:
            if isinstance(aggregate, (exp.Anonymous, exp.JSONObjectAgg)):
                if aggregate.expressions:
                    *rest, last = aggregate.expressions
                    aggregate.set("expressions", [*rest, _ordered_by(last, key)])
                continue
            place = "this" if isinstance(aggregate, _ON_THIS) else "expression"
            last = aggregate.args.get(place)
            if last is not None:
                aggregate.set(place, _ordered_by(last, key))


def _ordered_by(last: exp.Expr, key: exp.Expr) -> exp.Expr:
    """``last`` ordered by its own ORDER BY, then by ``key``."""
    own = last if isinstance(last, exp.Order) else None
    value = own.this if own is not None else last
    kept = own.expressions if own is not None else []
    return exp.Order(this=value, expressions=[*kept, exp.Ordered(this=key.copy())])


def _arguments(aggregate: exp.Expr) -> list[exp.Expr]:
    """An aggregate's arguments (a literal separator tells no rows apart)."""
    found = []
    for key, value in aggregate.args.items():
        if key == "this" and isinstance(aggregate, exp.Anonymous):
            continue  # the function's own name
        for arg in value if isinstance(value, list) else [value]:
            if isinstance(arg, exp.Expr) and not (
                key == "separator" and isinstance(arg, exp.Literal)
            ):
                found.append(arg.this if isinstance(arg, exp.Order) else arg)
    return found
