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

The pieces: ``mcp_load_workload.py`` (the database, the policy and the mix of calls),
``mcp_load_clients.py``, ``mcp_load_server.py`` (the server process and the CPU the machine
gives) and ``mcp_load_flood.py``; the load phase and the report are here.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from common import machine, percentile, table, write_section
from mcp_load_clients import SESSION_OPEN, Stats, load
from mcp_load_flood import FLOOD_CONCURRENCY, flood_table, flood_then_fresh
from mcp_load_server import NOTHING, ServerProcess, Usage, cpu_capacity, cpu_pressure_us
from mcp_load_workload import CUSTOMERS, MIX, ORDERS, POLICY, create_database

from sqlfence.integrations.mcp_tokens import create_token
from sqlfence.observe import verify

SOLO_SECONDS = 3  # one client alone first: the latency without queueing, for scale
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
