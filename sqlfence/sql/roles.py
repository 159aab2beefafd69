"""What a table reference does in its statement: read, be DML's target, or something else.

The row-filter and mask rewrites (``row_filters.py``, ``masks.py``) treat a table by its
role: a read is wrapped in a derived table, a DML target is checked and restricted, and a
filtered or masked table named by DDL, MERGE, COPY and the like is refused.
"""

from __future__ import annotations

from sqlglot import exp

_DML = (exp.Insert, exp.Update, exp.Delete)
# Statements that name a table for something other than reading or writing its rows: a
# filtered table there is refused (TRUNCATE or DROP would reach every tenant's rows).
_OTHER_TARGETS = (
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Merge,
    exp.Copy,
    exp.Into,
    exp.Command,
)


def role_of(table: exp.Table) -> tuple[exp.Expr, str]:
    """The statement a table belongs to, and whether it reads, is DML's target, or other."""
    child: exp.Expr = table
    node = table.parent
    while isinstance(node, exp.Schema):
        child, node = node, node.parent
    if isinstance(node, _DML) and child.arg_key == "this":
        return node, "target"
    if isinstance(node, exp.Delete) and child.arg_key == "tables":
        return node, "other"  # MySQL's multi-table DELETE: not rewritten
    walker: exp.Expr | None = table
    while walker is not None:
        if isinstance(walker, _OTHER_TARGETS):
            if isinstance(walker, exp.Create) and child is not walker.this:
                # CREATE TABLE ... AS SELECT reads; but a view's text would keep this
                # tenant's literal for whoever reads it later: refused too.
                kind = str(walker.args.get("kind") or "").upper()
                if kind == "TABLE" and table is not walker.this and not _under(table, walker.this):
                    return walker, "read"
            return walker, "other"
        walker = walker.parent
    return table, "read"


def _under(node: exp.Expr, ancestor: exp.Expr | None) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False
