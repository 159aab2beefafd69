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
from tests.sql.shapes import (
    aliased_arms,
    bounded_nesting,
    cte_chain,
    in_list,
    joins,
    long_case,
    natural_joins,
    nested_from,
    nested_in_under_with,
    parenthesised_joins,
    scalar_subqueries,
    union_arms,
    wide,
)

# Every rule that looks at tables, columns and functions runs, and the row limit is added.
POLICY = {"denied_tables": ["vault"], "denied_columns": ["*.password"], "max_rows": 100}
ALLOWED_GROWTH = 1.5  # the fence's growth over the parse's
REPETITIONS = 7
ATTEMPTS = 5  # a shared machine: the best of a few measurements


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
