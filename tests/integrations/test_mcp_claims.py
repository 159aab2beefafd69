"""A token's claims reach the fence: a row filter's ``:claims.<name>`` takes them, over HTTP
(each token's entry in the tokens file) and over stdio (``--claim``)."""

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
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from sqlfence.errors import ConfigurationError
from sqlfence.integrations.mcp_tokens import TokenFile, create_token
from tests.integrations.mcp_helpers import free_port, stdio_server, text_of, wait_for_port

POLICY = """\
row_filters:
  stores: region = :claims.region
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "stores.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE stores (id INTEGER PRIMARY KEY, region TEXT, name TEXT)")
        db.executemany(
            "INSERT INTO stores VALUES (?, ?, ?)",
            [(1, "eu", "Lyon"), (2, "us", "Austin"), (3, "eu", "Porto")],
        )
    return path


async def _query(client_params: Any, sql: str, headers: dict[str, str] | None = None) -> Any:
    if headers is None:
        async with Client(client_params) as client:
            return await client.call_tool("query", {"sql": sql})
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(client_params, http_client=http)) as client,
    ):
        return await client.call_tool("query", {"sql": sql})


def _names(result: Any) -> list[str]:
    assert not result.is_error, text_of(result)
    return [row[0] for row in json.loads(text_of(result))["rows"]]


def test_over_http_each_tokens_claims_filter_its_rows(tmp_path: Path, database: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    europe = create_token(tokens, "analyst", claims={"region": "eu"})
    america = create_token(tokens, "analyst", claims={"region": "us"})
    unclaimed = create_token(tokens, "analyst")
    (tmp_path / "policy.yaml").write_text(POLICY)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "sqlfence.integrations.mcp", "--transport", "http",
            "--port", str(port), "--policy", "policy.yaml", "--tokens", str(tokens),
            f"sqlite:///{database}",
        ],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp"
        sql = "SELECT name FROM stores ORDER BY id"
        headers = {"Authorization": f"Bearer {europe}"}
        assert _names(anyio.run(_query, url, sql, headers)) == ["Lyon", "Porto"]
        headers = {"Authorization": f"Bearer {america}"}
        assert _names(anyio.run(_query, url, sql, headers)) == ["Austin"]
        refused = anyio.run(_query, url, sql, {"Authorization": f"Bearer {unclaimed}"})
        assert refused.is_error
        assert ":claims.region" in text_of(refused)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_over_stdio_the_claims_are_the_command_lines(tmp_path: Path, database: Path) -> None:
    params = stdio_server(tmp_path, POLICY, "--claim", "region=us", f"sqlite:///{database}")
    assert _names(anyio.run(_query, params, "SELECT name FROM stores")) == ["Austin"]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ("[eu]", "must be a mapping"),
        ("{'bad name': x}", "is not a claim name"),
        ("{region: [eu]}", "must be text or a whole number"),
        ("{region: true}", "must be text or a whole number"),
    ],
)
def test_a_tokens_file_with_bad_claims_is_refused(
    tmp_path: Path, claims: str, message: str
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n  - sha256: {'a' * 64}\n    agent_id: x\n    claims: {claims}\n")
    with pytest.raises(ConfigurationError, match=message):
        TokenFile(path)


def test_a_token_keeps_its_claims(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    token = create_token(path, "analyst", "acme", {"region": "eu", "level": 3})
    identity = TokenFile(path).identity(token)
    assert identity is not None
    assert identity.claim_map == {"region": "eu", "level": 3}
