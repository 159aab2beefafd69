"""The MCP tools and resources, over the fence connections of the calling MCP session.

Every call runs under its session's lock as one transaction, and is recorded in the audit
log as an ``mcp.call`` event naming the tool, the identity and the outcome (``ok``,
``denied`` or ``error``), besides the events of the statements it ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, unquote

import anyio.from_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, Resource
from sqlglot import exp

from sqlfence import databases
from sqlfence.databases import CatalogQueries
from sqlfence.errors import Error, PolicyViolation
from sqlfence.integrations import mcp_catalog
from sqlfence.integrations.mcp import AgentSession, MCPSettings, policy_for
from sqlfence.integrations.mcp_curated import CuratedTool, Template, compile_template
from sqlfence.integrations.mcp_results import (
    Budget,
    Column,
    PlanResult,
    QueryResult,
    TableResult,
    TablesResult,
    jsonable,
    rows_result,
    to_json,
    tool_result,
)
from sqlfence.integrations.mcp_tokens import TokenIdentity, authenticated
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.events import DENIED, FAILED, OK, plain_event
from sqlfence.observe.fanout import build_observer
from sqlfence.proxy.connection import GuardedConnection

if TYPE_CHECKING:
    from sqlfence.policies.model import Policy

TABLE_URI = "sqlfence://tables/{table}"
CURATED_ONLY = "this identity may use its curated tools only (policy: mcp_tools: curated)"
CLIENT_NAME_CHARS = 200
_REASON_CHARS = 2000


class Refused(ToolError):
    """A call the policy refused: ``reason`` is what the audit log records (the message the
    agent sees may say less, as for a denied table answered as a missing one)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.recorded = False


@dataclass(frozen=True)
class _Unopened:
    """Who made a call before its session opened: what its audit event names."""

    agent_id: str
    tenant: str | None
    client_name: str | None
    sandbox: str | None = None


class FenceTools:
    """The tools, the table resources and the MCP sessions they run in."""

    def __init__(self, settings: MCPSettings) -> None:
        self.settings = settings
        self._sessions: dict[str, AgentSession] = {}
        self._policies: dict[tuple[str, str | None], Policy] = {}
        self._templates: dict[tuple[str, str], Template] = {}
        self._lock = threading.Lock()
        self._observer = build_observer(audit=settings.audit, monitoring=False, telemetry=False)
        self._audit: AuditLog | None = getattr(self._observer, "audit", None)
        self.budget = Budget(settings.max_rows, settings.max_result_bytes, settings.max_cell_bytes)

    # -- the tools ------------------------------------------------------------------------

    def query(self, sql: str, ctx: Context) -> Annotated[CallToolResult, QueryResult]:
        """Run one SQL statement under the policy, as one transaction."""
        return self._call("query", ctx, lambda session: self._rows(session, sql))

    def list_tables(self, ctx: Context) -> Annotated[CallToolResult, TablesResult]:
        """The tables and views the policy lets this identity read."""

        def listing(session: AgentSession) -> CallToolResult:
            found = self._listing(session)
            views = [name for name, is_view in found if is_view]
            return tool_result({"tables": [name for name, _ in found], "views": views})

        return self._call("list_tables", ctx, listing)

    def describe_table(self, table: str, ctx: Context) -> Annotated[CallToolResult, TableResult]:
        """The readable columns of one table."""
        return self._call(
            "describe_table", ctx, lambda session: tool_result(self._table(session, table))
        )

    def explain(self, sql: str, ctx: Context) -> Annotated[CallToolResult, PlanResult]:
        """The database's plan for one statement the policy allows (not run)."""
        return self._call("explain", ctx, lambda session: tool_result(self._plan(session, sql)))

    def curated(self, tool: CuratedTool, arguments: dict[str, Any], ctx: Context) -> Any:
        """A curated tool: its template, judged by the fence, with the arguments bound."""

        def run(session: AgentSession) -> CallToolResult:
            template = self._template(tool, session)
            return self._rows(session, template.sql, template.bind(arguments))

        return self._call(tool.name, ctx, run, builtin=False)

    # -- resources --------------------------------------------------------------------------

    def table_resources(self, ctx: Context) -> list[Resource]:
        """One resource per table this identity may read (none for a curated-only one)."""
        session = self._session(ctx)
        if session.policy.mcp_tools == "curated":
            return []
        with session.lock:
            session.refresh()
            names = self._names(session)
        return [
            Resource(
                uri=TABLE_URI.format(table=quote(name, safe=".")),
                name=name,
                description=f"the columns of {name} that this identity may read",
                mime_type="application/json",
            )
            for name in names
        ]

    def read_table(self, table: str, ctx: Context) -> str:
        """The ``sqlfence://tables/{table}`` resource: the table's readable columns as JSON."""
        try:
            result = self._call(
                "resources/read", ctx, lambda session: tool_result(self._table(session, table))
            )
        except ToolError as error:
            raise ResourceError(str(error)) from None
        return to_json(result.structured_content)

    # -- what a tool call does ------------------------------------------------------------

    def _call(
        self,
        tool: str,
        ctx: Context,
        work: Callable[[AgentSession], CallToolResult],
        builtin: bool = True,
    ) -> CallToolResult:
        session = self._session(ctx)
        if builtin and session.policy.mcp_tools == "curated":
            self._record(session, tool, DENIED, CURATED_ONLY)
            refusal = Refused(CURATED_ONLY)
            refusal.recorded = True
            raise refusal
        try:
            with session.lock:
                session.refresh()  # the schema may have changed behind this connection
                result = work(session)
        except Refused as refusal:
            self._record(session, tool, DENIED, refusal.reason)
            refusal.recorded = True
            raise
        except ToolError as error:
            self._record(session, tool, FAILED, str(error))
            error.recorded = True  # type: ignore[attr-defined]
            raise
        except Error as error:
            failure = ToolError(f"{type(error).__name__}: {error}")
            self._record(session, tool, FAILED, str(failure))
            failure.recorded = True  # type: ignore[attr-defined]
            raise failure from error
        self._record(session, tool, OK)
        return result

    def _rows(self, session: AgentSession, sql: str, params: Any = None) -> CallToolResult:
        with _transaction(session.agent):
            cursor = _run(session.agent, sql, params)
            try:
                columns = [d[0] for d in cursor.description or ()]
                fetched = cursor.fetchmany(self.budget.max_rows + 1) if columns else []
                cut = ["max_rows"] if cursor.truncated else []
                try:
                    result = rows_result(columns, fetched, cursor.rowcount, self.budget, cut)
                except ValueError as error:
                    raise ToolError(str(error)) from None
                return tool_result(result)
            finally:
                cursor.close()

    def _names(self, session: AgentSession) -> list[str]:
        return [name for name, _ in self._listing(session)]

    def _listing(self, session: AgentSession) -> list[tuple[str, bool]]:
        """(name, is it a view) of each table and view this identity may read."""
        guard = session.agent.guard
        sql = _catalog(session, "list_tables").list_tables
        return [
            (
                f"{schema}.{name}" if schema and schema != guard.namer.default_schema else name,
                bool(is_view),
            )
            for schema, name, is_view in _fetch(session.server, sql)
            if mcp_catalog.visible(guard, schema, name)
        ]

    def _table(self, session: AgentSession, table: str) -> TableResult:
        guard = session.agent.guard
        table = unquote(table)
        schema, _, name = table.rpartition(".")
        schema = schema or guard.namer.default_schema or ""
        # A denied table answers as a missing one (no existence oracle); the audit log has why.
        unknown = f"no table {table} that this agent may read"
        reference = exp.table_(name, db=schema or None, quoted=True).sql(dialect=guard.dialect)
        try:
            session.agent.check(f"SELECT 1 FROM {reference}")  # a denial is audited
        except PolicyViolation as violation:
            raise Refused(unknown, str(violation)) from None
        if not mcp_catalog.visible(guard, schema or None, name):
            raise Refused(unknown, "a view over a table this identity may not read")
        catalog = _catalog(session, "describe_table")
        sql = catalog.describe_table
        params: tuple[str, ...] = (schema, name) if catalog.describe_with_schema else (name,)
        rows = _fetch(session.server, sql, params)
        if not rows:
            raise ToolError(unknown)
        columns: list[Column] = [
            {"name": column, "type": str(kind), "not_null": bool(not_null), "primary_key": bool(pk)}
            for column, kind, not_null, pk in rows
            if not mcp_catalog.column_denied(guard, schema or None, name, column)
        ]
        return {"table": table, "columns": columns}

    def _plan(self, session: AgentSession, sql: str) -> PlanResult:
        catalog = _catalog(session, "explain")
        prefix = catalog.explain_prefix
        policy = session.agent.guard.policy
        if policy.row_filters or policy.masked_columns:
            # the planner chooses a plan from statistics over every row and value (hash or
            # sort, which join): its shape, estimates or not, tells what filters and masks hide
            raise Refused(
                "explain is not available under row filters or masks: the planner chooses a "
                "plan from statistics over every row, which would tell what they hide"
            )
        try:
            decision = session.agent.check(sql)  # a denial is audited
        except PolicyViolation as violation:
            raise Refused(str(violation)) from None
        if decision.facts.statement_count != 1:
            raise ToolError("explain takes exactly one statement")
        plan = _fetch(session.server, prefix + decision.sql.strip().rstrip(";"))
        return {"plan": [[jsonable(value) for value in row] for row in plan]}

    def _template(self, tool: CuratedTool, session: AgentSession) -> Template:
        guard = session.agent.guard
        key = (tool.name, guard.dialect_name)
        template = self._templates.get(key)
        if template is None:
            template = compile_template(tool, guard.dialect, guard.dialect_name)
            self._templates[key] = template
        return template

    def record_unrun(self, tool: str, error: BaseException, ctx: Context) -> None:
        """A call that never reached its tool (an unknown tool, arguments that fail the input
        schema), recorded like any other unless its tool recorded it already."""
        cause: BaseException | None = error
        while cause is not None:
            if getattr(cause, "recorded", False):
                return
            cause = cause.__cause__
        session: AgentSession | _Unopened | None = self._sessions.get(self._key(ctx))
        if session is None:
            who = self._identity()
            session = _Unopened(who.agent_id, who.tenant, _client_name(ctx))
        self._record(session, tool, FAILED, str(error))

    def _record(
        self, session: AgentSession | _Unopened, tool: str, status: str, reason: str | None = None
    ) -> None:
        if self._audit is None:
            return
        tool = tool[:CLIENT_NAME_CHARS]  # a name the client sent may be any length
        reason = reason[:_REASON_CHARS] if reason else reason
        details: dict[str, Any] = {"tool": tool}
        if status == DENIED:
            details["reason"] = reason
        event = plain_event(
            "mcp.call",
            status,
            agent_id=session.agent_id,
            tenant=session.tenant,
            sandbox=session.sandbox,
            details=details,
            error=reason if status == FAILED else None,
        )
        if session.client_name is not None:
            event["client_name"] = session.client_name
        self._audit.submit(event)

    # -- sessions and identities ----------------------------------------------------------

    def caller_policy(self) -> Policy:
        """The policy of the identity making the current request."""
        who = self._identity()
        key = (who.agent_id, who.tenant)
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = policy_for(self.settings, *key)
        return policy

    def _key(self, ctx: Context) -> str:
        # Handshake-era connections (streamable HTTP with an Mcp-Session-Id) get their own
        # session, torn down with the connection. Stdio and the sessionless 2026 protocol
        # have no such identity: there the client's agent id is the session, kept until
        # the server stops.
        session_id = getattr(_sdk_connection(ctx), "session_id", None)
        if session_id:
            return f"session:{session_id}"
        who = self._identity()
        return f"agent:{who.agent_id}:{who.tenant}:{who.claims}"

    def _session(self, ctx: Context) -> AgentSession:
        connection = _sdk_connection(ctx)
        session_id = getattr(connection, "session_id", None)
        who = self._identity()
        key = self._key(ctx)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.who != who:
                raise ToolError("this MCP session belongs to another identity")
            if session is None:
                try:
                    session = AgentSession(self.settings, who, _client_name(ctx), self._audit)
                except Error as error:
                    raise ToolError(f"{type(error).__name__}: {error}") from error
                self._sessions[key] = session
                stack = getattr(connection, "exit_stack", None)
                if session_id and stack is not None:
                    stack.callback(self._end, key)
        return session

    def _identity(self) -> TokenIdentity:
        """The operator's: the token's identity over HTTP with tokens, else the configured."""
        if self.settings.tokens is None:
            return self.settings.configured
        who = authenticated()
        if who is None:  # the SDK answers 401 before a tool runs; never serve without one
            raise ToolError("not authenticated")
        return who

    def _end(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        """End every session still open and flush the audit log (the server is stopping)."""
        for key in list(self._sessions):
            self._end(key)
        self._observer.close()


@contextmanager
def _transaction(connection: GuardedConnection) -> Iterator[None]:
    """One tool call, one transaction: committed on success, rolled back on any failure,
    and on a call the client cancelled (its result would never be seen)."""
    try:
        yield
        if _cancelled():
            raise ToolError("the call was cancelled by the client: nothing was committed")
    except BaseException:
        with suppress(Error):  # a connection that is gone committed nothing either
            connection.rollback()
        raise
    try:
        connection.commit()
    except Error as error:
        raise ToolError(f"{type(error).__name__}: {error}") from error


def _cancelled() -> bool:
    """Whether the request this worker thread serves was cancelled (notifications/cancelled)."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not on an anyio worker thread: nothing can cancel it
        return False
    except BaseException:  # the host task's cancellation (its class is the event loop's)
        return True
    return False


def _run(connection: GuardedConnection, sql: str, params: Any = None) -> Any:
    try:
        return connection.execute(sql, params)
    except PolicyViolation as violation:
        raise Refused(str(violation)) from violation
    except Error as error:
        raise ToolError(f"{type(error).__name__}: {error}") from error


def _fetch(connection: GuardedConnection, sql: str, params: Any = None) -> list[Any]:
    """The server's own read, ended with a rollback either way (a failed EXPLAIN must not
    leave its connection in an aborted transaction)."""
    try:
        cursor = _run(connection, sql, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()
    finally:
        with suppress(Error):
            connection.rollback()


def _client_name(ctx: Context) -> str | None:
    """What the client calls itself (``clientInfo.name``): recorded only, and at most
    ``CLIENT_NAME_CHARS`` of it (it is copied into every event of the session)."""
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    name = info.name if info is not None and info.name else None
    return name[:CLIENT_NAME_CHARS] if name else None


def _sdk_connection(ctx: Context) -> Any:
    # mcp 2.x keeps the per-connection identity and teardown (session_id, exit_stack) on
    # its Connection object, which MCPServer's Context does not expose publicly.
    return getattr(ctx.session, "_connection", None)


def _catalog(session: AgentSession, tool: str) -> CatalogQueries:
    """The catalog SQL of the session's database (its profile's fixed text)."""
    database = databases.find(session.system)
    if database is None:
        raise ToolError(f"{tool} is not available for {session.system}")
    return database.catalog
