"""The fence's first look at a statement grows like sqlglot's parse of it, shape by shape.

For each shape, a statement ten times larger may cost the fence at most 1.5 times the growth
of the parse of the same two statements (about 15x where the parse grows 10x). Both are
timed in this test, interleaved, as the minimum of a few repetitions with the garbage
collector paused: a ratio of ratios, never a wall-clock bound. A quadratic step (every
table reference against every CTE, every column against every table) fails it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from sqlfence import Guard
from sqlfence.policies.engine import dialect_instance

# Every rule that looks at tables, columns and functions runs, and the row limit is added.
POLICY = {"denied_tables": ["vault"], "denied_columns": ["*.password"], "max_rows": 100}
ALLOWED_GROWTH = 1.5  # the fence's growth over the parse's
REPETITIONS = 7
ATTEMPTS = 5  # a shared machine: the best of a few measurements


def cte_chain(n: int) -> str:
    """WITH c0 AS (...), c1 AS (SELECT ... FROM c0), ...: each CTE reads the one before."""
    ctes = ["c0 AS (SELECT a FROM t)"] + [f"c{i} AS (SELECT a FROM c{i - 1})" for i in range(1, n)]
    return "WITH " + ", ".join(ctes) + f" SELECT a FROM c{n - 1}"


def nested_from(n: int) -> str:
    """SELECT a FROM (SELECT a FROM (... t ...)): derived tables n deep."""
    sql = "SELECT a FROM t"
    for i in range(n):
        sql = f"SELECT a FROM ({sql}) AS s{i}"
    return sql


def nested_in_under_with(n: int) -> str:
    """A WITH over IN subqueries n deep, a table at every level (CTE scopes at every depth)."""
    sql = "SELECT a FROM x"
    for i in range(n):
        sql = f"SELECT a FROM t{i % 5} WHERE a IN ({sql})"
    return "WITH x AS (SELECT 1 AS a) " + sql


def union_arms(n: int) -> str:
    """n SELECTs joined by UNION ALL."""
    return " UNION ALL ".join(f"SELECT a, b FROM t{i % 7} WHERE a = {i}" for i in range(n))


def aliased_arms(n: int) -> str:
    """UNION ALL arms that all alias their table u and name u.a, u.b."""
    return " UNION ALL ".join(f"SELECT u.a, u.b FROM t{i} AS u WHERE u.a = {i}" for i in range(n))


def joins(n: int) -> str:
    """n tables joined in a chain."""
    on = " ".join(f"JOIN t{i} ON t{i}.a = t{i - 1}.a" for i in range(1, n))
    return f"SELECT t0.a FROM t0 {on}"


def parenthesised_joins(n: int) -> str:
    """((t0 JOIN t1 ...) JOIN t2 ...): joins nested n deep."""
    source = "t0"
    for i in range(1, n):
        source = f"({source} JOIN t{i} ON t{i}.a = t0.a)"
    return f"SELECT * FROM {source}"


def natural_joins(n: int) -> str:
    """n tables joined by NATURAL JOIN (each reads every column)."""
    return "SELECT * FROM t0 " + " ".join(f"NATURAL JOIN t{i}" for i in range(1, n))


def in_list(n: int) -> str:
    """An IN list of n literals."""
    return "SELECT a FROM t WHERE a IN (" + ", ".join(str(i) for i in range(n)) + ")"


def scalar_subqueries(n: int) -> str:
    """n scalar subqueries in the select list."""
    items = ", ".join(f"(SELECT max(a) FROM t{i % 5} WHERE b = {i}) AS m{i}" for i in range(n))
    return f"SELECT {items} FROM t"


def wide(n: int) -> str:
    """n unqualified columns over n tables (any column may be any table's)."""
    columns = ", ".join(f"c{i}" for i in range(n))
    return f"SELECT {columns} FROM " + ", ".join(f"t{i}" for i in range(n))


def long_case(n: int) -> str:
    """A CASE with n WHEN arms."""
    return "SELECT CASE " + " ".join(f"WHEN a = {i} THEN 'v{i}'" for i in range(n)) + " END FROM t"


def bounded_nesting(n: int) -> str:
    """coalesce() at every level of n nested derived tables, a LIMIT at the bottom."""
    sql = "SELECT coalesce(a, 0) AS a FROM t LIMIT 5"
    for i in range(n):
        sql = f"SELECT coalesce(a, {i}) AS a FROM ({sql}) AS s{i}"
    return sql


# shape -> its size at 1x (the 10x statement has ten times as many of the repeated part)
SHAPES: dict[str, tuple[Callable[[int], str], int]] = {
    "cte_chain": (cte_chain, 60),
    "nested_from": (nested_from, 10),
    "nested_in_under_with": (nested_in_under_with, 10),
    "union_arms": (union_arms, 30),
    "aliased_arms": (aliased_arms, 30),
    "joins": (joins, 30),
    "parenthesised_joins": (parenthesised_joins, 10),
    "natural_joins": (natural_joins, 30),
    "in_list": (in_list, 300),
    "scalar_subqueries": (scalar_subqueries, 30),
    "wide": (wide, 30),
    "long_case": (long_case, 100),
    "bounded_nesting": (bounded_nesting, 10),
}


def growth(guard: Guard, small: str, large: str) -> tuple[float, float]:
    """(the fence's cost growth from ``small`` to ``large``, sqlglot's parse's growth).

    The fence and the parse take turns, so that a busy spell of the machine falls on both;
    each keeps its shortest time.
    """
    dialect = dialect_instance(guard.dialect_name)
    tokenizer, parser = dialect.tokenizer(), dialect.parser()  # built once, as the fence does
    best = {}
    gc.collect()
    gc.disable()
    try:
        for size, sql in ((1, small), (10, large)):
            fence = parse = float("inf")
            for _ in range(REPETITIONS):
                start = time.perf_counter()
                guard.decide(sql)
                middle = time.perf_counter()
                parser.parse(tokenizer.tokenize(sql), sql)
                end = time.perf_counter()
                fence, parse = min(fence, middle - start), min(parse, end - middle)
            best[size] = fence, parse
    finally:
        gc.enable()
    return best[10][0] / best[1][0], best[10][1] / best[1][1]


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_first_sight_cost_grows_like_the_parse(shape: str, dialect: str) -> None:
    """A 10x larger statement costs the fence at most ~1.5x the parse's growth, per shape."""
    make, size = SHAPES[shape]
    small, large = make(size), make(10 * size)
    guard = Guard(POLICY, dialect=dialect, cache_size=0)
    for sql in (small, large):  # read to the end (``*`` over a join may still be denied)
        decision = guard.decide(sql)
        assert decision.facts.unparsed is None, decision.explain()
    measured = []
    for _ in range(ATTEMPTS):
        fence, parse = growth(guard, small, large)
        measured.append(fence / parse)
        if measured[-1] <= ALLOWED_GROWTH:
            return
    pytest.fail(
        f"{shape} ({dialect}): 10x larger costs the fence {fence:.1f}x against the parse's "
        f"{parse:.1f}x; growth over the parse's in {ATTEMPTS} attempts: "
        + ", ".join(f"{ratio:.2f}" for ratio in measured)
    )
