"""A policy's row filters as PostgreSQL row security policies (no I/O here).

The fence rewrites every statement so that it sees only the agent's rows; in a PostgreSQL
sandbox the server is asked to hold the same line for a raw connection with the sandbox's
credentials. Each filtered table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and two
policies with the filter, its identity values written in as the fence writes them:

- ``sqlfence_row_filter``, PERMISSIVE: without a permissive policy no row is visible at all;
- ``sqlfence_row_filter_only``, RESTRICTIVE: a snapshot may bring permissive policies of its
  own (``USING (true)``), which PostgreSQL ORs with ours; a restrictive one is ANDed with
  them all, so no other policy can widen the filter.

Both are ``TO PUBLIC``, so that a pg_dump of the database names no sandbox role (a policy
naming a dropped role would fail a later pg_restore); only the sandbox's roles can reach the
database, and superusers bypass row security whatever it says (the admin's snapshots,
digests and dumps see every row: an admin that is no superuser needs ``BYPASSRLS``).

Which filter applies to which table is the fence's own matching (``RowFilters``), so the two
layers cannot disagree on a key. A filter whose placeholder has no value (a sandbox without a
tenant) becomes ``USING (false)``, as the fence denies every statement on that table.

What holds depends on who owns the table. PostgreSQL lets a table's owner turn its row
security off (``NO FORCE``, ``DISABLE``, ``DROP POLICY``). In a read-only sandbox the data
belongs to the NOLOGIN owner role (``postgres_grants``), so the login role cannot: a true
second layer. In a read-write sandbox the login role loads the snapshot and owns what it
makes, so the policies hold only until the agent, on a raw connection, removes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlfence.policies.model import Policy
from sqlfence.policies.row_filters import RowFilters
from sqlfence.sql.names import Namer
from sqlfence.sql.row_filters import Identity

PERMISSIVE = "sqlfence_row_filter"
RESTRICTIVE = "sqlfence_row_filter_only"

# Every ordinary and partitioned table with its columns, and whether sqlfence's policies are
# on it (run as the admin inside the sandbox's database).
TABLES = """
SELECT n.nspname, c.relname, array_agg(a.attname::text ORDER BY a.attnum),
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
GROUP BY n.nspname, c.relname, c.oid ORDER BY 1, 2"""


@dataclass(frozen=True)
class Table:
    """One table of the sandbox's database, as the catalog has it."""

    schema: str
    name: str
    columns: frozenset[str]
    secured: bool  # sqlfence's policies are on it now


def secure(backend: object, name: str, policy: Policy, agent_id: str, tenant: str | None) -> None:
    """The sandbox's call after a restore or a new identity: the backend's ``secure_rows``
    where it has one (PostgreSQL's); other backends have no second layer for row filters."""
    secure_rows = getattr(backend, "secure_rows", None)
    if secure_rows is not None:
        secure_rows(name, policy, agent_id, tenant)


def table(row: tuple[Any, ...]) -> Table:
    """A row of ``TABLES`` as a Table."""
    schema, name, columns, secured = row
    return Table(schema, name, frozenset(columns), bool(secured))


def conditions(policy: Policy, identity: Identity, tables: list[Table]) -> dict[Table, str]:
    """Each filtered table -> the PostgreSQL condition of its policies (its filters ANDed)."""
    if not policy.row_filters:
        return {}
    dialect = Dialect.get_or_raise("postgres")
    namer = Namer(dialect, "public")
    columns = {f"{t.schema}.{t.name}": frozenset(c.lower() for c in t.columns) for t in tables}
    matcher = RowFilters(policy, identity, dialect, namer, columns, {})
    found = {}
    for item in tables:
        filters = matcher.filters_for(f"{item.schema}.{item.name}")
        if not filters:
            continue
        if any(f.unusable for f in filters):
            found[item] = "false"  # the fence denies the table outright: no row at all
            continue
        condition = exp.and_(*(f.condition.copy() for f in filters))
        found[item] = condition.sql(dialect="postgres")
    return found


def statements(sql: Any, tables: list[Table], filtered: Mapping[Table, str]) -> list[Any]:
    """What makes the database's row security match ``filtered``: sqlfence's old policies
    dropped, the new ones made, row security switched off where sqlfence alone had it on."""
    out: list[Any] = []
    for item in tables:
        target = sql.Identifier(item.schema, item.name)
        if item.secured:
            out += [
                sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(name), target)
                for name in (PERMISSIVE, RESTRICTIVE)
            ]
        condition = filtered.get(item)
        if condition is None:
            if item.secured:
                out += [
                    sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(target),
                    sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(target),
                ]
            continue
        out += [
            sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target),
            sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(target),
        ]
        # The condition is sqlglot's writing of a validated filter with checked literals
        # (sql/row_filters.bind_literal): the same text the fence sends in its rewrites.
        for name, kind in ((PERMISSIVE, "PERMISSIVE"), (RESTRICTIVE, "RESTRICTIVE")):
            out.append(
                sql.SQL(
                    "CREATE POLICY {} ON {} AS " + kind + " FOR ALL TO PUBLIC "
                    "USING ({}) WITH CHECK ({})"
                ).format(sql.Identifier(name), target, sql.SQL(condition), sql.SQL(condition))
            )
    return out
