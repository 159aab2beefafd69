"""An MCP server exposing guarded ``query``, ``list_tables``, ``describe_table`` and ``explain``.

Built on the official ``mcp`` SDK (``MCPServer``). Each MCP session gets its own fence
connection (or, with ``sandbox=True``, its own SQLite sandbox, optionally filled from a golden
snapshot), opened on its first tool call with the client's identity as ``agent_id``: the
configured ``agent_id``, else the ``clientInfo.name`` of the client's initialize request.

Every call is audited under that agent id: ``query`` through the agent's own fence connection,
the catalog reads of ``list_tables`` / ``describe_table`` and the ``EXPLAIN`` of ``explain``
through a second, read-only fence connection that runs only the server's fixed SQL (the
agent's statement inside ``EXPLAIN`` is first judged by the agent's policy). Catalog results
are filtered by the agent's policy: a table it may not read is not listed and cannot be
described. A denial comes back as a tool error carrying the policy's reason.

Run it: ``python -m sqlfence.integrations.mcp --policy P URL`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from sqlfence.errors import Error, PolicyViolation
from sqlfence.integrations import mcp_catalog
from sqlfence.policies.loader import PolicySource, load_policy
from sqlfence.policies.model import Policy
from sqlfence.proxy.connect import connect
from sqlfence.proxy.connection import GuardedConnection

DEFAULT_AGENT = "mcp-client"
# The server's own connection runs fixed catalog SQL and EXPLAIN of already-judged
# statements, one at a time; the database makes it read-only underneath (_READ_ONLY_KWARGS).
_SERVER_POLICY = Policy.unrestricted().model_copy(update={"allow_multiple_statements": False})
_READ_ONLY_KWARGS: dict[str, dict[str, Any]] = {
    "sqlite": {"mode": "ro"},
    "postgresql": {"options": "-c default_transaction_read_only=on"},
}


@dataclass(frozen=True)
class MCPSettings:
    """How the MCP server reaches the database and whom it records calls as."""

    url: str | None = None
    policy: PolicySource = None
    agent_id: str | None = None
    tenant: str | None = None
    audit: Any = None
    sandbox: bool = False
    snapshot: str | Path | None = None
    sandbox_root: str | Path | None = None
    max_rows: int = 200
    extra: Mapping[str, Any] = field(default_factory=dict)


class AgentSession:
    """One MCP session's fence connections (and sandbox), closed when the session ends."""

    def __init__(self, settings: MCPSettings, agent_id: str) -> None:
        self.agent_id = agent_id
        self._sandbox: Any = None
        policy = _policy_for(settings, agent_id)
        if settings.sandbox:
            from sqlfence.sandbox import AgentSandbox

            self._sandbox = AgentSandbox.create(
                agent_id=agent_id,
                tenant=settings.tenant,
                backend="sqlite",
                access_policy=policy,
                audit=settings.audit,
                root=settings.sandbox_root,
                load_snapshot=settings.snapshot,
            )
            url = self._sandbox.namespace.url
            try:
                self.agent = self._sandbox.get_connection()
            except BaseException:
                self.close()  # the sandbox goes with the session that could not start
                raise
        else:
            if settings.url is None:
                raise ValueError("an MCP server needs a database URL unless sandbox=True")
            url = settings.url
            self.agent = connect(
                url, policy=policy, agent_id=agent_id, tenant=settings.tenant, audit=settings.audit
            )
        system = self.agent.session.system
        try:
            self.server = connect(
                url,
                policy=_SERVER_POLICY,
                agent_id=agent_id,
                tenant=settings.tenant,
                audit=settings.audit,
                **_READ_ONLY_KWARGS.get(system, {}),
            )
        except BaseException:
            self.close()
            raise
        self.system = system

    def close(self) -> None:
        """Close both connections and destroy the sandbox. Safe to call twice."""
        for name in ("server", "agent"):
            connection = getattr(self, name, None)
            if connection is not None:
                connection.close()
        if self._sandbox is not None:
            self._sandbox.destroy()


class FenceTools:
    """The four tools, over the fence connections of the calling MCP session."""

    def __init__(self, settings: MCPSettings) -> None:
        self.settings = settings
        self._sessions: dict[str, AgentSession] = {}
        self._lock = threading.Lock()

    def query(self, sql: str, ctx: Context) -> dict[str, Any]:
        """Run one SQL statement under the policy; rows come back as JSON, capped."""
        session = self._session(ctx)
        cursor = _run(session.agent, sql)
        try:
            columns = [d[0] for d in cursor.description or ()]
            cap = self.settings.max_rows
            rows = cursor.fetchmany(cap + 1) if columns else []
            truncated = len(rows) > cap or cursor.truncated
            rows = rows[:cap]
            return {
                "columns": columns,
                "rows": [[_jsonable(value) for value in row] for row in rows],
                "row_count": len(rows) if columns else cursor.rowcount,
                "truncated": truncated,
            }
        finally:
            cursor.close()

    def list_tables(self, ctx: Context) -> dict[str, Any]:
        """The tables and views the policy lets this agent read."""
        session = self._session(ctx)
        guard = session.agent.guard
        sql = mcp_catalog.LIST_TABLES.get(session.system)
        if sql is None:
            raise ToolError(f"list_tables is not available for {session.system}")
        rows = _fetch(session.server, sql)
        names = [
            f"{schema}.{name}" if schema and schema != guard.namer.default_schema else name
            for schema, name in rows
            if mcp_catalog.visible(guard, schema, name)
        ]
        return {"tables": names}

    def describe_table(self, table: str, ctx: Context) -> dict[str, Any]:
        """Columns of one table the policy lets this agent read (denied columns left out)."""
        session = self._session(ctx)
        guard = session.agent.guard
        schema, _, name = table.rpartition(".")
        schema = schema or guard.namer.default_schema or ""
        if not mcp_catalog.visible(guard, schema or None, name):
            raise ToolError(f"denied: table {table} is not readable under this agent's policy")
        sql = mcp_catalog.DESCRIBE_TABLE.get(session.system)
        if sql is None:
            raise ToolError(f"describe_table is not available for {session.system}")
        params: tuple[str, ...] = (name,) if session.system == "sqlite" else (schema, name)
        rows = _fetch(session.server, sql, params)
        if not rows:
            raise ToolError(f"no such table: {table}")
        columns = [
            {"name": column, "type": str(kind), "not_null": bool(not_null), "primary_key": bool(pk)}
            for column, kind, not_null, pk in rows
            if not mcp_catalog.column_denied(guard, schema or None, name, column)
        ]
        return {"table": table, "columns": columns}

    def explain(self, sql: str, ctx: Context) -> dict[str, Any]:
        """The database's query plan for a statement the policy would allow."""
        session = self._session(ctx)
        prefix = mcp_catalog.EXPLAIN.get(session.system)
        if prefix is None:
            raise ToolError(f"explain is not available for {session.system}")
        decision = session.agent.decide(sql)
        if not decision.allowed:
            raise ToolError(decision.explain())
        if decision.facts.statement_count != 1:
            raise ToolError("explain takes exactly one statement")
        plan = _fetch(session.server, prefix + decision.sql.strip().rstrip(";"))
        return {"plan": [[_jsonable(value) for value in row] for row in plan]}

    def _session(self, ctx: Context) -> AgentSession:
        # Handshake-era connections (streamable HTTP with an Mcp-Session-Id) get their own
        # session, torn down with the connection. Stdio and the sessionless 2026 protocol
        # have no such identity: there the client's agent id is the session, kept until
        # the server stops.
        connection = _sdk_connection(ctx)
        session_id = getattr(connection, "session_id", None)
        agent_id = self._agent_id(ctx)
        key = f"session:{session_id}" if session_id else f"agent:{agent_id}"
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = AgentSession(self.settings, agent_id)
                self._sessions[key] = session
                stack = getattr(connection, "exit_stack", None)
                if session_id and stack is not None:
                    stack.callback(self._end, key)
        return session

    def _end(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.close()

    def _agent_id(self, ctx: Context) -> str:
        if self.settings.agent_id:
            return self.settings.agent_id
        params = ctx.session.client_params
        info = params.client_info if params is not None else None
        return info.name if info is not None and info.name else DEFAULT_AGENT

    def close(self) -> None:
        """End every session still open (the server is stopping)."""
        for key in list(self._sessions):
            self._end(key)


def build_server(settings: MCPSettings) -> tuple[MCPServer, FenceTools]:
    """The MCP server and its tools (close the tools when the server stops)."""
    tools = FenceTools(settings)
    server: MCPServer = MCPServer(
        name="sqlfence",
        instructions=(
            "SQL access through sqlfence: every statement is checked against a policy, "
            "row-limited and audited. Use list_tables and describe_table first."
        ),
    )
    server.add_tool(tools.query, name="query", structured_output=False)
    server.add_tool(tools.list_tables, name="list_tables", structured_output=False)
    server.add_tool(tools.describe_table, name="describe_table", structured_output=False)
    server.add_tool(tools.explain, name="explain", structured_output=False)
    return server, tools


def serve(
    url: str | None,
    policy: PolicySource = None,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sandbox: bool = False,
    snapshot: str | Path | None = None,
    audit: Any = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    sandbox_root: str | Path | None = None,
    max_rows: int = 200,
) -> None:
    """Run the MCP server until the client disconnects (stdio) or it is interrupted (http).

    ``transport="http"`` serves streamable HTTP at ``http://host:port/mcp``; the host
    defaults to 127.0.0.1. Raises ValueError without a URL unless ``sandbox`` is set.
    """
    if url is None and not sandbox:
        raise ValueError("an MCP server needs a database URL unless sandbox=True")
    settings = MCPSettings(
        url=url,
        policy=policy,
        agent_id=agent_id,
        tenant=tenant,
        audit=audit,
        sandbox=sandbox,
        snapshot=snapshot,
        sandbox_root=sandbox_root,
        max_rows=max_rows,
    )
    server, tools = build_server(settings)
    try:
        if transport == "stdio":
            server.run("stdio")
        elif transport == "http":
            server.run("streamable-http", host=host, port=port)
        else:
            raise ValueError(f"unknown transport {transport!r} (stdio or http)")
    finally:
        tools.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sqlfence.integrations.mcp [--policy P] [--sandbox] URL``."""
    parser = argparse.ArgumentParser(prog="sqlfence mcp", description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (not needed with --sandbox)")
    parser.add_argument("--policy", help="policy file (YAML)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--sandbox", action="store_true", help="a SQLite sandbox per session")
    parser.add_argument("--snapshot", help="golden snapshot each sandbox starts from")
    parser.add_argument("--sandbox-root", help="where sandboxes live (default .sqlfence)")
    parser.add_argument("--audit", help="audit log directory")
    parser.add_argument("--agent-id", help="record calls as this agent (default: clientInfo)")
    parser.add_argument("--tenant")
    parser.add_argument("--max-rows", type=int, default=200, help="rows per query result")
    args = parser.parse_args(argv)
    if args.url is None and not args.sandbox:
        parser.error("a database URL is required unless --sandbox is given")
    serve(
        args.url,
        args.policy,
        args.transport,
        args.host,
        args.port,
        sandbox=args.sandbox,
        snapshot=args.snapshot,
        audit=args.audit,
        agent_id=args.agent_id,
        tenant=args.tenant,
        sandbox_root=args.sandbox_root,
        max_rows=args.max_rows,
    )


def _policy_for(settings: MCPSettings, agent_id: str) -> Policy:
    policy = settings.policy
    if isinstance(policy, Policy):
        return policy
    return load_policy(policy).resolve(agent_id, settings.tenant)


def _run(connection: GuardedConnection, sql: str, params: Any = None) -> Any:
    try:
        return connection.execute(sql, params)
    except PolicyViolation as violation:
        raise ToolError(str(violation)) from violation
    except Error as error:
        raise ToolError(f"{type(error).__name__}: {error}") from error


def _fetch(connection: GuardedConnection, sql: str, params: Any = None) -> list[Any]:
    cursor = _run(connection, sql, params)
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _sdk_connection(ctx: Context) -> Any:
    # mcp 2.x keeps the per-connection identity and teardown (session_id, exit_stack) on
    # its Connection object, which MCPServer's Context does not expose publicly.
    return getattr(ctx.session, "_connection", None)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


if __name__ == "__main__":
    main()
