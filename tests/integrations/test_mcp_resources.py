"""The schema as MCP resources and the catalog tools, consistent with the fence on SQLite and
PostgreSQL: only what the policy lets the identity read is listed, with primary keys, and a
denied table answers as a missing one. Tool results carry structured content matching their
output schemas.

The real server over stdio, the mcp SDK's own client, real databases.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.integrations.mcp_helpers import stdio_server, text_of

POLICY = """\
read_only: true
denied_tables: [secrets]
denied_columns: [people.salary]
"""
SCHEMA = [
    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, salary INT)",
    "CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)",
    "CREATE TABLE pairs (a INT NOT NULL, b INT NOT NULL, note TEXT, PRIMARY KEY (a, b))",
    "CREATE VIEW v_people AS SELECT id, name FROM people",
    "CREATE VIEW v_secrets AS SELECT id, value FROM secrets",
]
READABLE = ["pairs", "people", "v_people"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "schema.db"
    with sqlite3.connect(path) as db:
        for statement in SCHEMA:
            db.execute(statement)
    return f"sqlite:///{path}"


@pytest.fixture
def postgres_url(pg_url: str) -> str:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as db:
        for statement in SCHEMA:
            db.execute(statement.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY"))
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


async def _catalog(params: StdioServerParameters) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with Client(params) as client:
        seen["tools"] = {tool.name: tool for tool in (await client.list_tools()).tools}
        seen["resources"] = (await client.list_resources()).resources
        seen["templates"] = (await client.list_resource_templates()).resource_templates
        seen["read"] = {}
        for table in [*READABLE, "secrets", "v_secrets", "nosuch"]:
            try:
                result = await client.read_resource(f"sqlfence://tables/{table}")
                seen["read"][table] = json.loads(result.contents[0].text)  # type: ignore[union-attr]
            except MCPError as error:
                seen["read"][table] = error
        seen["list_tables"] = await client.call_tool("list_tables", {})
        seen["describe"] = await client.call_tool("describe_table", {"table": "pairs"})
        seen["query"] = await client.call_tool("query", {"sql": "SELECT id, name FROM people"})
    return seen


def _seen(tmp_path: Path, url: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(anyio.run(_catalog, stdio_server(tmp_path, POLICY, url)))


def test_resources_list_only_what_the_policy_allows(tmp_path: Path, url: str) -> None:
    """One resource per readable table or view; the view over a denied table is hidden."""
    seen = _seen(tmp_path, url)
    listed = sorted(resource.name for resource in seen["resources"])
    assert listed == READABLE
    assert {str(r.uri) for r in seen["resources"]} == {
        f"sqlfence://tables/{name}" for name in READABLE
    }
    assert [t.uri_template for t in seen["templates"]] == ["sqlfence://tables/{table}"]
    assert json.loads(text_of(seen["list_tables"])) == {"tables": READABLE, "views": ["v_people"]}


def test_a_resource_has_columns_and_primary_keys(tmp_path: Path, url: str) -> None:
    """Columns with NOT NULL and primary keys (composite too); denied columns left out."""
    seen = _seen(tmp_path, url)
    people = {c["name"]: c for c in seen["read"]["people"]["columns"]}
    assert set(people) == {"id", "name"}
    assert people["id"]["primary_key"] is True
    assert people["name"]["primary_key"] is False
    assert people["name"]["not_null"] is True
    pairs = {c["name"]: c["primary_key"] for c in seen["read"]["pairs"]["columns"]}
    assert pairs == {"a": True, "b": True, "note": False}
    described = json.loads(text_of(seen["describe"]))
    assert described == seen["read"]["pairs"], "the tool and the resource agree"


def test_denied_and_missing_tables_answer_alike(tmp_path: Path, url: str) -> None:
    """Reading a denied table, a view over one, or a missing table: the same error."""
    seen = _seen(tmp_path, url)
    messages = {
        table: str(seen["read"][table]).replace(table, "X")
        for table in ("secrets", "v_secrets", "nosuch")
    }
    assert all(isinstance(seen["read"][t], MCPError) for t in messages)
    assert len(set(messages.values())) == 1, messages


def test_tool_results_are_structured(tmp_path: Path, url: str) -> None:
    """Every tool declares an output schema; its structured content is the JSON text."""
    seen = _seen(tmp_path, url)
    for name in ("query", "list_tables", "describe_table", "explain"):
        assert seen["tools"][name].output_schema is not None, name
    for key in ("query", "describe", "list_tables"):
        result = seen[key]
        assert result.structured_content == json.loads(text_of(result))
    rows = seen["query"].structured_content
    assert rows["columns"] == ["id", "name"]
    assert set(seen["tools"]["query"].output_schema["required"]) >= {"columns", "rows"}


async def _two_calls(params: StdioServerParameters, between: Any, sql: str) -> list[Any]:
    async with Client(params) as client:
        first = await client.call_tool("query", {"sql": "SELECT 1"})
        between()
        return [first, await client.call_tool("query", {"sql": sql})]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_table_made_later_is_judged_with_its_columns(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A table with a generated column over a denied column, made by another process while
    the server runs, is judged by what the catalog says now (the session reconnects when the
    schema changed)."""
    url = str(request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url"))
    late = (
        "CREATE TABLE people_late (id INT, salary INT, "
        "doubled INT GENERATED ALWAYS AS (salary * 2) STORED)"
    )
    policy = "read_only: true\ndenied_columns: [people_late.salary]\n"

    def make_table() -> None:
        if kind == "sqlite":
            with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
                db.execute(late)
        else:
            import psycopg

            with psycopg.connect(url, autocommit=True) as db:
                db.execute(late)

    params = stdio_server(tmp_path, policy, url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, late_read = anyio.run(
            _two_calls, params, make_table, "SELECT doubled FROM people_late"
        )
    assert not first.is_error
    assert late_read.is_error, text_of(late_read)
    assert "salary" in text_of(late_read)
