"""An MCP server exposing guarded ``query``, ``list_tables``, ``describe_table`` and ``explain``.

Built on the official ``mcp`` SDK (``MCPServer``). Each MCP session gets its own fence
connection (or, with ``sandbox=True``, its own SQLite sandbox, optionally filled from a golden
snapshot), opened on its first tool call. The identity, and so the policy section, is the
operator's: the configured ``agent_id`` (default ``mcp-client``) and ``tenant``. What the
client says about itself (``clientInfo.name``) is only recorded, as ``client_name``.

Each tool call is one transaction: committed when it succeeds, rolled back when it fails.
Every call is audited under the identity: ``query`` through the agent's own fence connection,
denials of ``describe_table`` and ``explain`` too; the catalog reads and the ``EXPLAIN`` run
through a second, read-only fence connection that runs only the server's fixed SQL. Catalog
results are filtered by the policy: a table it may not read is not listed, and describing it
answers as for a table that does not exist. Results are sized for a context window (rows,
bytes per result, bytes per cell), with ``truncated_by`` naming the limits that cut.

Run it: ``sqlfence mcp --policy P URL`` (``--help`` for the options). Configuration is checked
before serving: a problem exits with status 2 and one line naming it.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl
from sqlglot import exp

from sqlfence import __version__
from sqlfence.errors import ConfigurationError, Error, PolicyViolation
from sqlfence.integrations import mcp_catalog
from sqlfence.integrations.mcp_tokens import (
    FileTokenVerifier,
    TokenFile,
    TokenIdentity,
    authenticated,
)
from sqlfence.policies.loader import PolicySource, load_policy
from sqlfence.policies.model import Policy
from sqlfence.proxy.connect import connect
from sqlfence.proxy.connection import GuardedConnection

DEFAULT_AGENT = "mcp-client"
DEFAULT_TIMEOUT_MS = 30_000  # unless the policy sets statement_timeout_ms
DEFAULT_RESULT_BYTES = 64 * 1024
DEFAULT_CELL_BYTES = 4 * 1024
DEFAULT_MAX_SESSIONS = 100  # HTTP sessions at once; abandoned ones end after the idle timeout
DEFAULT_IDLE_TIMEOUT_S = 300
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
    max_result_bytes: int = DEFAULT_RESULT_BYTES
    max_cell_bytes: int = DEFAULT_CELL_BYTES
    # HTTP: bearer tokens (a tokens file of hashes -> identities) and the server's own URL
    tokens: TokenFile | None = None
    public_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """The agent id every call is recorded and judged as (the operator's, never the
        client's)."""
        return self.agent_id or DEFAULT_AGENT

    def identities(self) -> list[TokenIdentity]:
        """Every identity this server may serve: the tokens file's, or the configured one."""
        if self.tokens is not None:
            return self.tokens.identities()
        return [TokenIdentity(self.identity, self.tenant)]

    def check(self) -> list[Policy]:
        """Everything checkable before serving; raises sqlfence.Error or OSError naming the
        problem. Returns the policy of each identity."""
        if self.max_rows < 1 or self.max_result_bytes < 1 or self.max_cell_bytes < 1:
            raise ConfigurationError("max_rows, max_result_bytes and max_cell_bytes must be >= 1")
        if self.tokens is not None and self.agent_id is not None:
            raise ConfigurationError(
                "--agent-id and --tokens exclude each other: with tokens, each token's entry "
                "names its identity"
            )
        policies = [_policy_for(self, who.agent_id, who.tenant) for who in self.identities()]
        if not policies:
            raise ConfigurationError(f"tokens file {self.tokens.path} has no tokens")  # type: ignore[union-attr]
        policy = policies[0]
        if self.snapshot is not None and not _snapshot_exists(self.snapshot, self.sandbox_root):
            raise ConfigurationError(
                f"snapshot not found: {self.snapshot} (a shared snapshot name under the "
                "sandbox root, or a snapshot directory)"
            )
        if self.sandbox:
            return policies
        if self.url is None:
            raise ConfigurationError("an MCP server needs a database URL unless sandbox=True")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PrivilegeWarning and the like: said at first use
            connect(self.url, policy=policy, telemetry=False).close()  # reachable, policy fits
        return policies


class AgentSession:
    """One MCP session's fence connections (and sandbox), closed when the session ends."""

    def __init__(self, settings: MCPSettings, who: TokenIdentity, client_name: str | None) -> None:
        agent_id, tenant = who.agent_id, who.tenant
        self.agent_id = agent_id
        self._sandbox: Any = None
        policy = _policy_for(settings, agent_id, tenant)
        self.policy = policy
        if settings.sandbox:
            from sqlfence.sandbox import AgentSandbox

            self._sandbox = AgentSandbox.create(
                agent_id=agent_id,
                tenant=tenant,
                backend="sqlite",
                access_policy=policy,
                audit=settings.audit,
                root=settings.sandbox_root,
                load_snapshot=settings.snapshot,
            )
            url = self._sandbox.namespace.url
            try:
                self.agent = self._sandbox.get_connection(client_name=client_name)
            except BaseException:
                self.close()  # the sandbox goes with the session that could not start
                raise
        else:
            if settings.url is None:
                raise ValueError("an MCP server needs a database URL unless sandbox=True")
            url = settings.url
            self.agent = connect(
                url,
                policy=policy,
                agent_id=agent_id,
                tenant=tenant,
                audit=settings.audit,
                client_name=client_name,
            )
        system = self.agent.session.system
        try:
            self.server = connect(
                url,
                policy=_SERVER_POLICY,
                agent_id=agent_id,
                tenant=tenant,
                audit=settings.audit,
                client_name=client_name,
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

    def query(self, sql: str, ctx: Context) -> str:
        """Run one SQL statement under the policy, as one transaction (committed when it
        succeeds, rolled back when it fails); rows come back as compact JSON, capped."""
        session = self._session(ctx)
        settings = self.settings
        with _transaction(session.agent):
            cursor = _run(session.agent, sql)
            try:
                columns = [d[0] for d in cursor.description or ()]
                cap = settings.max_rows
                fetched = cursor.fetchmany(cap + 1) if columns else []
                cut: list[str] = []
                if len(fetched) > cap or cursor.truncated:
                    cut.append("max_rows")
                names = _json(columns).encode("utf-8")
                if len(names) > settings.max_result_bytes:
                    raise ToolError(
                        f"the column names alone take {len(names)} bytes, over "
                        f"max_result_bytes ({settings.max_result_bytes}): name fewer columns"
                    )
                rows = _sized(fetched[:cap], settings, cut, len(names))
                return _json(
                    {
                        "columns": columns,
                        "rows": rows,
                        "row_count": len(rows) if columns else cursor.rowcount,
                        "truncated": bool(cut),
                        "truncated_by": cut,
                    }
                )
            finally:
                cursor.close()

    def list_tables(self, ctx: Context) -> str:
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
        return _json({"tables": names})

    def describe_table(self, table: str, ctx: Context) -> str:
        """Columns of one table the policy lets this agent read (denied columns left out)."""
        session = self._session(ctx)
        guard = session.agent.guard
        schema, _, name = table.rpartition(".")
        schema = schema or guard.namer.default_schema or ""
        # A denied table answers as a missing one (no existence oracle); the audit log has why.
        unknown = ToolError(f"no table {table} that this agent may read")
        reference = exp.table_(name, db=schema or None, quoted=True).sql(dialect=guard.dialect)
        try:
            session.agent.check(f"SELECT 1 FROM {reference}")  # a denial is audited
        except PolicyViolation:
            raise unknown from None
        if not mcp_catalog.visible(guard, schema or None, name):
            raise unknown
        sql = mcp_catalog.DESCRIBE_TABLE.get(session.system)
        if sql is None:
            raise ToolError(f"describe_table is not available for {session.system}")
        params: tuple[str, ...] = (name,) if session.system == "sqlite" else (schema, name)
        rows = _fetch(session.server, sql, params)
        if not rows:
            raise unknown
        columns = [
            {"name": column, "type": str(kind), "not_null": bool(not_null), "primary_key": bool(pk)}
            for column, kind, not_null, pk in rows
            if not mcp_catalog.column_denied(guard, schema or None, name, column)
        ]
        return _json({"table": table, "columns": columns})

    def explain(self, sql: str, ctx: Context) -> str:
        """The database's query plan for a statement the policy would allow (not run)."""
        session = self._session(ctx)
        prefix = mcp_catalog.EXPLAIN.get(session.system)
        if prefix is None:
            raise ToolError(f"explain is not available for {session.system}")
        try:
            decision = session.agent.check(sql)  # a denial is audited
        except PolicyViolation as violation:
            raise ToolError(str(violation)) from None
        if decision.facts.statement_count != 1:
            raise ToolError("explain takes exactly one statement")
        plan = _fetch(session.server, prefix + decision.sql.strip().rstrip(";"))
        return _json({"plan": [[_jsonable(value) for value in row] for row in plan]})

    def _session(self, ctx: Context) -> AgentSession:
        # Handshake-era connections (streamable HTTP with an Mcp-Session-Id) get their own
        # session, torn down with the connection. Stdio and the sessionless 2026 protocol
        # have no such identity: there the client's agent id is the session, kept until
        # the server stops.
        connection = _sdk_connection(ctx)
        session_id = getattr(connection, "session_id", None)
        who = self._identity()
        key = f"session:{session_id}" if session_id else f"agent:{who.agent_id}:{who.tenant}"
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.agent_id != who.agent_id:
                raise ToolError("this MCP session belongs to another identity")
            if session is None:
                session = AgentSession(self.settings, who, _client_name(ctx))
                self._sessions[key] = session
                stack = getattr(connection, "exit_stack", None)
                if session_id and stack is not None:
                    stack.callback(self._end, key)
        return session

    def _identity(self) -> TokenIdentity:
        """The operator's: the token's identity over HTTP with tokens, else the configured."""
        if self.settings.tokens is None:
            return TokenIdentity(self.settings.identity, self.settings.tenant)
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
        """End every session still open (the server is stopping)."""
        for key in list(self._sessions):
            self._end(key)


def build_server(
    settings: MCPSettings, policies: Sequence[Policy] | None = None
) -> tuple[MCPServer, FenceTools]:
    """The MCP server and its tools (close the tools when the server stops).

    ``policies`` are the identities' resolved policies (``settings.check()``); they set the
    tools' annotations and descriptions (read-only only when every identity is).
    """
    if policies is None:
        policies = [
            _policy_for(settings, who.agent_id, who.tenant) for who in settings.identities()
        ]
    tools = FenceTools(settings)
    read_only = all(policy.read_only for policy in policies)
    timeouts = sorted(
        {policy.statement_timeout_ms for policy in policies if policy.statement_timeout_ms}
    )
    limits = (
        f"at most {settings.max_rows} rows, {settings.max_result_bytes} bytes per result and "
        f"{settings.max_cell_bytes} bytes per value; a statement times out after "
        f"{timeouts[-1] if timeouts else DEFAULT_TIMEOUT_MS} ms"
    )
    writes = "read-only" if read_only else "may write, as the policy allows"
    auth: dict[str, Any] = {}
    if settings.tokens is not None:
        url = settings.public_url or "http://127.0.0.1:8000/mcp"
        auth = {
            "token_verifier": FileTokenVerifier(settings.tokens),
            "auth": AuthSettings(
                # Tokens are issued out of band (`sqlfence mcp token create`); the server is
                # its own authority in the Protected Resource Metadata it publishes.
                issuer_url=AnyHttpUrl(url.rsplit("/", 1)[0]),
                resource_server_url=AnyHttpUrl(url),
                validate_token_resource=False,
            ),
        }
    server: MCPServer = MCPServer(
        name="sqlfence",
        version=__version__,
        instructions=(
            "SQL access through sqlfence: every statement is checked against a policy, "
            "row-limited and audited. Use list_tables and describe_table first."
        ),
        **auth,
    )
    read = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)
    server.add_tool(
        tools.query,
        name="query",
        description=(
            "Run one SQL statement and get its rows as JSON. Each call is one transaction: "
            f"committed when it succeeds, rolled back when it fails. This identity is {writes}. "
            f"Results: {limits}; `truncated_by` names the limits that cut."
        ),
        annotations=ToolAnnotations(
            readOnlyHint=read_only,
            destructiveHint=not read_only,
            idempotentHint=read_only,
            openWorldHint=False,
        ),
        structured_output=False,
    )
    server.add_tool(
        tools.list_tables,
        name="list_tables",
        description="The tables and views this identity's policy lets it read.",
        annotations=read,
        structured_output=False,
    )
    server.add_tool(
        tools.describe_table,
        name="describe_table",
        description=(
            "The columns of one table this identity may read ('table' or 'schema.table'); "
            "denied columns are left out."
        ),
        annotations=read,
        structured_output=False,
    )
    server.add_tool(
        tools.explain,
        name="explain",
        description="The database's query plan for one statement the policy allows (not run).",
        annotations=read,
        structured_output=False,
    )
    return server, tools


def _snapshot_exists(snapshot: str | Path, root: str | Path | None) -> bool:
    """Whether ``snapshot`` names a shared snapshot under the root, or a directory, with a
    manifest (what ``AgentSandbox.load_snapshot`` accepts)."""
    from sqlfence.sandbox.sandbox import SNAPSHOTS, resolve_root
    from sqlfence.sandbox.snapshots import SnapshotStore

    if isinstance(snapshot, Path) or "/" in str(snapshot):
        where = Path(snapshot)
        return where.name in SnapshotStore(where.parent).names()
    return str(snapshot) in SnapshotStore(resolve_root(root) / SNAPSHOTS).names()


def _policy_for(settings: MCPSettings, agent_id: str, tenant: str | None) -> Policy:
    """The identity's policy, with a statement timeout unless the policy sets one."""
    policy = settings.policy
    if not isinstance(policy, Policy):
        policy = load_policy(policy).resolve(agent_id, tenant)
    if policy.statement_timeout_ms is None:
        policy = policy.model_copy(update={"statement_timeout_ms": DEFAULT_TIMEOUT_MS})
    return policy


@contextmanager
def _transaction(connection: GuardedConnection) -> Iterator[None]:
    """One tool call, one transaction: committed on success, rolled back on any failure."""
    try:
        yield
    except BaseException:
        with suppress(Error):  # a connection that is gone committed nothing either
            connection.rollback()
        raise
    try:
        connection.commit()
    except Error as error:
        raise ToolError(f"{type(error).__name__}: {error}") from error


def _sized(
    rows: list[Any], settings: MCPSettings, cut: list[str], used_by_columns: int = 0
) -> list[list[Any]]:
    """Rows as JSON values within the per-value and per-result byte budgets, counted as the
    JSON sent (escapes included; ``used_by_columns`` is what the column names take);
    ``cut`` says which limit cut."""
    budget = settings.max_result_bytes - used_by_columns
    cell_limit = settings.max_cell_bytes
    sized: list[list[Any]] = []
    used = 2  # the enclosing []
    for row in rows:
        values = []
        for raw in row:
            value = _jsonable(raw)
            if isinstance(value, str) and len(value) > cell_limit // 6:
                value = _cut(value, cell_limit, cut)
            values.append(value)
        size = len(_json(values).encode("utf-8")) + 1
        if used + size > budget:
            cut.append("max_result_bytes")
            break
        used += size
        sized.append(values)
    return sized


def _cut(value: str, limit: int, cut: list[str]) -> str:
    """``value`` shortened until its JSON text is at most ``limit`` bytes."""
    if len(_json(value).encode("utf-8")) <= limit:
        return value
    low, high = 0, min(len(value), limit)
    while low < high:  # the longest prefix whose JSON fits (escapes can take 6 bytes a char)
        middle = (low + high + 1) // 2
        if len(_json(value[:middle]).encode("utf-8")) <= limit:
            low = middle
        else:
            high = middle - 1
    if "max_cell_bytes" not in cut:
        cut.append("max_cell_bytes")
    return value[:low]


def _json(value: Any) -> str:
    """Compact JSON, the form a context window pays least for."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _client_name(ctx: Context) -> str | None:
    """What the client calls itself (``clientInfo.name``): recorded only."""
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    return info.name if info is not None and info.name else None


def _run(connection: GuardedConnection, sql: str, params: Any = None) -> Any:
    try:
        return connection.execute(sql, params)
    except PolicyViolation as violation:
        raise ToolError(str(violation)) from violation
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
    from sqlfence.integrations.mcp_serve import main

    main()
