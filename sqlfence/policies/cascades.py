"""Writes the database goes on with: a foreign key's ON DELETE or ON UPDATE action writes
another table, which the statement never names."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from sqlfence.policies.masks import ColumnMasks
from sqlfence.policies.rules import Violation

if TYPE_CHECKING:
    from sqlfence.policies.engine import Guard


def cascading(
    guard: Guard, masks: ColumnMasks | None, written: Collection[str]
) -> tuple[Violation, ...]:
    """A write whose foreign keys' actions make the database write a filtered or masked
    table (a CASCADE renaming tenant ids moved every row), or a table whose own foreign
    keys it then checks against a masked column's raw values (an update that fails for
    every address but the real one)."""
    for table in sorted(written):
        for reached in sorted(guard.server_code.cascades.get(table, ())):
            if guard.protected(reached):
                key = "row_filters" if guard.row_filtered(reached) else "masked_columns"
                why = "which the row filter and masks cannot limit"
            elif masks is not None and (
                masks.references_masked(reached) or masks.referenced_by_masked(reached)
            ):
                key = "masked_columns"
                why = "whose foreign keys would compare a masked column's raw values"
            else:
                continue
            message = (
                f"a write of {table} makes the database write {reached} (a foreign key's "
                f"ON DELETE or ON UPDATE action), {why}"
            )
            return (Violation(key, message, guard.policy.origin(key)),)
    return ()
