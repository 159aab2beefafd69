"""What the MCP server tests share: tool result text, audit events, a port to serve on."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters


def text_of(result: Any) -> str:
    """The text parts of a tool result, joined."""
    return "".join(getattr(part, "text", "") for part in result.content)


def audit_events(
    audit: Path, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 10
) -> list[dict[str, Any]]:
    """Every event of the audit directory, read again until ``until(events)`` or the timeout
    (the server writes them from a background thread)."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = [
            json.loads(line)
            for path in sorted(audit.rglob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]
        if until(events):
            break
        time.sleep(0.1)
    return events


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)


def stdio_server(tmp_path: Path, policy: str, *args: str) -> StdioServerParameters:
    """``sqlfence mcp`` over stdio in ``tmp_path``, with ``policy`` written to policy.yaml."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "sqlfence.integrations.mcp", "--policy", str(path), *args],
        cwd=str(tmp_path),
    )
