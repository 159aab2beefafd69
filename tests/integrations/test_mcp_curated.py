"""Curated MCP tools: templates compiled per dialect, arguments bound (never formatted), the
template judged by the fence, and identities restricted to their curated tools.

The compile cases are in data/curated_templates.yaml; the rest drives the real server over
stdio with the mcp SDK's own client against a real SQLite database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import Implementation

from sqlfence.errors import ConfigurationError
from sqlfence.integrations.mcp_curated import (
    CuratedTool,
    Parameter,
    compile_template,
    load_tools,
)
from sqlfence.policies.engine import dialect_instance
from tests.integrations.mcp_helpers import audit_events, stdio_server, text_of

CASES = yaml.safe_load((Path(__file__).parent / "data" / "curated_templates.yaml").read_text())
DIALECTS = ("sqlite", "postgres", "iris")

POLICY = """\
default:
  read_only: true
  denied_tables: [secrets]
agents:
  kiosk: {mcp_tools: curated}
  loader: {read_only: false}
"""

TOOLS = """\
tools:
  - name: person_by_name
    title: Person by name
    description: The people with exactly this name.
    sql: SELECT id, name FROM people WHERE name = :name ORDER BY id
    parameters:
      name: {type: string, description: the name to look for, max_length: 100}
  - name: people_after
    description: People with an id above a bound, at most count of them.
    sql: SELECT id FROM people WHERE id > :low ORDER BY id LIMIT :count
    parameters:
      low: {type: integer}
      count: {type: integer, default: 2, minimum: 1, maximum: 10}
  - name: secret_values
    description: Reads a denied table (the fence must refuse it).
    sql: SELECT value FROM secrets
  - name: rename_person
    description: Give one person a new name.
    sql: UPDATE people SET name = :name WHERE id = :id
    parameters:
      id: {type: integer}
      name: {type: string}
"""


@pytest.mark.parametrize("case", CASES, ids=[case["sql"] for case in CASES])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_templates_compile_per_dialect(case: dict[str, Any], dialect: str) -> None:
    """Each ``:name`` becomes the driver's own placeholder; bad templates are refused."""
    tool = CuratedTool(
        name="t",
        description="d",
        sql=case["sql"],
        parameters={name: Parameter(type="string") for name in case["parameters"]},
    )
    if "error" in case:
        with pytest.raises(ConfigurationError, match=case["error"]):
            compile_template(tool, dialect_instance(dialect), dialect)
        return
    template = compile_template(tool, dialect_instance(dialect), dialect)
    if dialect in case["sent"]:
        assert template.sql == case["sent"][dialect]
    names = case.get("names", {}).get(dialect)
    if dialect == "iris":
        assert template.names == tuple(names or case["parameters"])
    else:
        assert template.names is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tools: []", "tools: Tuple should have at least 1 item"),
        ("tools: [{name: query, description: d, sql: SELECT 1}]", "built-in tool"),
        ("tools: [{name: t, description: d, sql: SELECT 1, extra: 1}]", "tools.0.extra"),
        ("tools: [{name: 'bad name', description: d, sql: SELECT 1}]", "tools.0.name"),
        (
            "tools: [{name: t, description: d, sql: 'SELECT :X', parameters: {X: {type: string}}}]",
            "parameter 'X'",
        ),
        (
            "tools: [{name: t, description: d, sql: SELECT 1}, {name: t, description: e, sql: "
            "SELECT 2}]",
            "declared twice",
        ),
        ("tools: [unclosed", "invalid YAML"),
        ("tools: " + "{a: " * 5000 + "1" + "}" * 5000, "nested deeper than"),  # no RecursionError
        ("tools: " + "[" * 2000 + "]" * 2000, "nesting depth"),
        ("a: &x [1, 2]\nb: [*x, *x, *x]\ntools: !!python/object:os.system x", "tag"),
    ],
)
def test_a_bad_tools_file_names_its_problem(tmp_path: Path, text: str, reason: str) -> None:
    """A tools file that cannot be used is a ConfigurationError naming the file and entry."""
    path = tmp_path / "tools.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"tools\.yaml") as raised:
        load_tools(path)
    assert reason in str(raised.value)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "curated.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        db.executemany("INSERT INTO people VALUES (?, ?)", [(1, "Ada"), (2, "Bob"), (3, "Cy")])
        db.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT)")
    return path


def _params(tmp_path: Path, database: Path, *args: str) -> StdioServerParameters:
    (tmp_path / "tools.yaml").write_text(TOOLS)
    return stdio_server(tmp_path, POLICY, "--tools", "tools.yaml", *args, f"sqlite:///{database}")


async def _calls(
    params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], list[Any]]:
    async with Client(params, client_info=Implementation(name="agent", version="1")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        return tools, [await client.call_tool(name, arguments) for name, arguments in calls]


def _rows(result: Any) -> Any:
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))["rows"]


def test_curated_tools_bind_their_arguments(tmp_path: Path, database: Path) -> None:
    """Arguments are values, never SQL: a quote is just a character of the name."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("person_by_name", {"name": "Ada"}),
        ("person_by_name", {"name": "Ada' OR '1'='1"}),
        ("people_after", {"low": 1}),
        ("people_after", {"low": 0, "count": 3}),
    ]
    _tools, [ada, injected, default_count, three] = anyio.run(
        _calls, _params(tmp_path, database), calls
    )
    assert _rows(ada) == [[1, "Ada"]]
    assert _rows(injected) == []
    assert _rows(default_count) == [[2], [3]]
    assert _rows(three) == [[1], [2], [3]]
    assert ada.structured_content == json.loads(text_of(ada))


def test_curated_tools_declare_their_schemas(tmp_path: Path, database: Path) -> None:
    """Input schema from the declared parameters, output schema of a query result, and
    annotations from the SQL."""
    tools, _ = anyio.run(_calls, _params(tmp_path, database), [])
    person = tools["person_by_name"]
    assert person.title == "Person by name"
    assert person.input_schema["required"] == ["name"]
    assert person.input_schema["properties"]["name"]["type"] == "string"
    assert person.input_schema["properties"]["name"]["maxLength"] == 100
    count = tools["people_after"].input_schema["properties"]["count"]
    assert (count["default"], count["minimum"], count["maximum"]) == (2, 1, 10)
    assert set(person.output_schema["properties"]) >= {"columns", "rows", "truncated_by"}
    assert person.annotations.read_only_hint is True
    assert tools["rename_person"].annotations.destructive_hint is True


def test_arguments_are_validated_and_the_template_is_judged(tmp_path: Path, database: Path) -> None:
    """A wrong type or an out-of-range value is refused before SQL; the fence still judges
    the template (a denied table, a write under a read-only policy)."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("people_after", {"low": "one"}),
        ("people_after", {"low": 0, "count": 50}),
        ("secret_values", {}),
        ("rename_person", {"id": 1, "name": "Eve"}),
        ("people_after", {"low": "1"}),
        ("people_after", {"low": True}),
    ]
    _tools, [wrong_type, too_many, secret, rename, numeric_text, boolean] = anyio.run(
        _calls, _params(tmp_path, database), calls
    )
    assert numeric_text.is_error, "an integer parameter takes JSON integers only"
    assert boolean.is_error
    assert wrong_type.is_error
    assert too_many.is_error
    assert secret.is_error
    assert "secrets is on the deny list" in text_of(secret)
    assert rename.is_error
    assert "read-only" in text_of(rename)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT name FROM people WHERE id = 1").fetchone() == ("Ada",)


def test_a_writer_runs_a_curated_write(tmp_path: Path, database: Path) -> None:
    """For a writable identity the curated UPDATE runs, bound, and is committed."""
    params = _params(tmp_path, database, "--agent-id", "loader")
    _tools, [rename] = anyio.run(_calls, params, [("rename_person", {"id": 1, "name": "Eve"})])
    assert not rename.is_error, text_of(rename)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT name FROM people WHERE id = 1").fetchone() == ("Eve",)


def test_a_curated_only_identity_gets_nothing_else(tmp_path: Path, database: Path) -> None:
    """mcp_tools: curated lists the curated tools only; query is refused and audited, and
    the schema resources are empty."""
    audit = tmp_path / "audit"
    params = _params(tmp_path, database, "--agent-id", "kiosk", "--audit", str(audit))
    calls = [("query", {"sql": "SELECT 1"}), ("person_by_name", {"name": "Bob"})]
    tools, [query, person] = anyio.run(_calls, params, calls)
    assert set(tools) == {"person_by_name", "people_after", "secret_values", "rename_person"}
    assert query.is_error
    assert "curated tools only" in text_of(query)
    assert _rows(person) == [[2, "Bob"]]
    events = audit_events(
        audit, lambda found: sum(e["event_type"] == "mcp.call" for e in found) >= 2
    )
    calls_seen = {
        (e["details"]["tool"], e["status"]) for e in events if e["event_type"] == "mcp.call"
    }
    assert calls_seen == {("query", "denied"), ("person_by_name", "ok")}
    assert {e["agent_id"] for e in events if e["event_type"] == "mcp.call"} == {"kiosk"}
