"""The MCP server, driven by the mcp SDK's own client over stdio against a real database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import Implementation

from sqlfence.errors import ConfigurationError
from sqlfence.integrations.mcp import MCPSettings
from sqlfence.sandbox import AgentSandbox
from tests.integrations.mcp_helpers import (
    audit_events,
    free_port,
    stdio_server,
    text_of,
    wait_for_port,
)

POLICY = """\
read_only: true
denied_tables: [secrets]
denied_columns: [people.salary]
max_rows: 3
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A SQLite database with an allowed ``people`` table and a denied ``secrets`` table."""
    path = tmp_path / "mcp.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, salary INT)")
        db.executemany(
            "INSERT INTO people (name, salary) VALUES (?, ?)",
            [(f"p{i}", i * 100) for i in range(5)],
        )
        db.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
    return path


def _server(tmp_path: Path, *args: str) -> StdioServerParameters:
    return stdio_server(tmp_path, POLICY, *args)


async def _session(
    params: StdioServerParameters | str, calls: list[tuple[str, dict[str, Any]]]
) -> Any:
    results: dict[str, Any] = {}
    async with Client(params, client_info=Implementation(name="test-agent", version="1")) as c:
        results["tools"] = sorted(tool.name for tool in (await c.list_tools()).tools)
        for name, arguments in calls:
            results.setdefault(name, []).append(await c.call_tool(name, arguments))
    return results


def _text(result: Any) -> str:
    return text_of(result)


def _audit_events(audit: Path) -> list[dict[str, Any]]:
    return audit_events(audit, lambda events: any(e.get("event_type") == "denial" for e in events))


def test_tools_allowed_and_denied_calls_over_stdio(tmp_path: Path, database: Path) -> None:
    """Tools are listed, an allowed query is answered capped, a denial is a tool error, all
    are audited under the operator's identity with the client's name beside it."""
    audit = tmp_path / "audit"
    with sqlite3.connect(database) as db:
        db.execute("CREATE VIEW names AS SELECT id, name FROM people")
        db.execute("CREATE VIEW leaked AS SELECT value FROM secrets")  # over a denied table
    params = _server(tmp_path, "--audit", str(audit), f"sqlite:///{database}")
    calls = [
        ("query", {"sql": "SELECT id, name FROM people ORDER BY id"}),
        ("query", {"sql": "SELECT value FROM secrets"}),
        ("list_tables", {}),
        ("describe_table", {"table": "people"}),
        ("describe_table", {"table": "secrets"}),
        ("explain", {"sql": "SELECT name FROM people WHERE id = 1"}),
    ]
    results = anyio.run(_session, params, calls)

    assert results["tools"] == ["describe_table", "explain", "list_tables", "query"]
    allowed, denied = results["query"]
    assert not allowed.is_error
    answer = json.loads(_text(allowed))
    assert answer["columns"] == ["id", "name"]
    assert answer["rows"] == [[1, "p0"], [2, "p1"], [3, "p2"]]
    assert answer["truncated"] is True
    assert denied.is_error
    assert "secrets is on the deny list" in _text(denied)

    assert json.loads(_text(results["list_tables"][0])) == {
        "tables": ["names", "people"],
        "views": ["names"],
    }
    people, secrets = results["describe_table"]
    assert [c["name"] for c in json.loads(_text(people))["columns"]] == ["id", "name"]
    assert secrets.is_error
    assert not results["explain"][0].is_error

    events = _audit_events(audit)
    mine = [e for e in events if e.get("agent_id") == "mcp-client"]
    assert {e.get("client_name") for e in mine} == {"test-agent"}
    queries = {(e["event_type"], e["status"], e["query"]) for e in mine if e["query"]}
    assert ("denial", "denied", "SELECT value FROM secrets") in queries
    assert ("query", "ok", "SELECT id, name FROM people ORDER BY id") in queries
    connects = [e for e in mine if e["event_type"] == "connect"]
    assert len(connects) == 2, "one agent and one catalog connection for the whole session"


def test_sandbox_per_session_from_snapshot(tmp_path: Path) -> None:
    """--sandbox gives the session its own SQLite sandbox loaded from a golden snapshot."""
    root = tmp_path / ".sqlfence"
    with AgentSandbox.create(agent_id="golden", root=root) as sandbox:
        connection = sandbox.get_connection()
        connection.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO people (name) VALUES ('Ada')")
        connection.commit()
        connection.close()
        sandbox.create_snapshot("golden", shared=True)
    params = _server(tmp_path, "--sandbox", "--snapshot", "golden", "--sandbox-root", str(root))
    results = anyio.run(_session, params, [("query", {"sql": "SELECT name FROM people"})])
    assert json.loads(_text(results["query"][0]))["rows"] == [["Ada"]]
    assert not list((root / "sandboxes").rglob("*.db")), "the session's sandbox was not destroyed"


def test_streamable_http_transport(tmp_path: Path, database: Path) -> None:
    """Over streamable HTTP on 127.0.0.1: an allowed query answers, a denied one is an error."""
    import subprocess

    port = free_port()
    params = _server(tmp_path, "--transport", "http", "--port", str(port), f"sqlite:///{database}")
    # Nothing reads the server's output: a pipe left unread could fill and stall it.
    server = subprocess.Popen(
        [params.command, *params.args],
        cwd=params.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        calls = [
            ("query", {"sql": "SELECT name FROM people"}),
            ("query", {"sql": "SELECT * FROM secrets"}),
        ]
        results = anyio.run(_session, f"http://127.0.0.1:{port}/mcp", calls)
    finally:
        server.terminate()
        server.wait(timeout=10)
    allowed, denied = results["query"]
    assert not allowed.is_error
    assert json.loads(_text(allowed))["truncated"] is True
    assert denied.is_error
    assert "secrets is on the deny list" in _text(denied)


@pytest.mark.parametrize(
    ("audit", "error", "message"),
    [
        ({"retention_day": 9}, ConfigurationError, "invalid audit= settings"),
        (42, TypeError, r"audit= takes .*, not int 42"),
    ],
)
def test_a_wrong_audit_option_is_named_before_the_database_is_reached(
    tmp_path: Path, audit: object, error: type[Exception], message: str
) -> None:
    """The server's audit= is the fence option: check() names a wrong one first (the
    database is missing, which would be an OperationalError)."""
    settings = MCPSettings(url=f"sqlite:///{tmp_path / 'missing.db'}", audit=audit)  # type: ignore[arg-type]  # refused shapes
    with pytest.raises(error, match=message):
        settings.check()
