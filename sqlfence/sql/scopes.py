"""Which table names are CTE references: every WITH resolved once, names normalised once.

A table reference may name a CTE of any enclosing WITH that it can see. Instead of asking
every enclosing WITH about every reference (references x CTEs), the scopes above a node are
computed once per tree edge and shared by everything below it, and each WITH's names are
normalised once into a name -> first position map. Cost: linear in the tree, plus, per
reference, one look-up per enclosing WITH.
"""

from __future__ import annotations

from sqlglot import exp

from sqlfence.sql.names import Namer

# The CTEs a node below sees: (name -> first position in its WITH, how many of them it
# sees, the scope enclosing this one), innermost first; None for no CTE at all.
_Scope = tuple[dict[str, int], float, "_Scope | None"]
_ALL = float("inf")


def cte_name(cte: exp.Expr, namer: Namer) -> str | None:
    """A CTE's name as the database compares it (quoted names keep their case)."""
    alias = cte.args.get("alias")
    return namer.identifier(alias.this if isinstance(alias, exp.TableAlias) else alias)


class CteScopes:
    """Answers "does this table name a visible CTE?" for the tables of one tree."""

    def __init__(self, namer: Namer) -> None:
        self._namer = namer
        self._every = namer.dialect_name == "sqlite"  # its RECURSIVE is optional
        self._names: dict[int, tuple[dict[str, int], dict[int, int]]] = {}
        self._below: dict[int, _Scope | None] = {}  # id(child) -> scopes its subtree sees

    def is_reference(self, table: exp.Table) -> bool:
        """True when an unqualified table name resolves to a CTE visible at that point.

        Names compare as the database compares them: a quoted CTE name keeps its case, so
        ``WITH "Secrets" AS (...)`` does not hide the table ``secrets``.
        """
        if table.args.get("db") is not None or table.args.get("catalog") is not None:
            return False
        name = self._namer.identifier(table.this)
        scope = self._scope_below(table)
        while scope is not None:
            names, visible, scope = scope
            position = names.get(name)  # type: ignore[arg-type]
            if position is not None and position < visible:
                return True
        return False

    def _scope_below(self, node: exp.Expr) -> _Scope | None:
        """The CTE scopes that ``node`` and its subtree see (computed once per edge)."""
        below = self._below
        path: list[exp.Expr] = []
        child: exp.Expr | None = node
        while child is not None and id(child) not in below:
            path.append(child)
            child = child.parent
        scope = below[id(child)] if child is not None else None
        for child in reversed(path):  # from the highest unknown edge down to ``node``
            scope = self._enter(child.parent, child, scope)
            below[id(child)] = scope
        return scope

    def _enter(self, node: exp.Expr | None, child: exp.Expr, outer: _Scope | None) -> _Scope | None:
        """The scopes below the edge ``node`` -> ``child``, given the scopes above ``node``."""
        if node is None:
            return None
        if isinstance(node, exp.With):
            names, positions = self._with(node)
            # WITH RECURSIVE: every CTE of the list sees every other; SQLite does so always;
            # PostgreSQL without it: only the ones before (a non-CTE child sees them all).
            if node.args.get("recursive") or self._every:
                return (names, _ALL, outer) if names else outer
            visible = positions.get(id(child), len(node.expressions))
            return (names, visible, outer) if names and visible else outer
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With) and with_ is not child:
            names = self._with(with_)[0]
            return (names, _ALL, outer) if names else outer
        return outer

    def _with(self, with_: exp.With) -> tuple[dict[str, int], dict[int, int]]:
        """A WITH's CTE names (name -> first position) and its CTEs' positions by id."""
        known = self._names.get(id(with_))
        if known is None:
            names: dict[str, int] = {}
            positions: dict[int, int] = {}
            for position, cte in enumerate(with_.expressions):
                positions[id(cte)] = position
                name = cte_name(cte, self._namer)
                if name is not None:
                    names.setdefault(name, position)
            known = self._names[id(with_)] = (names, positions)
        return known
