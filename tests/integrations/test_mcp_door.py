"""The MCP server as an agent's door: the operator's identity, transactions, checked
configuration, every call audited, results sized for a context window.

Driven by the mcp SDK's own client over stdio against a real SQLite database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import Implementation

from tests.integrations.mcp_helpers import audit_events, stdio_server, text_of

POLICY = """\
default:
  read_only: true
  denied_tables: [secrets]
  max_rows: 50
agents:
  loader: {read_only: false}
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """people (allowed, with one 5 MB value) and secrets (denied)."""
    path = tmp_path / "door.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, bio TEXT)")
        db.executemany("INSERT INTO people (id, name) VALUES (?, ?)", [(1, "Ada"), (2, "Bob")])
        db.execute("UPDATE people SET bio = ? WHERE id = 2", ("x" * 5_000_000,))
        db.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
    return path


def _params(tmp_path: Path, *args: str) -> StdioServerParameters:
    return stdio_server(tmp_path, POLICY, *args)


async def _calls(
    params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]], client: str = "loader"
) -> tuple[list[Any], list[Any]]:
    async with Client(params, client_info=Implementation(name=client, version="1")) as session:
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def _text(result: Any) -> str:
    return text_of(result)


def _names(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT name FROM people ORDER BY id")]


def _events(audit: Path, wanted: int) -> list[dict[str, Any]]:
    return audit_events(
        audit, lambda events: sum(e.get("event_type") == "denial" for e in events) >= wanted
    )


def test_a_client_cannot_choose_its_policy_section(tmp_path: Path, database: Path) -> None:
    """A client calling itself 'loader' still gets the operator's identity: its DELETE is denied."""
    params = _params(tmp_path, f"sqlite:///{database}")
    _tools, [delete] = anyio.run(_calls, params, [("query", {"sql": "DELETE FROM people"})])
    assert delete.is_error
    assert "read-only" in _text(delete)
    assert _names(database) == ["Ada", "Bob"]


def test_a_write_is_committed_by_the_call(tmp_path: Path, database: Path) -> None:
    """With --agent-id loader a DELETE runs and a raw connection sees it after the call."""
    params = _params(tmp_path, "--agent-id", "loader", f"sqlite:///{database}")
    calls = [("query", {"sql": "DELETE FROM people WHERE id = 1"})]
    _tools, [delete] = anyio.run(_calls, params, calls)
    assert not delete.is_error, _text(delete)
    assert json.loads(_text(delete))["row_count"] == 1
    assert _names(database) == ["Bob"]


def test_a_failed_call_leaves_nothing_behind(tmp_path: Path, database: Path) -> None:
    """A call that fails is rolled back, and the next call of the session works."""
    params = _params(tmp_path, "--agent-id", "loader", f"sqlite:///{database}")
    calls = [
        ("query", {"sql": "INSERT INTO people (id, name) VALUES (3, 'Cid')"}),
        ("query", {"sql": "INSERT INTO people (id, name) VALUES (4, NULL)"}),
        ("query", {"sql": "SELECT count(*) FROM people"}),
    ]
    _tools, [first, failed, count] = anyio.run(_calls, params, calls)
    assert not first.is_error
    assert failed.is_error
    assert "IntegrityError" in _text(failed)
    assert json.loads(_text(count))["rows"] == [[3]]
    assert _names(database) == ["Ada", "Bob", "Cid"]


def test_results_are_sized_and_flagged(tmp_path: Path, database: Path) -> None:
    """A 5 MB value comes back cut to the per-value budget, flagged, as compact JSON."""
    params = _params(tmp_path, "--max-cell-bytes", "1000", f"sqlite:///{database}")
    _tools, [result] = anyio.run(
        _calls, params, [("query", {"sql": "SELECT id, bio FROM people ORDER BY id"})]
    )
    text = _text(result)
    answer = json.loads(text)
    assert answer["truncated"] is True
    assert answer["truncated_by"] == ["max_cell_bytes"]
    assert answer["rows"][0] == [1, None]
    assert len(json.dumps(answer["rows"][1][1])) == 1000  # the value's JSON text, quotes too
    assert "\n" not in text, "compact JSON"
    assert ", " not in text
    assert len(text) < 2000


def test_result_byte_budget(tmp_path: Path, database: Path) -> None:
    """Rows past max_result_bytes are left out and the limit is named."""
    params = _params(
        tmp_path, "--max-result-bytes", "200", "--max-cell-bytes", "250", f"sqlite:///{database}"
    )
    _tools, [result] = anyio.run(
        _calls, params, [("query", {"sql": "SELECT id, bio FROM people ORDER BY id"})]
    )
    answer = json.loads(_text(result))
    assert answer["rows"] == [[1, None]]
    assert answer["truncated_by"] == ["max_cell_bytes", "max_result_bytes"]


def test_denied_catalog_calls_are_audited(tmp_path: Path, database: Path) -> None:
    """Denied describe_table and explain calls leave denial events; a denied table answers as
    a missing one."""
    audit = tmp_path / "audit"
    params = _params(tmp_path, "--audit", str(audit), f"sqlite:///{database}")
    calls = [
        ("describe_table", {"table": "secrets"}),
        ("describe_table", {"table": "nosuch"}),
        ("explain", {"sql": "SELECT * FROM secrets"}),
    ]
    _tools, [denied, missing, explained] = anyio.run(_calls, params, calls)
    assert denied.is_error
    assert missing.is_error
    assert explained.is_error
    assert _text(denied).replace("secrets", "X") == _text(missing).replace("nosuch", "X")
    events = _events(audit, wanted=2)
    denials = [e for e in events if e["event_type"] == "denial"]
    assert {e["query"] for e in denials} >= {
        'SELECT 1 FROM "main"."secrets"',
        "SELECT * FROM secrets",
    }
    assert {e["agent_id"] for e in denials} == {"mcp-client"}
    assert {e["client_name"] for e in denials} == {"loader"}


def test_annotations_follow_the_policy(tmp_path: Path, database: Path) -> None:
    """query is read-only for a read-only identity and destructive for a writer."""
    read_only, _ = anyio.run(_calls, _params(tmp_path, f"sqlite:///{database}"), [])
    writer, _ = anyio.run(
        _calls, _params(tmp_path, "--agent-id", "loader", f"sqlite:///{database}"), []
    )
    by_name = {tool.name: tool for tool in read_only}
    assert by_name["query"].annotations.read_only_hint is True
    assert by_name["list_tables"].annotations.read_only_hint is True
    query = next(tool for tool in writer if tool.name == "query")
    assert query.annotations.read_only_hint is False
    assert query.annotations.destructive_hint is True
    description = query.description or ""
    assert "200 rows" in description, "the description names the limits"
    assert "30000 ms" in description


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--policy", "missing.yaml", "sqlite:///x.db"], "missing.yaml"),
        (["--policy", "{bad}", "sqlite:///x.db"], "policy"),
        (["--policy", "misspelt.yaml", "sqlite:///x.db"], "read_onyl"),
        (["nosuch://host/db"], "unknown URL scheme"),
        (["sqlite:////nonexistent-dir/sub/x.db"], "no SQLite database"),
        (["--sandbox", "--snapshot", "nosuch"], "snapshot not found"),
        (["--max-rows", "0", "sqlite:///x.db"], "at least 1"),
        (["--max-rows", "many", "sqlite:///x.db"], "'many' is not a whole number"),
        (["--transport", "http", "--host", "0.0.0.0", "sqlite:///x.db"], "loopback"),
        (["--tools", "nosuch.yaml", "sqlite:///x.db"], "nosuch.yaml"),
        (["--tools", "unbound.yaml", "sqlite:///x.db"], ":who is not declared"),
        (["--tools", "mistyped.yaml", "sqlite:///x.db"], "tools.0.parameters.n.type"),
    ],
)
def test_misconfiguration_exits_2_with_its_reason(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    """Every checkable problem stops the server at start: exit 2, one line, no traceback."""
    (tmp_path / "misspelt.yaml").write_text("read_onyl: true\n")
    (tmp_path / "unbound.yaml").write_text(
        "tools: [{name: t, description: d, sql: 'SELECT :who'}]\n"
    )
    (tmp_path / "mistyped.yaml").write_text(
        "tools: [{name: t, description: d, sql: 'SELECT :n', parameters: {n: {type: int}}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "mcp", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert reason in done.stderr.strip().splitlines()[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_budgets_count_the_json_sent(tmp_path: Path, database: Path) -> None:
    """A value of control characters is cut by its escaped JSON size; column names count."""
    params = _params(
        tmp_path, "--max-cell-bytes", "600", "--max-result-bytes", "2000", f"sqlite:///{database}"
    )
    wide = ", ".join(f'1 AS "{chr(1) * 40}{i}"' for i in range(40))
    calls = [
        ("query", {"sql": "SELECT replace(hex(zeroblob(500)), '00', char(1)) AS c"}),
        ("query", {"sql": f"SELECT {wide}"}),
    ]
    _tools, [escaped, named] = anyio.run(_calls, params, calls)
    value = json.loads(_text(escaped))["rows"][0][0]
    assert len(json.dumps(value)) <= 600
    assert len(_text(escaped).encode()) <= 2000
    assert named.is_error
    assert "column names alone" in _text(named)


def test_calls_that_never_reach_a_tool_are_audited(tmp_path: Path, database: Path) -> None:
    """An unknown tool and arguments that fail the input schema leave mcp.call events too."""
    audit = tmp_path / "audit"
    params = _params(tmp_path, "--audit", str(audit), f"sqlite:///{database}")
    calls = [("nosuch", {}), ("query", {}), ("query", {"sql": 5}), ("list_tables", {})]
    _tools, results = anyio.run(_calls, params, calls)
    assert [result.is_error for result in results] == [True, True, True, False]
    events = audit_events(
        audit, lambda found: sum(e["event_type"] == "mcp.call" for e in found) >= 4
    )
    seen = [(e["details"]["tool"], e["status"]) for e in events if e["event_type"] == "mcp.call"]
    assert seen == [("nosuch", "error"), ("query", "error"), ("query", "error"),
                    ("list_tables", "ok")]  # fmt: skip


def test_a_long_client_name_is_cut(tmp_path: Path, database: Path) -> None:
    """clientInfo.name is copied into every event: only its first 200 characters are kept."""
    audit = tmp_path / "audit"
    params = _params(tmp_path, "--audit", str(audit), f"sqlite:///{database}")
    calls: list[tuple[str, dict[str, Any]]] = [("list_tables", {})]
    anyio.run(_calls, params, calls, "x" * 100_000)
    events = audit_events(audit, lambda found: any(e["event_type"] == "mcp.call" for e in found))
    names = {e.get("client_name") for e in events if e.get("client_name")}
    assert names == {"x" * 200}


def test_blobs_and_infinities_come_back_as_json(tmp_path: Path, database: Path) -> None:
    """A big blob is cut to the value budget before it is turned into hex; infinities are
    text, the same in the JSON text and the structured content."""
    params = _params(tmp_path, "--max-cell-bytes", "100", f"sqlite:///{database}")
    calls = [
        ("query", {"sql": "SELECT zeroblob(1000000) AS b"}),
        ("query", {"sql": "SELECT 1e999 AS up, -1e999 AS down"}),
    ]
    _tools, [blob, infinite] = anyio.run(_calls, params, calls)
    answer = json.loads(_text(blob))
    assert answer["truncated_by"] == ["max_cell_bytes"]
    value = answer["rows"][0][0]
    assert set(value) == {"0"}
    assert 90 <= len(json.dumps(value)) <= 100
    assert json.loads(_text(infinite))["rows"] == [["inf", "-inf"]]
    assert infinite.structured_content["rows"] == [["inf", "-inf"]]


def test_a_huge_value_is_an_error_not_gigabytes(tmp_path: Path, database: Path) -> None:
    """SQLite builds a value whole before the cell budget cuts it: past 16 MiB it is an
    error of the statement, and tool names sent by the client are cut in the audit log."""
    audit = tmp_path / "audit"
    params = _params(tmp_path, "--audit", str(audit), f"sqlite:///{database}")
    calls = [("query", {"sql": "SELECT zeroblob(300000000) AS b"}), ("x" * 10_000, {})]
    _tools, [huge, unknown] = anyio.run(_calls, params, calls)
    assert huge.is_error
    assert "too big" in _text(huge)
    assert unknown.is_error
    events = audit_events(
        audit, lambda found: sum(e["event_type"] == "mcp.call" for e in found) >= 2
    )
    tools = [e["details"]["tool"] for e in events if e["event_type"] == "mcp.call"]
    assert tools == ["query", "x" * 200]
    assert all(len(json.dumps(e)) < 10_000 for e in events)
