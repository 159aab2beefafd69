"""SQLite's readings that sqlglot's tree does not hold: fixed in the tree before analysis.

``x IN orders`` (no parentheses) is SQLite's short form of ``x IN (SELECT * FROM orders)``,
and ``x IN json_each(...)`` of ``x IN (SELECT * FROM json_each(...))``: the right-hand side
is a table (or a table-valued function), never a column. sqlglot reads the name as a column,
so a fence reading its tree would see no table there, and a denied or filtered table could be
read that way. The tree is given SQLite's reading instead: the explicit subquery, which every
rule, and the row-filter rewrite, then sees like any other read of the table.
"""

from __future__ import annotations

from sqlglot import exp


def with_sqlite_readings(tree: exp.Expr) -> exp.Expr:
    """``tree`` with each ``IN <table>`` and ``IN <table function>`` made the subquery
    SQLite reads it as (changed in place; returned for convenience)."""
    for node in list(tree.find_all(exp.In)):
        field = node.args.get("field")
        if field is None:
            continue
        source = _as_source(field)
        if source is None:
            continue
        node.set("field", None)
        select = exp.Select(expressions=[exp.Star()]).from_(source, copy=False)
        node.set("query", exp.Subquery(this=select))
    return tree


def _as_source(field: exp.Expr) -> exp.Expr | None:
    """The table (or table-valued function) an ``IN`` operand names, as a FROM item."""
    if isinstance(field, exp.Column) and isinstance(field.this, exp.Identifier):
        catalog = field.args.get("catalog")
        if catalog is not None:  # a.b.c.d: no such table name in SQLite; leave it an error
            return None
        return exp.Table(this=field.this.copy(), db=_copy(field.args.get("table")))
    if isinstance(field, exp.Func):
        return field.copy()
    return None


def _copy(part: exp.Expr | None) -> exp.Expr | None:
    return part.copy() if part is not None else None


# SQLite's own table-valued functions (and its extensions'): a call of any other name in a
# FROM clause is a virtual table's (``docs('query')`` is FTS5's ``docs WHERE docs MATCH
# 'query'``: the arguments constrain its hidden columns). pragma_* are the catalog's.
TABLE_FUNCTIONS = frozenset(
    {
        "json_each",
        "json_tree",
        "jsonb_each",
        "jsonb_tree",
        "generate_series",
        "carray",
        "dbstat",
        "sqlite_dbpage",
        "sqlite_stmt",
    }
)


def called_table(table: exp.Table) -> exp.Table | None:
    """The table a FROM item's function call reads (``docs('q')``, ``main.docs('q')``), as a
    plain table reference; None for one of SQLite's table-valued functions."""
    call = table.this
    if not isinstance(call, exp.Func):
        return None
    name = call.name if isinstance(call, exp.Anonymous) else call.sql_name()
    if not name or name.lower() in TABLE_FUNCTIONS or name.lower().startswith("pragma_"):
        return None
    return exp.Table(this=exp.Identifier(this=name), db=_copy(table.args.get("db")))
