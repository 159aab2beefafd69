"""Trusting a row-filter or mask rewrite only as the fence reads it back (``row_filters.py``).

The rewritten text is parsed again, and every read of a filtered or masked table in it must
be the one table of ``(SELECT <*, or its columns masked> FROM table WHERE <its filters> <the
planner fence>)``, every UPDATE or DELETE of a filtered one must start its WHERE with the
filters, and no write may read or write a masked column: else the statement is denied.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlfence.sql.masks import (
    MaskLookup,
    TableMasks,
    check_masked_writes,
    not_reading,
    read_back,
)
from sqlfence.sql.names import Namer
from sqlfence.sql.roles import role_of
from sqlfence.sql.row_filters import (
    FENCES,
    FiltersFor,
    RowFilter,
    combined,
    made_new,
    qualified,
)
from sqlfence.sql.scopes import CteScopes
from sqlfence.sql.sqlite_reading import called_table
from sqlfence.sql.with_check import Refused


def guarded_read(
    table: exp.Table,
    filters: tuple[RowFilter, ...],
    dialect: Dialect,
    expected: dict[tuple[str, ...], str] | None = None,
    masks: TableMasks | None = None,
    namer: Namer | None = None,
) -> bool:
    """Whether ``table`` is the one table of ``(SELECT * FROM table WHERE <filters>)`` (its
    masked columns' list in place of ``*`` when it has ``masks``, no WHERE without filters).

    ``expected`` keeps the filter texts already written, by keys and table name."""
    from_ = table.parent
    select = from_.parent if isinstance(from_, exp.From) else None
    if not isinstance(select, exp.Select) or not isinstance(select.parent, exp.Subquery):
        return False
    if masks is None or namer is None:
        if [type(e) for e in select.expressions] != [exp.Star]:
            return False
    elif select.expressions != read_back(masks, namer):
        return False
    fence = FENCES.get(type(dialect).__name__.lower()) if filters or masks else None
    wanted = {
        "expressions",
        "from_",
        *(("where",) if filters else ()),
        *((fence[0],) if fence else ()),
    }
    if {key for key, value in select.args.items() if value} != wanted:
        return False
    if fence is not None and select.args[fence[0]] != fence[1]():
        return False
    if not filters:
        return True
    where = select.args["where"].this
    key = (*(f.key for f in filters), table.this.sql(dialect=dialect))
    known = expected.get(key) if expected is not None else None
    if known is None:
        known = combined(filters, table.this).sql(dialect=dialect)
        if expected is not None:
            expected[key] = known
    return bool(where.sql(dialect=dialect) == known)


def unfiltered(
    tree: exp.Expr,
    namer: Namer,
    filters_for: FiltersFor,
    dialect: Dialect,
    masking: MaskLookup | None = None,
) -> str | None:
    """A filtered table ``tree`` reads or changes without its filter, a masked table it reads
    unmasked or whose masked columns a write touches, or None.

    Run on the rewritten text as parsed again: the rewrite is trusted only as the fence
    reads it back.
    """
    scopes = CteScopes(namer)
    expected: dict[tuple[str, ...], str] = {}
    if masking is not None:
        try:
            check_masked_writes(tree, namer, masking, scopes)
        except Refused as refused:
            return str(refused)
    for node in tree.find_all(exp.Table):
        if isinstance(node.parent, exp.Lock):
            continue  # FOR UPDATE OF orders: the FROM item's name, not a read
        if not isinstance(node.this, exp.Identifier) or node.arg_key == "indexed":
            called = called_table(node) if namer.dialect_name == "sqlite" else None
            if called is not None:
                name = namer.table(called)
                if filters_for(name) or (masking is not None and masking.masks_for(name)):
                    return name  # a virtual table read by its call: never rewritten
            continue
        statement, role = role_of(node)
        if role == "read" and scopes.is_reference(node):
            continue
        name = namer.table(node)
        filters = filters_for(name)
        masks = masking.masks_for(name) if masking is not None else None
        if masks is not None and role == "other" and not filters:
            if not not_reading(node, statement, role):
                return name
            continue
        if masks is not None and role == "read":
            if not guarded_read(node, filters, dialect, expected, masks, namer):
                return name
            continue
        if not filters or (role == "target" and isinstance(statement, exp.Insert)):
            continue
        if made_new(node, statement, role, filters) and (masks is None or masks.unusable):
            continue
        if role == "read":
            if not guarded_read(node, filters, dialect, expected):
                return name
            continue
        alias = node.args.get("alias")
        label = alias.this if isinstance(alias, exp.TableAlias) and alias.this else node.this
        where = statement.args.get("where")
        if not isinstance(where, exp.Where):
            return name
        found = [part.sql(dialect=dialect) for part in _conjuncts(where.this)]
        wanted = [qualified(f.condition, label).unnest().sql(dialect=dialect) for f in filters]
        if found[: len(wanted)] != wanted:
            return name
    return None


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The parts of an AND chain, parentheses taken off each (not looked into)."""
    if isinstance(condition, exp.And):
        return list(condition.flatten())
    return [condition.unnest()]
