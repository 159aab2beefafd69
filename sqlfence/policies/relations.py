"""Relations a statement names that the connection's catalog does not hold as tables or
views: under row filters or masks they are not read (PostgreSQL). A sequence is one: its
``last_value`` counts every tenant's ids. And a name PostgreSQL resolves otherwise than the
fence does: an unqualified ``pg_x`` is the system catalog's when it has one (pg_catalog is
searched first), else the default schema's; the fence cannot tell which without the
catalog's full list, so an unqualified name that the owner also gave a relation is refused
(name it with its schema)."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from sqlfence.policies.tables import is_catalog_table
from sqlfence.sql.analysis import StatementFacts

_CATALOG = "pg_catalog."


def unknown_relations(
    facts: StatementFacts,
    known: Collection[str],
    default_schema: str | None,
    protecting: bool,
) -> Iterator[tuple[str, str]]:
    """(rule key, why) for each relation read that the fence cannot judge."""
    shadowing = f"{default_schema}." if default_schema else ""
    temporary = {name.partition(".")[2] for name in known if name.startswith("pg_temp")}
    for table in sorted(facts.tables):
        if table.startswith(_CATALOG) and f"{shadowing}{table[len(_CATALOG) :]}" in known:
            yield (
                "allow_system_catalog",
                f"{table[len(_CATALOG) :]} names both a relation of {default_schema} and, "
                "where the system catalog has one, the catalog's (PostgreSQL searches "
                f"pg_catalog first): name it with its schema ({shadowing}"
                f"{table[len(_CATALOG) :]})",
            )
        elif (
            protecting
            and known
            and not facts.locks  # FOR UPDATE OF o names an alias (a sequence cannot be locked)
            and table not in known
            and table not in facts.written
            and table.partition(".")[2] not in temporary  # the agent's own temporary table
            and not is_catalog_table("postgres", table)
        ):
            yield (
                "row_filters",
                f"{table} is not a table or view the connection knows (a sequence's "
                "last_value counts every tenant's ids): under row filters or masks only the "
                "catalog's tables and views are read",
            )
