"""Resolve the tables that IRIS implicit joins (`Company->Name`) read without naming them."""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from sqlfence import databases
from sqlfence.sql.dialects.iris_expressions import ImplicitJoin

TableName = tuple[str, str]
_SCOPES = (exp.Select, exp.Update, exp.Delete)


def implicit_join_targets(
    tree: exp.Expr,
    catalog: Mapping[str, str] | None,
    default_schema: str = databases.IRIS.default_schema,
) -> tuple[set[TableName], list[str]]:
    """Return the tables that the arrows in `tree` reach, and the arrows nobody can resolve.

    `catalog` maps a reference column `"Schema.Table.Column"` (any case) to the table it
    points to, `"Schema.Table"` (an unqualified value takes `default_schema`). The left side
    of an arrow belongs to the table its qualifier names (alias or table name, looked up in
    the enclosing statements' FROM, JOIN, UPDATE or DELETE targets), or, unqualified, to the
    only table there (or the only one with a catalog entry for that column). Chains
    `a->b->c` resolve step by step.

    Returns the reached `(schema, table)` pairs, spelled as in the catalog, and one
    description per arrow whose target is unknown. A caller enforcing a table policy must
    refuse a statement with any unknown arrow, since it may read any table.
    """
    references = {key.lower(): value for key, value in (catalog or {}).items()}
    resolver = _Resolver(references, default_schema)
    for arrow in tree.find_all(ImplicitJoin):
        resolver.reached(arrow)
    return resolver.targets, resolver.unknown


class _Resolver:
    def __init__(self, references: dict[str, str], default_schema: str) -> None:
        self.references = references
        self.default_schema = default_schema
        self.targets: set[TableName] = set()
        self.unknown: list[str] = []
        self._done: dict[int, TableName | None] = {}

    def reached(self, arrow: exp.Expr) -> TableName | None:
        """The table `arrow` reads its field from, or None (noted once) when unknown."""
        key = id(arrow)
        if key in self._done:
            return self._done[key]
        left = arrow.this
        target = None
        if isinstance(left, ImplicitJoin):
            # a chain: the field reached by the inner arrow is the reference column here
            owner = self.reached(left)
            if owner is not None:
                target = self._follow(arrow, owner, left.expression.name)
        elif isinstance(left, exp.Column):
            owner = self._owner(left)
            if owner is None:
                self._note(arrow, f"cannot tell which table {left.sql('iris')} belongs to")
            else:
                target = self._follow(arrow, owner, left.name)
        else:
            self._note(arrow, "the left side is not a column")
        self._done[key] = target
        return target

    def _follow(self, arrow: exp.Expr, owner: TableName, column: str) -> TableName | None:
        value = self.references.get(f"{owner[0]}.{owner[1]}.{column}".lower())
        if value is None:
            self._note(arrow, f"no catalog entry for {owner[0]}.{owner[1]}.{column}")
            return None
        target = self._split(value)
        self.targets.add(target)
        return target

    def _note(self, arrow: exp.Expr, reason: str) -> None:
        self.unknown.append(f"{arrow.sql('iris')}: {reason}")

    def _split(self, name: str) -> TableName:
        schema, _, table = name.rpartition(".")
        return (schema or self.default_schema, table)

    def _owner(self, column: exp.Column) -> TableName | None:
        qualifier = column.table.lower()
        db = column.db.lower()
        scope = column.parent
        while scope is not None:
            if isinstance(scope, _SCOPES):
                sources = self._sources(scope)
                if not qualifier:
                    return self._only_owner(sources, column.name)
                for alias, table in sources:
                    if alias == qualifier and (not db or table[0].lower() == db):
                        return table
            scope = scope.parent
        return None

    def _only_owner(self, sources: list[tuple[str, TableName]], column: str) -> TableName | None:
        tables = list(dict.fromkeys(table for _, table in sources))
        if len(tables) == 1:
            return tables[0]
        known = [t for t in tables if f"{t[0]}.{t[1]}.{column}".lower() in self.references]
        return known[0] if len(known) == 1 else None

    def _sources(self, scope: exp.Expr) -> list[tuple[str, TableName]]:
        """(name usable as qualifier, table) for each table the statement reads or writes."""
        nodes: list[exp.Expr] = []
        if isinstance(scope, (exp.Update, exp.Delete)) and scope.this is not None:
            nodes.append(scope.this)
        from_ = scope.args.get("from_")
        if from_ is not None:
            nodes.append(from_.this)
        nodes.extend(join.this for join in scope.args.get("joins") or [])
        nodes.extend(scope.args.get("using") or [])
        sources: list[tuple[str, TableName]] = []
        for node in nodes:
            if not isinstance(node, exp.Table) or not node.name:
                continue
            table = (node.db or self.default_schema, node.name)
            sources.append(((node.alias or node.name).lower(), table))
        return sources
