"""The ``sandbox`` section of ``benchmarks/scale.py`` (issue 19): the registry, PostgreSQL
sandboxes and warm pools at scale, beside bare statements, a ``TEMPLATE`` clone and a noise
floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from common import machine, ms, postgres_server, rank_percentile, table, timed, write_section

REGISTRY_SIZES = (100, 1_000, 10_000)
POOL_SIZES = (1, 10, 50)
PG_MAX_CONNECTIONS = 100


def _p99(samples: list[float]) -> float:
    """The p99 as every table of this section gives it."""
    return rank_percentile(samples, 99)


def _registry_rows() -> list[list[object]]:
    """records(), get(), gc and `sqlfence sandbox list` over n live records."""
    import subprocess

    from sqlfence.sandbox.registry import Owner, Record, Registry
    from sqlfence.sandbox.registry import reap as reap_records

    python = sys.executable
    startup = min(
        timed(lambda: subprocess.run([python, "-c", "import sqlfence.cli.sandboxes"], check=True))
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
        records = min(timed(fresh.records) for _ in range(3))
        get = statistics.median(
            timed(partial(fresh.get, name)) for name in names[:: max(1, n // 200)]
        )
        gc_run = min(timed(lambda: reap_records(fresh, lambda record: None)) for _ in range(3))
        command = [python, "-m", "sqlfence", "sandbox", "list", "--root", str(root)]
        listing = min(
            timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
            for _ in range(2)
        )
        return [f"{n:,}", ms(records), ms(get), ms(gc_run), ms(listing), ms(startup)]

    rows = []
    for n in REGISTRY_SIZES:
        with tempfile.TemporaryDirectory() as directory:
            rows.append(row(n, Path(directory) / ".sqlfence"))
    return rows


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

    with postgres_server(PG_MAX_CONNECTIONS) as server, tempfile.TemporaryDirectory() as directory:
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
            bares.append(timed(partial(bare, i)))
            creates.append(timed(partial(lambda n: made.append(create(n)), i)))
            made.pop().destroy()
        for i in [*range(args.creates), 1000, 1001, 1002]:
            admin.execute(f'DROP DATABASE "BARE_{i}"')
            admin.execute(f'DROP ROLE "BARE_{i}"')
        bare_ms, create_ms = ms(statistics.median(bares)), ms(statistics.median(creates))
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
        clones.append(timed(partial(admin.execute, statement)))
        admin.execute('DROP DATABASE "BASELINE"')
    clone = min(clones)
    snapshot = min(timed(partial(sb.create_snapshot, f"s{attempt}")) for attempt in range(3))
    restore = min(timed(lambda: sb.restore_snapshot("s0")) for _ in range(3))
    backend = sb.backend
    assert isinstance(backend, PostgresBackend)
    digest = min(timed(lambda: backend._digest(sb.name)) for _ in range(2))
    older: object
    try:
        older = ms(timed(lambda: backend._digest_v1(sb.name)))
    except Exception as error:  # the older digest fails past about 1 GB of text
        older = f"failed: {str(error).splitlines()[0][:60]}"
    return [f"{rows:,}", ms(clone), ms(snapshot), ms(restore), f"{restore / clone:.2f}x",
            ms(digest), older]  # fmt: skip


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
        samples = [timed(lambda: sum(range(1500))) for _ in range(cycles)]
        stop.set()
        if worker is not None:
            worker.join()
        return _p99(samples)

    rows: list[list[object]] = [
        ["floor: 50 us of Python", "-", "-", ms(floor(False)), "-", "-", ms(floor(True))]
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
            f"S={size}", len(settled), ms(statistics.median(settled)), ms(_p99(settled)),
            len(refilling),
            ms(statistics.median(refilling)) if refilling else "-",
            ms(_p99(refilling)) if refilling else "- (a pool of 1 is never idle while it refills)",
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
