"""Which function names a statement uses only in its row bounds (LIMIT, FETCH).

The fence bounds a statement's rows with ``LIMIT LEAST(?, 50)``; deny lists judge every
call, bounds included, but a function allow list does not look at a bound's arithmetic, so
names used only there are kept apart as ``bound_functions``.
"""

from __future__ import annotations

from sqlglot import exp

from sqlfence.sql.builder import FactsBuilder

ROW_BOUND_FUNCTIONS = frozenset({"least", "greatest", "coalesce", "nullif", "min", "max"})


def split_row_bound(candidates: list[tuple[str, exp.Expr]], out: FactsBuilder) -> None:
    """Move the names used only in LIMIT/FETCH/TOP clauses to ``bound_functions``."""
    inside: set[str] = set()
    outside: set[str] = set()
    bounds: dict[int, exp.Expr | None] = {}
    for name, node in candidates:
        (inside if nearest(node, _ROW_BOUNDS, bounds) is not None else outside).add(name)
    out.bound_functions = inside - outside
    out.functions -= out.bound_functions


_ROW_BOUNDS = (exp.Limit, exp.Fetch)
_UNKNOWN = object()


def nearest(
    node: exp.Expr,
    kinds: type[exp.Expr] | tuple[type[exp.Expr], ...],
    known: dict[int, exp.Expr | None],
) -> exp.Expr | None:
    """The closest proper ancestor of ``node`` that is one of ``kinds`` (None: there is none).

    ``known`` is shared by the calls over one tree: every node passed on the way up is
    remembered, so the walks of all a tree's nodes together visit each node once.
    """
    path: list[exp.Expr] = []
    current = node
    while True:
        found = known.get(id(current), _UNKNOWN)
        if found is not _UNKNOWN:
            break
        path.append(current)
        found = current.parent
        if found is None or isinstance(found, kinds):
            break
        current = found
    for passed in path:
        known[id(passed)] = found  # type: ignore[assignment]
    return found  # type: ignore[return-value]
