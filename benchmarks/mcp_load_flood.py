"""The flood of ``benchmarks/mcp_load.py``: sessions opened by raw initialize POSTs and never
closed, then a fresh client that must still be served."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from common import table
from mcp_load_clients import failure_of, mcp_session
from mcp_load_server import NOTHING, ServerProcess, Usage

from tests.integrations.mcp_helpers import text_of

PROTOCOL = "2025-06-18"  # what the raw flood speaks: a handshake-era session per initialize
FLOOD_CONCURRENCY = 10
ACCEPT = "application/json, text/event-stream"


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
