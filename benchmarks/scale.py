"""Scale (issue 19): cost that stays flat as the work grows, each point beside its baseline.

Sections, each writing its own part of BENCHMARKS.md (``write_section``):

- ``fence``: first-sight ``Guard.decide`` against ``sqlglot.parse_one`` of the same text for
  statement shapes at 1x, 10x and 100x (CTE chains of 10, 100 and 1,000), a 100 KB CTE
  chain, the decision cache's memory (RSS) over many distinct statements against its
  bounds, and cached and missed executes against raw ``sqlite3``.
- ``sandbox``: the registry's list, lookup and gc at 100, 1,000 and 10,000 records (and
  ``sqlfence sandbox list`` beside the CLI's start alone), PostgreSQL create against bare
  ``CREATE ROLE`` + ``CREATE DATABASE``, live PostgreSQL sandboxes on a server with
  ``max_connections=100``, snapshot and restore against a ``TEMPLATE`` clone at 100k and 1M
  rows, and warm pool acquire p99 at pool sizes 1, 10 and 50, settled and refilling.

Every number is a minimum of repetitions (the machine may be shared) and is printed as a
ratio to its baseline measured in the same run.

    python benchmarks/scale.py [SECTION ...] [--statements N]    (no section: all)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import sqlglot
from common import machine, table, write_section

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

# -- fence ---------------------------------------------------------------------------------

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


def _rss() -> int:
    """This process's resident set size, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


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
    start_rss = _rss()
    full_rss = None
    done = 0
    started = time.perf_counter()
    for checkpoint in checkpoints:
        for n in range(done, checkpoint):
            guard.decide(f"SELECT a, b FROM t WHERE id = {n} AND c = 'x'")
        done = checkpoint
        gc.collect()
        rss = _rss()
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


# -- the sandboxes -------------------------------------------------------------------------

REGISTRY_SIZES = (100, 1_000, 10_000)
POOL_SIZES = (1, 10, 50)
PG_MAX_CONNECTIONS = 100


def _ms(seconds: float) -> float:
    return seconds * 1000


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _registry_rows() -> list[list[object]]:
    """records(), get(), gc and `sqlfence sandbox list` over n live records."""
    import subprocess

    from sqlfence.sandbox.registry import Owner, Record, Registry
    from sqlfence.sandbox.registry import reap as reap_records

    python = sys.executable
    startup = min(
        _timed(lambda: subprocess.run([python, "-c", "import sqlfence.cli.sandboxes"], check=True))
        for _ in range(3)
    )

    def row(n: int, root: Path) -> list[object]:
        registry = Registry(root)
        owner, now = Owner.current(), time.time()
        names = [f"AGENT_A{i}_20250101_000000_{i:06X}" for i in range(n)]
        for i, name in enumerate(names):
            registry.put(Record(name, "sqlite", f"a{i}", None, owner, now + i, None,
                                f"{root}/sandboxes/{name}.db",
                                labels={"sqlfence": "sandbox", "agent_id": f"a{i}"}))  # fmt: skip
        fresh = Registry(root)
        records = min(_timed(fresh.records) for _ in range(3))
        get = statistics.median(
            _timed(partial(fresh.get, name)) for name in names[:: max(1, n // 200)]
        )
        gc_run = min(_timed(lambda: reap_records(fresh, lambda record: None)) for _ in range(3))
        command = [python, "-m", "sqlfence", "sandbox", "list", "--root", str(root)]
        listing = min(
            _timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
            for _ in range(2)
        )
        return [f"{n:,}", _ms(records), _ms(get), _ms(gc_run), _ms(listing), _ms(startup)]

    rows = []
    for n in REGISTRY_SIZES:
        with tempfile.TemporaryDirectory() as directory:
            rows.append(row(n, Path(directory) / ".sqlfence"))
    return rows


@contextlib.contextmanager
def _pg_server(max_connections: int) -> Any:
    """A throwaway PostgreSQL server (as the tests start one) with ``max_connections``."""
    from tests.postgres_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("sandbox: no PostgreSQL binaries (initdb, pg_ctl) found")
    server = PostgresServer(bindir)
    server.start()
    try:
        options = (
            f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={max_connections}"
        )
        server._run(str(bindir / "pg_ctl"), "-D", str(server.data), "-o", options,
                    "-l", str(server.root / "server.log"), "-w", "-t", "60", "restart")  # fmt: skip
        yield server
    finally:
        server.stop()


def _client_sessions(admin: Any) -> int:
    """Client connections to the server other than ``admin`` itself."""
    return int(
        admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    )


def _pg_rows(args: argparse.Namespace) -> tuple[list[list[object]], str, list[list[object]]]:
    """Create against bare statements, live sandboxes, snapshot and restore against TEMPLATE."""
    import psycopg

    from sqlfence.sandbox import AgentSandbox

    with _pg_server(PG_MAX_CONNECTIONS) as server, tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / ".sqlfence"
        url = server.url
        admin = psycopg.connect(url, autocommit=True)

        def create(i: int) -> AgentSandbox:
            return AgentSandbox.create(agent_id=f"s{i}", backend="postgres", runtime="external",
                                       server_url=url, root=root)  # fmt: skip

        def bare(i: int) -> None:
            admin.execute(f"CREATE ROLE \"BARE_{i}\" LOGIN PASSWORD 'x'")
            admin.execute(f'CREATE DATABASE "BARE_{i}"')

        for i in range(3):  # warm both paths
            bare(1000 + i)
            create(1000 + i).destroy()
        creates, bares = [], []
        made: list[AgentSandbox] = []
        for i in range(args.creates):
            bares.append(_timed(partial(bare, i)))
            creates.append(_timed(partial(lambda n: made.append(create(n)), i)))
            made.pop().destroy()
        for i in [*range(args.creates), 1000, 1001, 1002]:
            admin.execute(f'DROP DATABASE "BARE_{i}"')
            admin.execute(f'DROP ROLE "BARE_{i}"')
        bare_ms, create_ms = _ms(statistics.median(bares)), _ms(statistics.median(creates))
        create_rows: list[list[object]] = [
            ["bare CREATE ROLE + CREATE DATABASE (one admin connection)", bare_ms, "1.0x"],
            ["AgentSandbox.create", create_ms, f"{create_ms / bare_ms:.2f}x"],
        ]

        print(f"sandbox: {args.live:,} live PostgreSQL sandboxes", flush=True)
        live: list[AgentSandbox] = []
        try:
            for i in range(args.live):
                live.append(create(i))
            for sb in (live[0], live[-1]):
                with sb.get_connection() as conn:
                    conn.execute("CREATE TABLE t (a integer)")
            held = _client_sessions(admin)
        finally:
            for sb in live:
                sb.destroy()
        live_line = (
            f"{len(live):,} live sandboxes on a server with `max_connections={PG_MAX_CONNECTIONS}` "
            f"(the first and the last used through a fence connection); while they were idle the "
            f"server had {held} client connection(s) besides the one counting them."
        )

        snapshot_rows = []
        for rows in args.rows:
            print(f"sandbox: PostgreSQL snapshot and restore at {rows:,} rows", flush=True)
            sb = create(9000 + rows // 1000)
            try:
                snapshot_rows.append(_snapshot_row(admin, sb, rows))
            finally:
                sb.destroy()
        admin.close()
    return create_rows, live_line, snapshot_rows


def _snapshot_row(admin: Any, sb: Any, rows: int) -> list[object]:
    """Snapshot, restore and digest times of ``sb`` filled with ``rows``, beside TEMPLATE."""
    import psycopg

    from sqlfence.sandbox.backends.postgres import PostgresBackend

    with psycopg.connect(sb.namespace.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE entities (id integer PRIMARY KEY, name text, score real)")
        conn.execute(
            "INSERT INTO entities SELECT g, 'entity ' || g, g * 0.5 FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE entities")
    clones = []
    for _ in range(3):
        statement = f'CREATE DATABASE "BASELINE" TEMPLATE "{sb.name}" STRATEGY FILE_COPY'
        clones.append(_timed(partial(admin.execute, statement)))
        admin.execute('DROP DATABASE "BASELINE"')
    clone = min(clones)
    snapshot = min(_timed(partial(sb.create_snapshot, f"s{attempt}")) for attempt in range(3))
    restore = min(_timed(lambda: sb.restore_snapshot("s0")) for _ in range(3))
    backend = sb.backend
    assert isinstance(backend, PostgresBackend)
    digest = min(_timed(lambda: backend._digest(sb.name)) for _ in range(2))
    older: object
    try:
        older = _ms(_timed(lambda: backend._digest_v1(sb.name)))
    except Exception as error:  # the older digest fails past about 1 GB of text
        older = f"failed: {str(error).splitlines()[0][:60]}"
    return [f"{rows:,}", _ms(clone), _ms(snapshot), _ms(restore), f"{restore / clone:.2f}x",
            _ms(digest), older]  # fmt: skip


def _pool_rows(cycles: int) -> list[list[object]]:
    """Warm acquire median and p99, settled and refilling, beside a pure-Python noise floor."""
    import threading

    from sqlfence.sandbox import AgentSandbox, SandboxPool

    def floor(busy: bool) -> float:
        # A fixed ~50 us of Python timed as acquire is: the p99 this machine gives any code.
        stop = threading.Event()
        worker = None
        if busy:

            def churn() -> None:
                with tempfile.TemporaryDirectory() as directory:
                    while not stop.is_set():
                        AgentSandbox.create(agent_id="churn", root=directory).destroy()

            worker = threading.Thread(target=churn, daemon=True)
            worker.start()
        samples = [_timed(lambda: sum(range(1500))) for _ in range(cycles)]
        stop.set()
        if worker is not None:
            worker.join()
        return _p99(samples)

    rows: list[list[object]] = [
        ["floor: 50 us of Python", "-", "-", _ms(floor(False)), "-", "-", _ms(floor(True))]
    ]
    for size in POOL_SIZES:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory) / ".sqlfence"
            with SandboxPool(size=size, root=root) as pool:
                for i in range(3 * size + 20):  # to max_size: from here on nothing refills
                    pool.acquire(f"warm{i}").release()
                while pool.metrics()["creating"]:
                    time.sleep(0.01)
                settled = []
                for i in range(cycles):
                    start = time.perf_counter()
                    lease = pool.acquire(f"bench{i}")
                    settled.append(time.perf_counter() - start)
                    lease.release()
            refilling: list[float] = []
            with SandboxPool(size=size, root=root, reset="destroy") as pool:
                # Every release destroys its sandbox, so the replenisher is always making one;
                # only acquires that start while it is at work count.
                for i in range(min(cycles, 20 * size + 100)):
                    while pool.metrics()["idle"] == 0:
                        time.sleep(0.0005)
                    busy = pool.metrics()["creating"] > 0
                    start = time.perf_counter()
                    lease = pool.acquire(f"bench{i}")
                    took = time.perf_counter() - start
                    if busy:
                        refilling.append(took)
                    lease.release()
        rows.append([
            f"S={size}", len(settled), _ms(statistics.median(settled)), _ms(_p99(settled)),
            len(refilling),
            _ms(statistics.median(refilling)) if refilling else "-",
            _ms(_p99(refilling)) if refilling else "- (a pool of 1 is never idle while it refills)",
        ])  # fmt: skip
    return rows


def sandbox_section(args: argparse.Namespace) -> str:
    """The sandboxes at scale; writes and returns its Markdown."""
    print("sandbox: the registry", flush=True)
    registry = table(
        ["live records", "records() ms", "get() ms", "gc (nothing due) ms",
         "`sandbox list` ms", "CLI start alone ms"],
        _registry_rows(),
    )  # fmt: skip
    print("sandbox: PostgreSQL", flush=True)
    creates, live, snapshots = _pg_rows(args)
    print("sandbox: warm pool acquire", flush=True)
    pool = table(
        ["pool", "settled n", "median ms", "p99 ms", "refilling n", "median ms", "p99 ms"],
        _pool_rows(args.cycles),
    )
    body = f"""## Scale: the sandboxes (issue 19)

`python benchmarks/scale.py sandbox` on {machine()}. The machine may be shared: the pool's
first row is the noise floor, the p99 of a fixed 50 us of Python timed the same way, idle and
beside a thread creating sandboxes.

**The registry** (one SQLite database in WAL mode, `registry/records.sqlite`), n live SQLite
records of this process: `records()` the minimum of 3, `get()` the median over 200 names, gc
a `reap()` with nothing due (it reads the distinct owners and, by index, only what is due),
`sqlfence sandbox list` a whole command (interpreter start included: the last column is the
start alone). Before (issue 19, a JSON file per record, 10,000 records): `sandbox list` 7 s,
`records()` 330 ms, `reap()` 521 ms.

{registry}

**PostgreSQL create** (median of {args.creates}), against the bare statements on one admin
connection (before: 40 ms against 13 ms):

{table(["what", "median ms", "ratio"], creates)}

**Live PostgreSQL sandboxes hold no connection**: {live} (Before: the 99th could not be made.)

**PostgreSQL snapshot and restore** of one table (`id integer, name text, score real`),
minimum of 3, against a bare `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY` of the same
database. The restore copies the clone, checks its digest (now a streamed per-table count and
sum of keyed row hashes), and swaps it in; "digest" is the new digest alone, "older digest"
the previous one (sorted `string_agg` per table) on the same data. Before (1M rows): restore
1,059 ms against 75 ms, 807 ms of it the digest.

{
        table(
            [
                "rows",
                "TEMPLATE clone ms",
                "snapshot ms",
                "restore ms",
                "restore / clone",
                "digest ms",
                "older digest ms",
            ],
            snapshots,
        )
    }

**Warm pool acquire** (SQLite, `SandboxPool.acquire` alone, release untimed; {args.cycles:,}
settled cycles once the pool reached `max_size`; refilling: `reset="destroy"`, so every
release makes the replenisher create a replacement, counting the acquires that started while
it was at work). Before: p99 S=1 3.7 ms, S=10 2.7 ms, S=50 0.73 ms; 3.6-7.4 ms refilling.

{pool}
"""
    write_section("scale-sandbox", body)
    return body


# -- the command ---------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace], str]] = {
    "fence": fence_section,
    "sandbox": sandbox_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument(
        "--statements",
        type=int,
        default=1_000_000,
        help="fence: distinct statements for the cache's memory (default 1,000,000)",
    )
    parser.add_argument(
        "--queries", type=int, default=5000, help="fence: executes per run (default 5,000)"
    )
    parser.add_argument(
        "--creates", type=int, default=30, help="sandbox: PostgreSQL creates timed (default 30)"
    )
    parser.add_argument(
        "--live", type=int, default=1000, help="sandbox: live PostgreSQL sandboxes (default 1,000)"
    )
    parser.add_argument(
        "--rows",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100_000, 1_000_000],
        help="sandbox: table sizes for snapshot and restore (default 100000,1000000)",
    )
    parser.add_argument(
        "--cycles", type=int, default=2000, help="sandbox: pool acquires per size (default 2,000)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        print(SECTIONS[name](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
