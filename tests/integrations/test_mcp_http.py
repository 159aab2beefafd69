"""The MCP server over streamable HTTP with bearer tokens: 401 without a valid one, the token's
identity in the audit log, tokens rotated by editing the file, and the token command.

A real server process on 127.0.0.1 and the mcp SDK's own client.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from sqlfence.errors import ConfigurationError
from sqlfence.integrations.mcp_tokens import TokenFile, create_token, digest
from tests.integrations.mcp_helpers import audit_events, free_port, text_of, wait_for_port

POLICY = """\
default:
  read_only: true
  denied_tables: [secrets]
agents:
  loader: {read_only: false}
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """people and secrets."""
    path = tmp_path / "http.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO people VALUES (?, ?)", [(1, "Ada"), (2, "Bob")])
        db.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
    return path


@contextmanager
def _server(tmp_path: Path, database: Path, *options: str) -> Iterator[str]:
    """``sqlfence mcp --transport http`` on a free loopback port; yields its URL."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "sqlfence.integrations.mcp", "--transport", "http",
            "--port", str(port), "--policy", "policy.yaml", *options, f"sqlite:///{database}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path, database: Path) -> Iterator[tuple[str, Path, Path]]:
    """A server with a tokens file (one token for 'loader'): (url, tokens file, audit dir)."""
    tokens, audit = tmp_path / "tokens.yaml", tmp_path / "audit"
    token = create_token(tokens, "loader")
    (tmp_path / "loader.token").write_text(token)
    with _server(tmp_path, database, "--tokens", str(tokens), "--audit", str(audit)) as url:
        yield url, tokens, audit


async def _calls(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return [await client.call_tool(name, arguments) for name, arguments in calls]


def _post(url: str, token: str | None = None) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def _text(result: Any) -> str:
    return text_of(result)


@pytest.mark.parametrize("token", [None, "sqf_wrong", "sqf_" + "0" * 43])
def test_without_a_valid_token_the_answer_is_401(
    served: tuple[str, Path, Path], token: str | None
) -> None:
    """No token or a wrong one: 401 with a WWW-Authenticate header naming the resource metadata."""
    url, _tokens, _audit = served
    response = _post(url, token)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert "resource_metadata=" in challenge
    metadata = httpx2.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
    assert metadata.status_code == 200
    assert metadata.json()["resource"].rstrip("/") == url


def test_the_token_chooses_the_identity(tmp_path: Path, served: tuple[str, Path, Path]) -> None:
    """A valid token's identity is the policy section and the audited agent id."""
    url, _tokens, audit = served
    token = (tmp_path / "loader.token").read_text()
    [delete] = anyio.run(
        _calls, url, token, [("query", {"sql": "DELETE FROM people WHERE id = 1"})]
    )
    assert not delete.is_error, _text(delete)
    with sqlite3.connect(tmp_path / "http.db") as db:
        assert db.execute("SELECT count(*) FROM people").fetchone() == (1,)
    deadline = time.monotonic() + 10
    agents: set[str] = set()
    while time.monotonic() < deadline and "loader" not in agents:
        agents = {
            json.loads(line).get("agent_id")
            for path in audit.rglob("*.jsonl")
            for line in path.read_text().splitlines()
            if line.strip()
        }
        time.sleep(0.1)
    assert "loader" in agents


def test_tokens_rotate_without_a_restart(tmp_path: Path, served: tuple[str, Path, Path]) -> None:
    """A token added to the file works at once; one removed from it is refused at once."""
    url, tokens, _audit = served
    old = (tmp_path / "loader.token").read_text()
    new = create_token(tokens, "analyst")
    assert _post(url, new).status_code == 200
    kept = [e for e in yaml.safe_load(tokens.read_text())["tokens"] if e["sha256"] != digest(old)]
    tokens.write_text(yaml.safe_dump({"tokens": kept}))
    assert _post(url, old).status_code == 401
    assert _post(url, new).status_code == 200
    tokens.write_text("tokens: [broken")  # a broken edit admits nobody
    assert _post(url, new).status_code == 401


def test_the_tokens_file_keeps_only_hashes(tmp_path: Path) -> None:
    """create_token writes the digest, never the token, in a file only its owner can read."""
    path = tmp_path / "tokens.yaml"
    token = create_token(path, "analyst", tenant="acme")
    text = path.read_text()
    assert token not in text
    assert digest(token) in text
    assert path.stat().st_mode & 0o077 == 0
    identity = TokenFile(path).identity(token)
    assert identity is not None
    assert (identity.agent_id, identity.tenant) == ("analyst", "acme")
    assert TokenFile(path).identity(token + "x") is None


def test_the_token_command_prints_the_token_once(tmp_path: Path) -> None:
    """`sqlfence mcp token create` prints the token on stdout and stores its hash."""
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "mcp", "token", "create",
         "--tokens", "t.yaml", "--agent-id", "analyst"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = done.stdout.strip()
    assert token.startswith("sqf_")
    assert TokenFile(tmp_path / "t.yaml").identity(token) is not None
    assert token not in done.stderr


def test_any_address_needs_tokens(tmp_path: Path, database: Path) -> None:
    """Binding a non-loopback address with a tokens file is accepted at the check; without one
    it is refused (exit 2)."""
    done = subprocess.run(
        [sys.executable, "-m", "sqlfence.cli", "mcp", "--transport", "http",
         "--host", "0.0.0.0", f"sqlite:///{database}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert "without authentication" in done.stderr


def test_abandoned_sessions_do_not_lock_out_a_fresh_client(tmp_path: Path, database: Path) -> None:
    """Four times --max-sessions opened and abandoned: a fresh client is still served, and the
    sessions idle longest were the ones ended to make room."""
    with _server(tmp_path, database, "--max-sessions", "5") as url:
        opened = [_post(url) for _ in range(20)]
        assert {response.status_code for response in opened} == {200}
        calls: list[tuple[str, dict[str, Any]]] = [("list_tables", {})]
        [listing] = anyio.run(_calls_without_token, url, calls)
        assert not listing.is_error, _text(listing)
        assert json.loads(_text(listing))["tables"] == ["people"]
        assert _session_answers(url, opened[0]) == 404  # the idlest, ended for a newer one
        assert _session_answers(url, opened[-1]) == 200  # the newest abandoned one lives


async def _calls_without_token(url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async with Client(streamable_http_client(url)) as client:
        return [await client.call_tool(name, arguments) for name, arguments in calls]


def _session_answers(url: str, opening: httpx2.Response) -> int:
    """The status a ping on the session ``opening`` created gets now."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": opening.headers["mcp-session-id"],
        "Mcp-Protocol-Version": "2025-06-18",
    }
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    return httpx2.post(url, json=ping, headers=headers, timeout=10).status_code


def _open(url: str, token: str) -> httpx2.Response:
    response = _post(url, token)
    assert response.status_code == 200, response.text
    return response


def test_one_token_cannot_hoard_sessions(tmp_path: Path, database: Path) -> None:
    """Past --max-sessions-per-identity a token's own oldest session ends; another token's
    sessions are untouched and a fresh client of it is served."""
    tokens = tmp_path / "tokens.yaml"
    hoarder, other = create_token(tokens, "loader"), create_token(tokens, "analyst")
    options = ("--tokens", str(tokens), "--max-sessions", "4", "--max-sessions-per-identity", "2")
    with _server(tmp_path, database, *options) as url:
        kept = _open(url, other)
        opened = [_open(url, hoarder) for _ in range(5)]
        assert [_session_status(url, s, hoarder) for s in opened] == [404, 404, 404, 200, 200]
        assert _session_status(url, kept, other) == 200
        calls: list[tuple[str, dict[str, Any]]] = [("list_tables", {})]
        [listing] = anyio.run(_calls, url, other, calls)
        assert not listing.is_error, _text(listing)


def test_a_cancelled_call_commits_nothing(tmp_path: Path, database: Path) -> None:
    """notifications/cancelled for a running write: the write is rolled back, and the audit
    log says the call failed."""
    tokens, audit = tmp_path / "tokens.yaml", tmp_path / "audit"
    writer = create_token(tokens, "loader")
    with _server(tmp_path, database, "--tokens", str(tokens), "--audit", str(audit)) as url:
        session = _open(url, writer)
        slow = (
            "INSERT INTO people (id, name) SELECT 1000 + i, 'bulk' FROM (WITH RECURSIVE r(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 1500000) SELECT i FROM r)"
        )
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "query", "arguments": {"sql": slow}}}  # fmt: skip
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": 7, "reason": "test"}}  # fmt: skip
        running = threading.Thread(target=_send, args=(url, session, writer, call))
        running.start()
        time.sleep(0.5)  # the INSERT is running (no assertion on time: the outcome is checked)
        _send(url, session, writer, cancel)
        running.join(120)
        assert not running.is_alive()
        # the client was answered at once; the server's worker finishes the call later
        found = audit_events(
            audit, lambda seen: any(e["event_type"] == "mcp.call" for e in seen), timeout=120
        )
        with sqlite3.connect(tmp_path / "http.db") as db:
            bulk = db.execute("SELECT count(*) FROM people WHERE name = 'bulk'").fetchone()
        assert bulk == (0,)
    events = [e for e in found if e["event_type"] == "mcp.call"]
    assert [(e["details"]["tool"], e["status"]) for e in events] == [("query", "error")]
    assert "cancelled" in events[0]["error"]


def test_the_tokens_file_is_strict_and_edits_are_seen(tmp_path: Path) -> None:
    """Duplicate hashes, unknown keys and empty ids are refused; an edit that keeps the size
    and the modification time is still noticed."""
    path = tmp_path / "tokens.yaml"
    token = create_token(path, "analyst")
    entry = {"sha256": digest(token), "agent_id": "analyst"}
    for bad, reason in [
        ({"tokens": [entry, {**entry, "agent_id": "admin"}]}, "same sha256"),
        ({"tokens": [{**entry, "role": "admin"}]}, "unknown key 'role'"),
        ({"tokens": [{**entry, "agent_id": " "}]}, "agent_id must be"),
        ({"tokens": [entry], "junk": 1}, "unknown key 'junk'"),
    ]:
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigurationError, match=reason):
            TokenFile(path)
    path.write_text(yaml.safe_dump({"tokens": [{**entry, "agent_id": "aaaaaaa"}]}))
    tokens = TokenFile(path)
    before = path.stat()
    path.write_text(yaml.safe_dump({"tokens": [{**entry, "agent_id": "bbbbbbb"}]}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p would leave it
    identity = tokens.identity(token)
    assert identity is not None
    assert identity.agent_id == "bbbbbbb"


def test_the_servers_own_origin_is_accepted(tmp_path: Path, database: Path) -> None:
    """A browser page of the server's own origin may call it; another origin may not."""
    with _server(tmp_path, database) as url:
        own = url.rsplit("/", 1)[0]
        assert _post_from(url, own).status_code == 200
        assert _post_from(url, "http://evil.example").status_code == 403


def _post_from(url: str, origin: str) -> httpx2.Response:
    headers = {"Accept": "application/json, text/event-stream", "Origin": origin}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "page", "version": "1"}}}  # fmt: skip
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def _session_status(url: str, opening: httpx2.Response, token: str) -> int:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": opening.headers["mcp-session-id"],
        "Mcp-Protocol-Version": "2025-06-18",
        "Authorization": f"Bearer {token}",
    }
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    return httpx2.post(url, json=ping, headers=headers, timeout=10).status_code


def _send(url: str, opening: httpx2.Response, token: str, message: dict[str, Any]) -> None:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": opening.headers["mcp-session-id"],
        "Mcp-Protocol-Version": "2025-06-18",
        "Authorization": f"Bearer {token}",
    }
    httpx2.post(url, json=message, headers=headers, timeout=120)


def _all_events(audit: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(audit.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_the_public_url_is_an_allowed_host(tmp_path: Path, database: Path) -> None:
    """Behind a proxy that keeps the Host header, --public-url's host is accepted."""
    with _server(tmp_path, database, "--public-url", "https://mcp.example.test/mcp") as url:
        headers = {"Accept": "application/json, text/event-stream", "Host": "mcp.example.test"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "p", "version": "1"}}}  # fmt: skip
        assert httpx2.post(url, json=body, headers=headers, timeout=10).status_code == 200
        headers["Host"] = "other.example.test"
        assert httpx2.post(url, json=body, headers=headers, timeout=10).status_code == 421
