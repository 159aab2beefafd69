"""With-check for row filters: INSERT and UPDATE may not write a row the filter would hide.

The fence can check what it can see: a filter made of ``column = value`` equalities
(``tenant_id = :tenant``) pins those columns, and every written value for a pinned column
must be that very literal. Anything else (a parameter, an expression, a column left to its
default, a filter with other conditions) cannot be checked from the text and is refused:
only the database (PostgreSQL row security ``WITH CHECK``) could enforce it there.
Upserts that could touch another tenant's row (``ON CONFLICT DO UPDATE``, SQLite's
``INSERT OR REPLACE``) are refused; ``DO NOTHING`` and ``OR IGNORE`` are not, and like any
unique constraint they can tell that a key exists (the database layer cannot hide that either).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlglot import exp

if TYPE_CHECKING:
    from sqlfence.sql.row_filters import RowFilter


class Refused(Exception):
    """The statement cannot be filtered safely; ``str()`` says why."""


def _refused(message: str) -> Refused:
    return Refused(message)


def _pins(name: str, filters: tuple[RowFilter, ...]) -> dict[str, exp.Literal]:
    pins: dict[str, exp.Literal] = {}
    for each in filters:
        if each.pinned is None:
            raise _refused(
                f"cannot check rows written to {name} against its row filter {each.key} "
                f"({each.condition.sql()}): only column = value filters can be checked, so "
                "writes to it are refused (the database's row security must enforce others)"
            )
        pins.update(each.pinned)
    return pins


def _same(value: exp.Expr, pinned: exp.Literal) -> bool:
    while isinstance(value, (exp.Paren, exp.Alias)):
        value = value.this
    return (
        isinstance(value, exp.Literal)
        and value.is_string == pinned.is_string
        and value.this == pinned.this
    )


def _wrong(name: str, column: str, value: exp.Expr, pinned: exp.Literal) -> Refused:
    return _refused(
        f"{name}.{column} must be written as {pinned.sql()} (its row filter), not "
        f"{value.sql()}: the row would be hidden from this agent"
    )


def check_insert(insert: exp.Insert, name: str, filters: tuple[RowFilter, ...]) -> None:
    """Refuse an INSERT into a filtered table unless every row visibly satisfies the filter."""
    pins = _pins(name, filters)
    alternative = str(insert.args.get("alternative") or "").upper()
    if alternative and alternative != "IGNORE":
        raise _refused(f"INSERT OR {alternative} into {name} could replace another tenant's row")
    conflict = insert.args.get("conflict")
    if conflict is not None and "UPDATE" in str(conflict.args.get("action") or "").upper():
        raise _refused(f"ON CONFLICT DO UPDATE on {name} could update another tenant's row")
    schema = insert.this
    if not isinstance(schema, exp.Schema) or not schema.expressions:
        raise _refused(
            f"an INSERT into {name} must name its columns, so the fence can check "
            f"{', '.join(sorted(pins))} against the row filter"
        )
    columns = [part.name.lower() for part in schema.expressions]
    missing = sorted(set(pins) - set(columns))
    if missing:
        raise _refused(
            f"an INSERT into {name} must write {', '.join(missing)} (its row filter "
            "pins it); a default could hide the row from this agent"
        )
    source = insert.expression
    for row in _rows(source, name):
        if len(row) != len(columns):
            raise _refused(f"an INSERT into {name} writes rows of another width than its columns")
        for column, value in zip(columns, row, strict=True):
            pinned = pins.get(column)
            if pinned is not None and not _same(value, pinned):
                raise _wrong(name, column, value, pinned)


def _rows(source: exp.Expr | None, name: str) -> list[list[exp.Expr]]:
    """The value expressions of each row an INSERT writes, when the text shows them."""
    if isinstance(source, exp.Values):
        rows = []
        for row in source.expressions:
            if not isinstance(row, exp.Tuple):
                raise _refused(f"cannot see the rows written to {name}")
            rows.append(list(row.expressions))
        return rows
    if isinstance(source, exp.Subquery):
        return _rows(source.this, name)
    if isinstance(source, exp.SetOperation):
        return _rows(source.this, name) + _rows(source.expression, name)
    if isinstance(source, exp.Select):
        if any(isinstance(e, exp.Star) for e in source.expressions):
            raise _refused(
                f"INSERT INTO {name} SELECT *: name the values, so the fence can check them"
            )
        return [list(source.expressions)]
    raise _refused(f"cannot see the rows written to {name}")


def check_update(
    update: exp.Update,
    name: str,
    filters: tuple[RowFilter, ...],
    generated: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """Refuse an UPDATE of a filtered table that could move a row out of the filter.

    ``generated`` maps the table's generated columns to what they are computed from: setting
    a column a filter's generated column is computed from changes that column too."""
    read = {column.name.lower() for f in filters for column in f.condition.find_all(exp.Column)}
    assigned = {}
    for assignment in update.expressions:
        if not isinstance(assignment, exp.EQ) or not isinstance(assignment.this, exp.Column):
            raise _refused(f"cannot see which columns of {name} the UPDATE sets")
        assigned[assignment.this.name.lower()] = assignment.expression
    for column in sorted(read):
        moved = sorted((generated or {}).get(column, frozenset()) & assigned.keys())
        if moved:
            raise _refused(
                f"the UPDATE sets {name}.{moved[0]}, from which {column} (read by its row "
                "filter) is computed: the row could move out of the filter"
            )
    touched = sorted(read & assigned.keys())
    if not touched:
        return  # the filter reads none of the columns set: every row stays as visible
    pins = _pins(name, filters)
    for column in touched:
        pinned = pins.get(column)
        if pinned is None or not _same(assigned[column], pinned):
            raise (
                _wrong(name, column, assigned[column], pinned)
                if pinned is not None
                else (_refused(f"the UPDATE sets {name}.{column}, which its row filter reads"))
            )
