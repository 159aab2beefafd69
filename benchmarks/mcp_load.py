"""The MCP server under load: concurrent HTTP sessions, then a flood of abandoned ones.

    .venv/bin/python benchmarks/mcp_load.py [--clients 50] [--seconds 20] [--processes 1]
                                            [--max-sessions 20] [--no-write]

A real ``sqlfence mcp --transport http`` process on a free loopback port, with a tokens file
(a token per client) and an audit directory, on a SQLite file made here. Load: each client
is its own MCP session (the SDK's client, handshake-era protocol, so the server keeps a
session with its own connections per client) calling tools without pause: point selects,
an aggregate, ``list_tables``, ``describe_table``, and now and then a denied statement,
which must come back as a tool error; one client alone first, for scale. A failed call is
a transport error, a timeout, any other tool error, a denial that did not come or a wrong
answer. Reported: p50/p95/p99 and calls/s per kind of call and overall; the server's and
the clients' CPU time (the clients spread over ``--processes``), to tell whose core ran
out, beside the CPU the machine had to give. Flood: a second server at ``--max-sessions
N`` gets 10*N sessions opened by raw initialize POSTs (each runs a query, so it holds
connections) and never closed; then a fresh client must be served.

Targets (issue 12): no failed calls; the fresh client served; the server's open file
descriptors bounded (no more after 10*N abandoned sessions than after N, give or take the
flood's own connections).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import httpx2
from common import REPO_ROOT, machine, percentile, table, write_section
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import REQUEST_TIMEOUT

from sqlfence.integrations.mcp_tokens import create_token
from sqlfence.observe import verify
from tests.integrations.mcp_helpers import free_port, text_of

CUSTOMERS = 2_000
ORDERS = 5_000
POLICY = """\
default:
  read_only: true
  denied_tables: [secrets]
  denied_columns: [customers.email]
"""
MIX = {"point select": 50, "aggregate": 15, "list_tables": 15, "describe_table": 15, "denied": 5}
SQL = {
    "point select": (
        "SELECT id, name, country FROM customers WHERE id = {c}",
        "SELECT id, customer_id, status, amount FROM orders WHERE id = {o}",
    ),
    "aggregate": (
        "SELECT status, count(*) AS n, round(sum(amount), 2) AS total FROM orders "
        "WHERE customer_id BETWEEN {c} AND {c} + 49 GROUP BY status",
    ),
    "denied": (  # a denied table, a denied column, a write under a read-only policy
        "SELECT * FROM secrets",
        "SELECT email FROM customers WHERE id = {c}",
        "DELETE FROM orders WHERE id = {o}",
    ),
}
SESSION_OPEN = "session open (initialize)"
PROTOCOL = "2025-06-18"  # what the raw flood speaks: a handshake-era session per initialize
FLOOD_CONCURRENCY = 10
SOLO_SECONDS = 3  # one client alone first: the latency without queueing, for scale
ACCEPT = "application/json, text/event-stream"


@dataclass(frozen=True)
class Call:
    """One tool call of the mix, and what its answer must be."""

    kind: str
    tool: str
    arguments: dict[str, Any]
    denied: bool = False
    rows: int | None = None  # the row_count a query must answer


def next_call(rng: random.Random) -> Call:
    """A call drawn from MIX."""
    [kind] = rng.choices(list(MIX), weights=list(MIX.values()))
    if kind == "list_tables":
        return Call(kind, "list_tables", {})
    if kind == "describe_table":
        return Call(kind, "describe_table", {"table": rng.choice(["customers", "orders"])})
    sql = rng.choice(SQL[kind]).format(c=rng.randint(1, CUSTOMERS), o=rng.randint(1, ORDERS))
    rows = 1 if kind == "point select" else None
    return Call(kind, "query", {"sql": sql}, denied=kind == "denied", rows=rows)


def judge(call: Call, result: Any) -> str | None:
    """Why the answer to ``call`` is a failure, or None when it is the expected one."""
    text = text_of(result)
    if call.denied:
        return None if result.is_error and "denied" in text else f"not denied: {text[:120]}"
    if result.is_error:
        return f"tool error: {text[:120]}"
    answer = json.loads(text)
    if call.tool == "list_tables" and sorted(answer["tables"]) != ["customers", "orders"]:
        return f"wrong tables: {answer['tables']}"
    if call.tool == "describe_table" and "email" in {c["name"] for c in answer["columns"]}:
        return "describe_table shows a denied column"
    if call.rows is not None and answer["row_count"] != call.rows:
        return f"wrong row_count {answer['row_count']} for {call.arguments['sql']}"
    return None


def failure_of(error: BaseException) -> str:
    """A failure's kind for counting: ``timeout``, or the exception's type and message."""
    timeout = isinstance(error, MCPError) and error.code == REQUEST_TIMEOUT
    if timeout or isinstance(error, TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"[:160]


# -- the clients ---------------------------------------------------------------------------


@dataclass
class Stats:
    """What one process of clients saw: (finished at, ms) of each call answered as expected,
    by kind; the failures; when each client's first session was open."""

    done: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    failed: Counter[str] = field(default_factory=Counter)  # by kind of call
    failures: Counter[str] = field(default_factory=Counter)  # by what went wrong
    ready: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    began: float = 0.0
    ended: float = 0.0

    def record(self, kind: str, started: float) -> None:
        now = time.perf_counter()
        self.done[kind].append((now, (now - started) * 1000))

    def fail(self, kind: str, why: str) -> None:
        self.failed[kind] += 1
        self.failures[why] += 1

    def merge(self, other: Stats) -> None:
        for kind, values in other.done.items():
            self.done[kind] += values
        self.failed.update(other.failed)
        self.failures.update(other.failures)
        self.ready += other.ready
        self.cpu_s += other.cpu_s
        self.began = min(self.began or other.began, other.began)
        self.ended = max(self.ended, other.ended)


@asynccontextmanager
async def mcp_session(url: str, token: str, timeout: float) -> AsyncIterator[Client]:
    """An MCP session of its own (the handshake-era protocol) with the bearer ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy",
               read_timeout_seconds=timeout) as client,
    ):  # fmt: skip
        yield client


async def one_client(
    index: int, url: str, token: str, deadline: float, timeout: float, stats: Stats
) -> None:
    """One agent: a session calling tools until the deadline; a broken session is counted
    and replaced."""
    rng = random.Random(index)
    first = True
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with mcp_session(url, token, timeout) as client:
                stats.record(SESSION_OPEN, started)
                if first:
                    stats.ready.append(time.perf_counter())
                    first = False
                await calls(client, rng, deadline, stats)
        except Exception as error:  # counted: opening or closing the session failed
            stats.fail(SESSION_OPEN, failure_of(error))


async def calls(client: Client, rng: random.Random, deadline: float, stats: Stats) -> None:
    """Calls until the deadline or the first call that raises (the session is then replaced)."""
    while time.perf_counter() < deadline:
        call = next_call(rng)
        started = time.perf_counter()
        try:
            result = await client.call_tool(call.tool, call.arguments)
        except Exception as error:  # a transport error or a timeout
            stats.fail(call.kind, failure_of(error))
            return
        why = judge(call, result)
        if why is None:
            stats.record(call.kind, started)
        else:
            stats.fail(call.kind, why)


def run_clients(tokens: list[str], url: str, seconds: float, timeout: float) -> Stats:
    """``len(tokens)`` concurrent clients in this process for ``seconds``."""

    async def all_of_them() -> Stats:
        stats = Stats(began=time.perf_counter())
        cpu = time.process_time()
        async with anyio.create_task_group() as group:
            for index, token in enumerate(tokens):
                deadline = stats.began + seconds
                group.start_soon(one_client, index, url, token, deadline, timeout, stats)
        stats.ended, stats.cpu_s = time.perf_counter(), time.process_time() - cpu
        return stats

    return anyio.run(all_of_them)


def load(url: str, tokens: list[str], processes: int, seconds: float, timeout: float) -> Stats:
    """The clients spread over ``processes`` processes (1: this one). perf_counter is the
    system-wide monotonic clock on Linux, so the processes' times compare."""
    if processes == 1:
        return run_clients(tokens, url, seconds, timeout)
    stats = Stats()
    each = partial(run_clients, url=url, seconds=seconds, timeout=timeout)
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        for share in pool.map(each, [tokens[i::processes] for i in range(processes)]):
            stats.merge(share)
    return stats


def _spin(start: float, seconds: float) -> float:
    """The CPU time a busy loop gets from ``start`` for ``seconds`` of wall time."""
    time.sleep(max(0.0, start - time.perf_counter()))
    cpu = time.process_time()
    while time.perf_counter() < start + seconds:
        pass
    return time.process_time() - cpu


def cpu_capacity(seconds: float = 1.0) -> float:
    """The cores the machine gives two busy processes at once (on a shared virtual machine,
    maybe fewer than it has). Forked, so that both spin from the same moment."""
    start = time.perf_counter() + 0.3
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        return sum(pool.map(_spin, [start] * 2, [seconds] * 2)) / seconds


def cpu_pressure_us() -> int:
    """Microseconds so far in which some task waited for a CPU (Linux PSI; 0 without it)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0
    return int(some.rsplit("total=", 1)[1])


# -- the server ----------------------------------------------------------------------------


class Usage(NamedTuple):
    """A process's CPU time so far (every thread), resident memory and open descriptors."""

    cpu_s: float
    rss_mb: float
    fds: int


NOTHING = Usage(0.0, 0.0, 0)  # not measured


class ServerProcess:
    """``sqlfence mcp --transport http`` (the working tree's) on a free loopback port, its
    output in a log file. Leaving the ``with`` block stops it: SIGTERM, then SIGKILL if it
    has not exited within 10 s, or at once when the block raised."""

    def __init__(self, workdir: Path, database: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = workdir / f"server-{self.port}.log"
        self.stop_s = float("nan")
        command = [
            sys.executable, "-m", "sqlfence.integrations.mcp", "--transport", "http",
            "--port", str(self.port), "--policy", "policy.yaml", *options,
            f"sqlite:///{database}",
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def __enter__(self) -> ServerProcess:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.stop(grace=0)
        tail = " | ".join(self.log.read_text(errors="replace").splitlines()[-5:])
        raise RuntimeError(f"the server did not start (status {self.process.returncode}): {tail}")

    def __exit__(self, kind: object, *_: object) -> None:
        self.stop(grace=10 if kind is None else 0)

    def stop(self, grace: float) -> None:
        """SIGTERM, and SIGKILL after ``grace`` seconds. Idempotent."""
        if self.process.poll() is None:
            began = time.monotonic()
            self.process.terminate()
            try:
                self.process.wait(timeout=grace or 0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stop_s = time.monotonic() - began

    def problems(self) -> list[str]:
        """Log lines that say something went wrong (the SDK logs each denial at INFO)."""
        marks = ("Traceback", "ERROR", "Exception", "CRITICAL")
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.strip() for line in lines if any(mark in line for mark in marks)]

    def usage(self) -> Usage:
        proc = Path(f"/proc/{self.process.pid}")
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()  # utime, stime: 11, 12
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
        return Usage(
            (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
            int(status["VmRSS"].split()[0]) / 1024,
            len(os.listdir(proc / "fd")),
        )


def create_database(path: Path, seed: int = 12) -> None:
    """customers, orders (indexed by customer) and secrets."""
    rng = random.Random(seed)
    customers = [
        (i, f"customer {i}", f"c{i}@example.org", rng.choice(["FR", "DE", "GB", "US", "JP"]))
        for i in range(1, CUSTOMERS + 1)
    ]
    statuses = ["new", "paid", "shipped", "returned"]
    orders = [
        (i, rng.randint(1, CUSTOMERS), rng.choice(statuses), round(rng.random() * 500, 2))
        for i in range(1, ORDERS + 1)
    ]
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES"
            " customers, status TEXT, amount REAL);"
            "CREATE INDEX orders_customer ON orders (customer_id);"
            "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT);"
            "INSERT INTO secrets VALUES (1, 'the launch codes');"
        )
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customers)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", orders)


# -- the flood -----------------------------------------------------------------------------


@dataclass
class Flood:
    """What the flood of abandoned sessions did and what a fresh client got after it."""

    statuses: Counter[str] = field(default_factory=Counter)
    before: Usage = NOTHING
    at_cap: Usage = NOTHING  # once N sessions were opened
    after: Usage = NOTHING  # after 10*N
    fresh_ms: float | None = None  # to the fresh client's first answered call
    fresh_error: str = ""
    pings: tuple[int, int] = (0, 0)  # on the oldest and the newest abandoned session


def rpc(method: str, params: dict[str, Any] | None = None, ident: int | None = 1) -> Any:
    """A JSON-RPC request (a notification without ``ident``)."""
    message = {"jsonrpc": "2.0", "method": method, "id": ident, "params": params}
    return {key: value for key, value in message.items() if value is not None}


async def abandoned_session(http: httpx2.AsyncClient, url: str, flood: Flood) -> str | None:
    """initialize, initialized, one query; never closed. Returns the session id."""
    hello = {"name": "flood", "version": "1"}
    params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": hello}
    opened = await http.post(url, json=rpc("initialize", params))
    flood.statuses[f"initialize {opened.status_code}"] += 1
    session = opened.headers.get("mcp-session-id")
    if session is None:
        return None
    headers = {"Mcp-Session-Id": session, "Mcp-Protocol-Version": PROTOCOL}
    await http.post(url, json=rpc("notifications/initialized", ident=None), headers=headers)
    query = {"name": "query", "arguments": {"sql": "SELECT count(*) FROM orders"}}
    answered = await http.post(url, json=rpc("tools/call", query, 2), headers=headers)
    flood.statuses[f"tools/call {answered.status_code}"] += 1
    return session


async def abandoned_batch(http: httpx2.AsyncClient, url: str, flood: Flood) -> list[str | None]:
    """FLOOD_CONCURRENCY abandoned sessions at once."""
    sessions: list[str | None] = [None] * FLOOD_CONCURRENCY

    async def one(slot: int) -> None:
        sessions[slot] = await abandoned_session(http, url, flood)

    async with anyio.create_task_group() as group:
        for slot in range(FLOOD_CONCURRENCY):
            group.start_soon(one, slot)
    return sessions


async def ping(http: httpx2.AsyncClient, url: str, session: str | None) -> int:
    """The status a ping on ``session`` gets now."""
    headers = {"Mcp-Session-Id": session or "", "Mcp-Protocol-Version": PROTOCOL}
    return (await http.post(url, json=rpc("ping", ident=9), headers=headers)).status_code


async def flood_then_fresh(server: ServerProcess, flooder: str, fresh: str, cap: int) -> Flood:
    """10 * ``cap`` abandoned sessions (FLOOD_CONCURRENCY at a time) with the token
    ``flooder``, then a fresh client with the token ``fresh``."""
    flood = Flood(before=server.usage())
    sessions: list[str | None] = []
    headers = {"Accept": ACCEPT, "Authorization": f"Bearer {flooder}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        while len(sessions) < 10 * cap:
            sessions += await abandoned_batch(http, server.url, flood)
            if len(sessions) >= cap and flood.at_cap is NOTHING:
                flood.at_cap = server.usage()
        flood.after = server.usage()
        started = time.perf_counter()
        try:
            async with mcp_session(server.url, fresh, timeout=30) as client:
                listing = await client.call_tool("list_tables", {})
                elapsed = (time.perf_counter() - started) * 1000
                point = await client.call_tool("query", {"sql": "SELECT id FROM orders LIMIT 1"})
                if listing.is_error or point.is_error:
                    flood.fresh_error = text_of(listing if listing.is_error else point)[:160]
                else:
                    flood.fresh_ms = elapsed
        except Exception as error:  # reported: the fresh client was not served
            flood.fresh_error = failure_of(error)
        flood.pings = (await ping(http, server.url, sessions[0]),
                       await ping(http, server.url, sessions[-1]))  # fmt: skip
    return flood


# -- the report ----------------------------------------------------------------------------

LOAD_HEADERS = ["call", "answered", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed"]


@dataclass
class LoadRun:
    """The load phase: what the clients saw, and the server's usage idle, at its peaks (RSS
    and descriptors) and after the clients left."""

    stats: Stats
    solo: Stats
    server_cpu_s: float
    usage: tuple[Usage, Usage, Usage]
    pressure: float  # the share of the load's time in which some task waited for a CPU
    audit: str
    events: Counter[str]

    @property
    def wall(self) -> float:
        return self.stats.ended - self.stats.began

    def answered(self) -> int:
        return sum(len(self.stats.done.get(kind, [])) for kind in MIX)

    def rows(self) -> list[list[object]]:
        """A row per kind of call, all tool calls, and those after every session was open."""
        done, failed = self.stats.done, self.stats.failed
        rows = [_row(k, done.get(k, []), failed[k], self.wall) for k in [SESSION_OPEN, *MIX]]
        every = [call for kind in MIX for call in done.get(kind, [])]
        rows.append(_row("all tool calls", every, sum(failed[k] for k in MIX), self.wall))
        steady = max(self.stats.ready, default=self.stats.ended)
        after = [call for call in every if call[0] >= steady]
        rows.append(_row("... once all sessions were open", after, 0, self.stats.ended - steady))
        alone = [call for kind in MIX for call in self.solo.done.get(kind, [])]
        solo_failed, solo_s = sum(self.solo.failed.values()), self.solo.ended - self.solo.began
        rows.append(_row("for scale: 1 client alone", alone, solo_failed, solo_s))
        return rows

    def resources(self, processes: int) -> str:
        idle, peak, left = self.usage
        wall, server, clients = self.wall, self.server_cpu_s, self.stats.cpu_s
        per_call = f"{1000 * server / self.answered():.1f}" if self.answered() else "-"
        return table(
            ["process", "CPU s", "of one core", "CPU ms per call", "RSS MiB", "open fds"],
            [
                ["server", server, f"{server / wall:.0%}", per_call,
                 f"{idle.rss_mb:.0f} idle, {peak.rss_mb:.0f} peak, {left.rss_mb:.0f} after",
                 f"{idle.fds} idle, {peak.fds} peak, {left.fds} after"],
                [f"clients ({processes} process{'es' if processes > 1 else ''})", clients,
                 f"{clients / wall:.0%}", "", "", ""],
            ],
        )  # fmt: skip


def _row(kind: str, calls: list[tuple[float, float]], failed: int, seconds: float) -> list[object]:
    ms = [elapsed for _, elapsed in calls]
    return [kind, len(ms), len(ms) / seconds if seconds > 0 else float("nan"),
            percentile(ms, 50), percentile(ms, 95), percentile(ms, 99),
            max(ms, default=float("nan")), failed]  # fmt: skip


def load_phase(
    workdir: Path, database: Path, served: tuple[str, ...], tokens: list[str], args: Any
) -> tuple[LoadRun, ServerProcess]:
    """The clients against a server of their own, sampled while they run."""
    with ServerProcess(workdir, database, *served) as server:
        idle = peak = server.usage()
        solo = load(server.url, tokens[:1], 1, SOLO_SECONDS, args.timeout)
        done = threading.Event()

        def sample() -> None:  # the peaks of RSS and descriptors, every half second
            nonlocal peak
            while not done.wait(0.5):
                now = server.usage()
                peak = Usage(now.cpu_s, max(peak.rss_mb, now.rss_mb), max(peak.fds, now.fds))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        waited, before = cpu_pressure_us(), server.usage().cpu_s
        stats = load(server.url, tokens, args.processes, args.seconds, args.timeout)
        cpu = server.usage().cpu_s - before
        pressure = (cpu_pressure_us() - waited) / 1e6 / (stats.ended - stats.began)
        done.set()
        sampler.join()
        time.sleep(1)  # the sessions' teardown after the clients' DELETE
        usage = (idle, peak, server.usage())
    events: Counter[str] = Counter()
    audit = workdir / "audit"
    for path in audit.rglob("*.jsonl"):
        lines = path.read_text().splitlines()
        events.update(json.loads(line)["event_type"] for line in lines if line.strip())
    return LoadRun(stats, solo, cpu, usage, pressure, str(verify(audit)), events), server


def flood_table(flood: Flood, cap: int) -> str:
    before, at_cap, after = flood.before, flood.at_cap, flood.after
    return table(
        [f"flood of a server at --max-sessions {cap}", "value"],
        [
            ["abandoned sessions opened", 10 * cap],
            ["answers", ", ".join(f"{k}: {v}" for k, v in sorted(flood.statuses.items()))],
            ["open fds: before, after N, after 10*N", f"{before.fds}, {at_cap.fds}, {after.fds}"],
            ["RSS MiB: before, after 10*N", f"{before.rss_mb:.0f}, {after.rss_mb:.0f}"],
            ["fresh client: first call answered after",
             f"{flood.fresh_ms:.0f} ms" if flood.fresh_ms is not None else flood.fresh_error],
            ["ping on the oldest / newest abandoned session", "{} / {}".format(*flood.pings)],
        ],
    )  # fmt: skip


def verdict(met: bool) -> str:
    return "**met**" if met else "**MISSED**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--max-sessions", type=int, default=20, help="for the flood")
    parser.add_argument("--timeout", type=float, default=30, help="per call, seconds")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    # A SIGTERM unwinds the with blocks like an error, so the servers are killed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began, cap = time.monotonic(), args.max_sessions
    capacity, others = [cpu_capacity()], Path("/proc/loadavg").read_text().split()[0]
    with tempfile.TemporaryDirectory(prefix="sqlfence-mcp-load-") as tmp:
        workdir = Path(tmp)
        database = workdir / "shop.db"
        create_database(database)
        (workdir / "policy.yaml").write_text(POLICY)
        tokens_file = workdir / "tokens.yaml"
        tokens = [create_token(tokens_file, f"agent-{i}") for i in range(args.clients)]
        flooder, fresh = (create_token(tokens_file, name) for name in ("flooder", "fresh"))
        served = ("--tokens", str(tokens_file), "--audit", str(workdir / "audit"))
        run, load_server = load_phase(workdir, database, served, tokens, args)
        tables = [table(LOAD_HEADERS, run.rows()), run.resources(args.processes)]
        print(*tables, sep="\n\n", end="\n\n", flush=True)
        with ServerProcess(workdir, database, *served, "--max-sessions", str(cap)) as server:
            flood = anyio.run(flood_then_fresh, server, flooder, fresh, cap)
        problems = load_server.problems() + server.problems()
    capacity.append(cpu_capacity())
    tables.append(flood_table(flood, cap))

    failed = sum(run.stats.failed.values()) + sum(run.solo.failed.values())
    answered, overall = run.answered(), run.rows()[-3]
    at_cap, after = flood.at_cap, flood.after
    bounded = at_cap is not NOTHING and after.fds <= at_cap.fds + FLOOD_CONCURRENCY
    fresh_ok = flood.fresh_ms is not None
    verdicts = [
        f"- no failed calls: {verdict(failed == 0)} ({failed} failed; {answered:,} tool calls "
        f"answered as expected, {overall[2]:.0f}/s, p50 {overall[3]:.0f} ms, "
        f"p99 {overall[5]:.0f} ms)",
        f"- a fresh client served after {10 * cap} abandoned sessions: {verdict(fresh_ok)} ("
        + (f"first call answered after {flood.fresh_ms:.0f} ms)" if fresh_ok
           else f"{flood.fresh_error})"),
        f"- open descriptors bounded: {verdict(bounded)} ({at_cap.fds} after {cap} sessions, "
        f"{after.fds} after {10 * cap})",
    ]  # fmt: skip
    every = answered + sum(len(run.solo.done.get(kind, [])) for kind in MIX)
    closed = "yes" if run.events["audit.close"] else "**no** (no audit.close event)"
    used = (run.server_cpu_s + run.stats.cpu_s) / run.wall
    per_client_process = run.stats.cpu_s / run.wall / args.processes
    notes = [
        f"- server and clients together used {used:.2f} cores; some task waited for a CPU "
        f"{run.pressure:.0%} of the load's time (`/proc/pressure/cpu`); the machine gave two "
        f"busy processes {capacity[0]:.2f} cores before the run and {capacity[1]:.2f} after (a "
        f"one-second spin in each; load average {others} before the run)",
        f"- each client process used {per_client_process:.0%} of a core: "
        + ("not the bottleneck by itself" if per_client_process < 0.9 else "saturated"),
        f"- failures: {dict(run.stats.failures.most_common(5)) or 'none'}",
        f"- audit log: {run.audit}; {run.events['mcp.call']:,} mcp.call events for {every:,} "
        f"tool calls answered (with the lone client's); closed on SIGTERM: {closed}; by type: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(run.events.items())),
        f"- the servers stopped on SIGTERM in {load_server.stop_s:.1f} s and "
        f"{server.stop_s:.1f} s (exit status {load_server.process.returncode} and "
        f"{server.process.returncode})",
        f"- server log lines reporting an error: {len(problems)}"
        + (f", the first: `{problems[0][:200]}`" if problems else ""),
    ]
    print(tables[-1], "", *verdicts, *notes, sep="\n")
    ok = failed == 0 and fresh_ok and bounded
    if args.no_write:
        return 0 if ok else 1
    section = "\n".join(
        [
            "## MCP server under load (`benchmarks/mcp_load.py`)",
            "",
            f"Measured {machine()}; the run took {time.monotonic() - began:.0f} s.",
            "",
            "A `sqlfence mcp --transport http` process with a tokens file and an audit "
            f"directory, on a SQLite file of {CUSTOMERS:,} customers and {ORDERS:,} orders. "
            f"{args.clients} clients (the SDK's `Client` over streamable HTTP, each its own "
            f"session and token) call tools for {run.wall:.0f} s without pause: point "
            "selects, an aggregate over ~125 orders, `list_tables`, `describe_table`, and a "
            "denied statement (a denied table, a denied column, a write) that must come back "
            "as a tool error. Latency is from `call_tool` to its result, on the client; "
            "*once all sessions were open* leaves out the first seconds, while the "
            f"{args.clients} sessions were opening, and *1 client alone* ran for "
            f"{SOLO_SECONDS} s before the others started. Then "
            f"a second server at `--max-sessions {cap}` gets {10 * cap} sessions opened by raw "
            "initialize POSTs (each runs one query) and abandoned, and a fresh client "
            "connects.",
            "",
            *verdicts,
            "",
            *[part for text in tables for part in (text, "")],
            *notes,
        ]
    )
    print(f"\nwrote {write_section('mcp_load', section)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
