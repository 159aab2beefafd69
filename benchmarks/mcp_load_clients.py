"""The clients of ``benchmarks/mcp_load.py``: concurrent MCP sessions calling tools without
pause, spread over processes, and what they saw."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context

import anyio
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import REQUEST_TIMEOUT
from mcp_load_workload import judge, next_call

SESSION_OPEN = "session open (initialize)"


def failure_of(error: BaseException) -> str:
    """A failure's kind for counting: ``timeout``, or the exception's type and message."""
    timeout = isinstance(error, MCPError) and error.code == REQUEST_TIMEOUT
    if timeout or isinstance(error, TimeoutError):
        return "timeout"
    return f"{type(error).__name__}: {error}"[:160]


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
