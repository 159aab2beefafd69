"""System columns of filtered and masked tables: refused wherever a statement may read one."""

from __future__ import annotations

from sqlglot import exp

from sqlfence.sql.names import Namer
from sqlfence.sql.with_check import Refused

# Columns every row has where it is stored: its place (SQLite's rowid, PostgreSQL's ctid), the
# transactions that wrote it, its partition. A filtered table's tell where hidden rows sit
# (rowids 2, 4 and 5 missing among the agent's), how many there are and who wrote them.
SYSTEM_COLUMNS = {
    "sqlite": frozenset({"rowid", "_rowid_", "oid"}),
    "postgres": frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}),
}

# The transactions that wrote a row: of any table, they count every session's transactions
# (a row the agent just wrote has the newest id), so none is read under filters or masks
TRANSACTION_COLUMNS = {"postgres": frozenset({"xmin", "xmax", "cmin", "cmax"})}


def refuse_system_columns(
    tree: exp.Expr, namer: Namer, wrapped: set[str], targets: set[str]
) -> None:
    """Refuse a statement that may read a system column of a filtered or masked table: a
    derived table has none (SQLite reads NULL, silently), and a written table's, in
    RETURNING, SET or WHERE, tells where other tenants' rows are stored."""
    names = SYSTEM_COLUMNS.get(namer.dialect_name, frozenset())
    for insert in tree.find_all(exp.Insert):  # INSERT INTO docs (rowid, ...): is 2 taken?
        listed = insert.this
        if not isinstance(listed, exp.Schema) or not isinstance(listed.this, exp.Table):
            continue
        if reference(listed.this, namer) not in targets:
            continue
        for item in listed.expressions:
            if isinstance(item, exp.Identifier) and item.name.lower() in names:
                raise Refused(
                    f"{item.name} of a table with a row filter cannot be written: whether a "
                    "value is taken tells where other tenants' rows are"
                )
    for dot in tree.find_all(exp.Dot):  # (orders).ctid: a field of the whole row
        if dot.expression.name.lower() in names:
            raise Refused(
                f"{dot.sql(dialect=namer.dialect_name)}: a system column of a row cannot be "
                "read under row filters or masks (it tells where rows are stored)"
            )
    for column in tree.find_all(exp.Column):
        if column.name.lower() not in names:
            continue
        inner = column.find_ancestor(exp.Select)
        around = inner.parent if inner is not None else None
        alias = around.args.get("alias") if isinstance(around, exp.Subquery) else None
        if isinstance(alias, exp.TableAlias) and namer.identifier(alias.this) in wrapped:
            continue  # a column of the fence's own derived table (a table may have an oid)
        qualifier = column.args.get("table")
        if qualifier is None or namer.identifier(qualifier) in wrapped | targets:
            raise Refused(
                f"{column.sql(dialect=namer.dialect_name)} of a table with a row filter or "
                "masks cannot be read: it tells where rows are stored, other tenants' among "
                "them; select the table's key instead"
            )


def reference(table: exp.Table, namer: Namer) -> str:
    """How a statement's columns name ``table``: its alias, else its own name."""
    alias = table.args.get("alias")
    named = alias.this if isinstance(alias, exp.TableAlias) and alias.this else table.this
    return namer.identifier(named) or ""
