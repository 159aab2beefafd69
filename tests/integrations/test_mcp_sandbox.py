"""MCP sandbox sessions: the agent owns its namespace (writes and DDL inside it), the sandbox
is named in every event, and its lifecycle is in the audit log.

The real server over stdio with --sandbox, the mcp SDK's own client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.integrations.mcp_helpers import audit_events, text_of

WORK = [
    ("query", {"sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"}),
    ("query", {"sql": "INSERT INTO notes (body) VALUES ('first'), ('second')"}),
    ("query", {"sql": "SELECT body FROM notes ORDER BY id"}),
    ("list_tables", {}),
]


async def _calls(params: StdioServerParameters) -> tuple[list[Any], list[Any]]:
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        return tools, [await client.call_tool(name, arguments) for name, arguments in WORK]


def _server(tmp_path: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "sqlfence.integrations.mcp", "--sandbox", *args],
        cwd=str(tmp_path),
    )


def test_the_agent_owns_its_sandbox(tmp_path: Path) -> None:
    """Without a policy the session's sandbox takes DDL and writes; query says it may write."""
    root, audit = tmp_path / ".sqlfence", tmp_path / "audit"
    params = _server(tmp_path, "--sandbox-root", str(root), "--audit", str(audit))
    tools, [create, insert, select, listing] = anyio.run(_calls, params)
    for result in (create, insert, select, listing):
        assert not result.is_error, text_of(result)
    assert json.loads(text_of(select))["rows"] == [["first"], ["second"]]
    assert json.loads(text_of(listing))["tables"] == ["notes"]
    query = next(tool for tool in tools if tool.name == "query")
    assert query.annotations.read_only_hint is False
    assert not list((root / "sandboxes").rglob("*.db")), "the sandbox ends with the session"

    events = audit_events(
        audit, lambda found: any(e["event_type"] == "sandbox.destroyed" for e in found)
    )
    kinds = [e["event_type"] for e in events]
    assert "sandbox.created" in kinds
    assert "sandbox.destroyed" in kinds
    statements = [e for e in events if e["event_type"] in {"query", "schema_change"}]
    assert statements
    sandboxes = {e.get("sandbox") for e in events if not e["event_type"].startswith("audit.")}
    assert len(sandboxes) == 1
    assert None not in sandboxes, "every event names the sandbox"
    calls = [e for e in events if e["event_type"] == "mcp.call"]
    assert [e["details"]["tool"] for e in calls] == [name for name, _ in WORK]


def test_a_sandbox_policy_still_applies(tmp_path: Path) -> None:
    """With --policy the operator's policy decides, in the sandbox too."""
    (tmp_path / "policy.yaml").write_text("read_only: true\n")
    root = tmp_path / ".sqlfence"
    params = _server(tmp_path, "--sandbox-root", str(root), "--policy", "policy.yaml")
    _tools, [create, *_rest] = anyio.run(_calls, params)
    assert create.is_error
    assert "read-only" in text_of(create) or "not allowed" in text_of(create)


def test_sandbox_misconfiguration_exits_2(tmp_path: Path) -> None:
    """A sandbox root that cannot be made is refused at start with its reason."""
    (tmp_path / "file").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "mcp", "--sandbox", "--sandbox-root",
         str(tmp_path / "file" / "root")],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


def test_a_sessions_sandbox_has_a_disk_quota(tmp_path: Path) -> None:
    """--sandbox-quota-mb bounds what one session may store."""
    root = tmp_path / ".sqlfence"
    params = _server(tmp_path, "--sandbox-root", str(root), "--sandbox-quota-mb", "1")
    calls = [
        ("query", {"sql": "CREATE TABLE b (z BLOB)"}),
        ("query", {"sql": "INSERT INTO b VALUES (zeroblob(2000000))"}),
        ("query", {"sql": "INSERT INTO b VALUES (zeroblob(10))"}),
    ]
    results = anyio.run(_sandbox_calls, params, calls)
    assert not results[0].is_error
    assert not results[1].is_error
    assert results[2].is_error
    assert "disk quota" in text_of(results[2])


async def _sandbox_calls(params: StdioServerParameters, calls: list[Any]) -> list[Any]:
    async with Client(params) as client:
        return [await client.call_tool(name, arguments) for name, arguments in calls]
