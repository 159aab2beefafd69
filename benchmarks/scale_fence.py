"""The ``fence`` section of ``benchmarks/scale.py`` (issue 19): what ``Guard.decide`` and the
decision cache cost as statements grow, beside ``sqlglot.parse_one`` and raw ``sqlite3``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot
from common import machine, rss_bytes, table, write_section

import sqlfence
from sqlfence import Guard
from tests.sql.shapes import (
    aliased_arms,
    cte_chain,
    in_list,
    joins,
    long_case,
    nested_from,
    nested_in_under_with,
    scalar_subqueries,
    union_arms,
    wide,
)

# Every rule over tables, columns and functions runs, and the row limit is added.
FENCE_POLICY = {"denied_tables": ["vault"], "denied_columns": ["*.password"], "max_rows": 100}
# The growth tables go past the default max_statement_length (100,000 characters) at 100x.
GROWTH_POLICY = {**FENCE_POLICY, "max_statement_length": 10**7, "max_statement_tokens": 10**7}
FENCE_DIALECTS = ("sqlite", "postgres")


def _columns(n: int) -> str:
    return "SELECT " + ", ".join(f"c{i}" for i in range(n)) + " FROM t"


# shape -> (builder, size at 1x, what grows); nesting stops where sqlglot's recursion does
FENCE_SHAPES: dict[str, tuple[Callable[[int], str], int, str]] = {
    "CTE chain": (cte_chain, 10, "CTEs, each reading the one before"),
    "nested derived tables": (nested_from, 2, "levels of SELECT ... FROM (SELECT ...)"),
    "nested IN under a WITH": (nested_in_under_with, 2, "levels, a table at each"),
    "UNION ALL arms": (union_arms, 10, "arms"),
    "aliased arms (u.a, u.b)": (aliased_arms, 10, "arms aliasing their table u"),
    "joins": (joins, 10, "tables joined in a chain"),
    "IN list": (in_list, 100, "literals"),
    "scalar subqueries": (scalar_subqueries, 10, "subqueries in the select list"),
    "columns": (_columns, 100, "columns of one table"),
    "columns x tables": (wide, 10, "unqualified columns over as many tables"),
    "CASE arms": (long_case, 100, "WHEN arms"),
}


def _best(run: Callable[[], object], repetitions: int) -> float:
    """The shortest of ``repetitions`` runs, in seconds, with the collector paused."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(repetitions):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


def _first_sight(
    sql: str, dialect: str, policy: dict[str, object] = GROWTH_POLICY
) -> tuple[float, float] | None:
    """(decide, parse_one) seconds for ``sql``; None when sqlglot cannot parse it."""
    guard = Guard(policy, dialect=dialect, cache_size=0)
    try:
        sqlglot.parse_one(sql, read=dialect)
    except RecursionError:
        return None
    unparsed = guard.decide(sql).facts.unparsed
    if unparsed is not None:
        raise AssertionError(f"not a measure of analysis: {unparsed}")
    repetitions = 3 if len(sql) > 20_000 else 7
    decide = _best(lambda: guard.decide(sql), repetitions)
    parse = _best(lambda: sqlglot.parse_one(sql, read=dialect), repetitions)
    return decide, parse


def _growth_table(dialect: str) -> str:
    rows = []
    for shape, (build, size, grows) in FENCE_SHAPES.items():
        row: list[object] = [shape]
        ratios = []
        for factor in (1, 10, 100):
            measured = _first_sight(build(size * factor), dialect)
            if measured is None:
                row += [f"{size * factor:,}: too deep for sqlglot", ""]
                continue
            decide, parse = measured
            ratios.append(decide / parse)
            row += [f"{size * factor:,}: {decide / parse:.2f}x", f"{parse * 1000:,.1f}"]
        row.append(f"{max(ratios) / min(ratios):.2f}" if len(ratios) > 1 else "")
        row.append(grows)
        rows.append(row)
        print(f"  {dialect} {shape}: {row[1:-1]}", flush=True)
    headers = ["shape", "1x", "parse ms", "10x", "parse ms", "100x", "parse ms"]
    return table([*headers, "max/min ratio", "n counts"], rows)


def _hundred_kb_chain(dialect: str) -> str:
    """The compact CTE chain just under the default max_statement_length (100,000)."""
    n = 1
    while len(_compact_chain(n + 100)) < 99_000:
        n += 100
    sql = _compact_chain(n)
    measured = _first_sight(sql, dialect, FENCE_POLICY)
    assert measured is not None
    decide, parse = measured
    decision = Guard(FENCE_POLICY, dialect=dialect).decide(sql)
    return (
        f"{len(sql):,} characters, {n:,} CTEs ({dialect}): decide {decide * 1000:,.0f} ms, "
        f"parse_one {parse * 1000:,.0f} ms: **{decide / parse:.2f}x** the parse "
        f"({'allowed' if decision.allowed else decision.explain()})"
    )


def _compact_chain(n: int) -> str:
    ctes = ["a0 AS (SELECT 1 x)"] + [f"a{i} AS (SELECT x FROM a{i - 1})" for i in range(1, n)]
    return "WITH " + ",".join(ctes) + f" SELECT x FROM a{n - 1}"


def _cache_memory(statements: int) -> tuple[str, str]:
    """RSS and the cache's own accounting over ``statements`` distinct texts on one Guard
    with the default bounds, each text getting a row limit (so two entries per statement)."""
    guard = Guard({}, dialect="sqlite")
    cache = guard._cache
    checkpoints = sorted(
        {c for c in (10_000, 100_000, 250_000, 500_000, 1_000_000) if c < statements} | {statements}
    )
    rows = []
    gc.collect()
    start_rss = rss_bytes()
    full_rss = None
    done = 0
    started = time.perf_counter()
    for checkpoint in checkpoints:
        for n in range(done, checkpoint):
            guard.decide(f"SELECT a, b FROM t WHERE id = {n} AND c = 'x'")
        done = checkpoint
        gc.collect()
        rss = rss_bytes()
        if full_rss is None:
            full_rss = rss  # the cache is full long before the first checkpoint (10,000)
        rows.append(
            [
                f"{checkpoint:,}",
                f"{len(cache):,}",
                f"{cache.bytes / 2**20:.1f}",
                f"{(rss - start_rss) / 2**20:+.1f}",
                f"{(rss - full_rss) / 2**20:+.1f}",
            ]
        )
        print(f"  cache: {rows[-1]}", flush=True)
    seconds = time.perf_counter() - started
    bounds = (
        f"bounds: {cache.max_entries:,} entries, {cache.max_bytes / 2**20:.0f} MiB; "
        f"{statements:,} statements decided in {seconds:,.0f} s"
    )
    headers = [
        "distinct statements",
        "entries",
        "accounted MiB",
        "RSS vs start MiB",
        "RSS vs first checkpoint MiB",
    ]
    return table(headers, rows), bounds


def _execute_costs(queries: int) -> str:
    """Per execute + fetchall on SQLite: a cached decision (one text) and misses (distinct
    texts, the cache cleared before each run), against raw sqlite3 with the same texts."""
    from sqlfence.observe.observer import NULL_OBSERVER

    repeated = ["SELECT id, name FROM t WHERE id = 7"] * queries
    distinct = [
        f"SELECT id, name FROM t WHERE id = {i % 1000} AND {i} = {i}" for i in range(queries)
    ]
    policy = {"allowed_tables": ["t"]}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "scale.db"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"n{i}") for i in range(1000)))
            conn.commit()
        raw = sqlite3.connect(path)
        fence = sqlfence.connect(f"sqlite:///{path}", policy=policy)
        bare = sqlfence.connect(f"sqlite:///{path}", policy=policy, observer=NULL_OBSERVER)
        try:
            for name, texts in (("cached (one text)", repeated), ("miss (distinct)", distinct)):
                per = {
                    label: _per_execute(connection, texts, clear=texts is distinct)
                    for label, connection in (("raw", raw), ("bare", bare), ("fence", fence))
                }
                rows.append(
                    [
                        name,
                        f"{per['raw']:.1f}",
                        f"{per['bare']:.1f}",
                        f"{per['bare'] / per['raw']:.2f}x",
                        f"{per['fence']:.1f}",
                        f"{per['fence'] / per['raw']:.2f}x",
                    ]
                )
                print(f"  execute: {rows[-1]}", flush=True)
        finally:
            raw.close()
            fence.close()
            bare.close()
    headers = ["decision", "raw sqlite3 us", "fence (null observer) us", "vs raw"]
    return table([*headers, "fence (default observer) us", "vs raw"], rows)


def _per_execute(connection: Any, texts: list[str], clear: bool) -> float:
    """Microseconds per execute + fetchall of ``texts``, the best of 3 runs."""
    cursor = connection.cursor()
    best = float("inf")
    for _ in range(3):
        if clear and hasattr(connection, "_guard"):
            connection._guard._cache.clear()  # every text is new to the fence again
        start = time.perf_counter()
        for text in texts:
            cursor.execute(text)
            cursor.fetchall()
        best = min(best, time.perf_counter() - start)
    return best / len(texts) * 1e6


def fence_section(args: argparse.Namespace) -> str:
    """The fence at scale; writes and returns its Markdown."""
    print("fence: first-sight decide against parse_one", flush=True)
    growth = {dialect: _growth_table(dialect) for dialect in FENCE_DIALECTS}
    print("fence: the 100 KB CTE chain", flush=True)
    chains = [_hundred_kb_chain(dialect) for dialect in FENCE_DIALECTS]
    print(f"fence: the cache over {args.statements:,} distinct statements", flush=True)
    cache_table, bounds = _cache_memory(args.statements)
    print("fence: execute costs", flush=True)
    executes = _execute_costs(args.queries)
    body = f"""## Scale: the fence (issue 19)

`python benchmarks/scale.py fence` on {machine()}.

**First sight.** `Guard.decide` with the cache off (a policy with denied tables, denied
columns and a row limit, so every rule runs and the limit is added; its statement length
and token limits raised, as 100x goes past the default 100,000 characters) against
`sqlglot.parse_one` of the same text, each the minimum of several runs with the collector
paused. Each cell: n, then decide / parse_one; "max/min ratio" is how far that ratio moves
from 1x to 100x (1.0: the fence grows exactly as the parse; a step that is quadratic in n
shows as a ratio growing with n).

SQLite:

{growth["sqlite"]}

PostgreSQL (also parsed by libpg_query, whose reading must agree):

{growth["postgres"]}

**A 100 KB CTE chain** (just under the default `max_statement_length`):

{chr(10).join(f"- {line}" for line in chains)}

**The decision cache** over distinct statements that each get a row limit (two entries per
statement: the text and the rewritten text), one Guard with the default bounds; {bounds}.
"Accounted" is the cache's own estimate of what its entries hold (an upper bound of what
tracemalloc measures, checked by `tests/policies/test_cache.py`); RSS is the process's.

{cache_table}

**Execute + fetchall on SQLite** ({args.queries:,} statements per run, minimum of 3 runs),
a cached decision (one text) and misses (distinct texts, the cache cleared before each run),
against raw `sqlite3` with the same texts:

{executes}
"""
    write_section("scale-fence", body)
    return body
