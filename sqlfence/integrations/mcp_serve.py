"""Serving the MCP tools: ``build_server()``, ``serve()`` and the ``sqlfence mcp`` command line.

Everything checkable is checked before serving; a problem exits with status 2 and one line.
HTTP without a tokens file binds loopback addresses only; with one, every request carries a
bearer token whose entry names the identity (``sqlfence mcp token create`` makes one). The
tools and resources a client lists are its identity's: a curated-only identity sees its
curated tools alone, and ``query`` is marked read-only when its policy is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import sqlglot
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import (
    CallToolResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ToolAnnotations,
)
from pydantic import AnyHttpUrl
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlfence import __version__
from sqlfence.arguments import claim, positive_int
from sqlfence.errors import ConfigurationError, Error
from sqlfence.integrations.mcp import (
    DEFAULT_AGENT,
    DEFAULT_CELL_BYTES,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_RESULT_BYTES,
    DEFAULT_SANDBOX_QUOTA_MB,
    DEFAULT_TIMEOUT_MS,
    MCPSettings,
    policy_for,
)
from sqlfence.integrations.mcp_curated import BUILTIN_TOOLS, CuratedTool, load_tools
from sqlfence.integrations.mcp_http import (
    DEFAULT_MAX_SESSIONS_PER_IDENTITY,
    HTTPSettings,
    loopback,
    serve_http,
)
from sqlfence.integrations.mcp_results import QueryResult
from sqlfence.integrations.mcp_tokens import FileTokenVerifier, TokenFile, create_token
from sqlfence.integrations.mcp_tools import TABLE_URI, FenceTools
from sqlfence.observe.settings import AuditOption
from sqlfence.policies.loader import PolicySource
from sqlfence.policies.model import Policy

_READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)


class FenceServer(MCPServer):
    """An ``MCPServer`` whose tool and resource lists are the calling identity's."""

    fence: FenceTools

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        policy = self.fence.caller_policy()
        tools = []
        for listed in await self.list_tools():
            if listed.name in BUILTIN_TOOLS and policy.mcp_tools == "curated":
                continue
            if listed.name == "query":
                tools.append(listed.model_copy(update={"annotations": _query_annotations(policy)}))
            else:
                tools.append(listed)
        return ListToolsResult(tools=tools)

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        context = Context(request_context=ctx, mcp_server=self)
        resources = await anyio.to_thread.run_sync(self.fence.table_resources, context)
        return ListResourcesResult(resources=resources)

    async def _handle_list_resource_templates(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        if self.fence.caller_policy().mcp_tools == "curated":
            return ListResourceTemplatesResult(resource_templates=[])
        return await super()._handle_list_resource_templates(ctx, params)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        """Every call is audited, also one that never reaches its tool (an unknown name,
        arguments that fail the input schema)."""
        try:
            return await super().call_tool(name, arguments, context)
        except Exception as error:
            if context is not None:
                await anyio.to_thread.run_sync(self.fence.record_unrun, name, error, context)
            raise


def build_server(
    settings: MCPSettings, policies: Sequence[Policy] | None = None
) -> tuple[FenceServer, FenceTools]:
    """The MCP server and its tools (close the tools when the server stops).

    ``policies`` are the identities' resolved policies (``settings.check()``); the tool
    descriptions name the strictest limits among them.
    """
    if policies is None:
        policies = [policy_for(settings, who.agent_id, who.tenant) for who in settings.identities()]
    tools = FenceTools(settings)
    server = FenceServer(
        name="sqlfence",
        version=__version__,
        instructions=(
            "SQL access through sqlfence: every statement is checked against a policy, "
            "row-limited and audited. Read the table resources (or call list_tables and "
            "describe_table) first."
        ),
        **_auth(settings),
    )
    server.fence = tools
    dialect = settings.dialect
    limits = _limits(settings, policies)
    read_only = all(policy.read_only for policy in policies)
    writes = "read-only" if read_only else "may write, as the policy allows"
    server.add_tool(
        tools.query,
        name="query",
        description=(
            f"Run one SQL statement ({dialect} dialect) and get its rows. Each call is one "
            "transaction: committed when it succeeds, rolled back when it fails. This "
            f"identity is {writes}. Results: {limits}; `truncated_by` names the limits that cut."
        ),
        annotations=_query_annotations(policies[0] if len(policies) == 1 else None, read_only),
        structured_output=True,
    )
    server.add_tool(
        tools.list_tables,
        name="list_tables",
        description="The tables and views this identity's policy lets it read.",
        annotations=_READ,
        structured_output=True,
    )
    server.add_tool(
        tools.describe_table,
        name="describe_table",
        description=(
            "The columns of one table this identity may read ('table' or 'schema.table'), "
            "with types, NOT NULL and primary keys; denied columns are left out."
        ),
        annotations=_READ,
        structured_output=True,
    )
    server.add_tool(
        tools.explain,
        name="explain",
        description=(
            f"The database's query plan for one statement ({dialect} dialect) the policy "
            "allows (not run)."
        ),
        annotations=_READ,
        structured_output=True,
    )
    for curated in settings.curated:
        server.add_tool(
            curated.function(tools.curated, Context, CallToolResult, QueryResult),
            name=curated.name,
            title=curated.title,
            description=f"{curated.description.strip()} Results: {limits}.",
            annotations=_curated_annotations(curated, dialect),
            structured_output=True,
        )
    server.resource(
        TABLE_URI,
        name="table",
        description="The columns of one table this identity may read, as JSON.",
        mime_type="application/json",
    )(tools.read_table)
    return server, tools


def _limits(settings: MCPSettings, policies: Sequence[Policy]) -> str:
    timeouts = sorted(
        {policy.statement_timeout_ms for policy in policies if policy.statement_timeout_ms}
    )
    return (
        f"at most {settings.max_rows} rows, {settings.max_result_bytes} bytes per result and "
        f"{settings.max_cell_bytes} bytes per value; a statement times out after "
        f"{timeouts[-1] if timeouts else DEFAULT_TIMEOUT_MS} ms"
    )


def _query_annotations(policy: Policy | None, read_only: bool | None = None) -> ToolAnnotations:
    """``query``'s hints: read-only and not destructive exactly when the policy is read-only."""
    if read_only is None:
        read_only = policy is not None and policy.read_only
    return ToolAnnotations(
        readOnlyHint=read_only,
        destructiveHint=not read_only,
        idempotentHint=read_only,
        openWorldHint=False,
    )


def _curated_annotations(tool: CuratedTool, dialect: str) -> ToolAnnotations:
    """A curated tool is read-only when its SQL is a query (the fence still judges it)."""
    try:
        reads = isinstance(sqlglot.parse_one(tool.sql, read=dialect), exp.Query)
    except SqlglotError:
        reads = False
    return ToolAnnotations(
        title=tool.title,
        readOnlyHint=reads,
        destructiveHint=not reads,
        idempotentHint=reads,
        openWorldHint=False,
    )


def _auth(settings: MCPSettings) -> dict[str, Any]:
    """The SDK's bearer-token settings when the server has a tokens file."""
    if settings.tokens is None:
        return {}
    url = settings.public_url or "http://127.0.0.1:8000/mcp"
    return {
        "token_verifier": FileTokenVerifier(settings.tokens),
        "auth": AuthSettings(
            # Tokens are issued out of band (`sqlfence mcp token create`); the server is its
            # own authority in the Protected Resource Metadata it publishes.
            issuer_url=AnyHttpUrl(url.rsplit("/", 1)[0]),
            resource_server_url=AnyHttpUrl(url),
            validate_token_resource=False,
        ),
    }


def serve(
    url: str | None,
    policy: PolicySource = None,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sandbox: bool = False,
    snapshot: str | Path | None = None,
    audit: AuditOption = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    claims: Mapping[str, str | int] | None = None,
    sandbox_root: str | Path | None = None,
    max_rows: int = 200,
    max_result_bytes: int = DEFAULT_RESULT_BYTES,
    max_cell_bytes: int = DEFAULT_CELL_BYTES,
    tokens: str | Path | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
    tools: str | Path | None = None,
    max_sessions_per_identity: int = DEFAULT_MAX_SESSIONS_PER_IDENTITY,
    public_url: str | None = None,
    sandbox_quota_mb: float = DEFAULT_SANDBOX_QUOTA_MB,
) -> None:
    """Run the MCP server until the client disconnects (stdio) or it is interrupted (http).

    ``transport="http"`` serves streamable HTTP at ``http://host:port/mcp``; the host
    defaults to 127.0.0.1. ``tokens`` (a tokens file, HTTP only) makes every request carry a
    bearer token whose entry names its identity; without it only loopback addresses are
    served. The Host and Origin headers are checked on every bind address (``allowed_hosts``,
    ``allowed_origins`` add to the defaults: this server's own names and port). Sessions are
    bounded (``max_sessions``, ``max_sessions_per_identity``, ``session_idle_timeout``).
    ``public_url`` is the URL clients use, when it is not ``http://host:port/mcp``. ``tools``
    is a curated tools file (see ``mcp_curated``). The configuration is checked first:
    ConfigurationError, PolicyError or OperationalError name what is wrong before anything
    is served.
    """
    if transport not in ("stdio", "http"):
        raise ConfigurationError(f"unknown transport {transport!r} (stdio or http)")
    if tokens is not None and transport != "http":
        raise ConfigurationError(
            "--tokens applies to the HTTP transport; over stdio the identity is --agent-id"
        )
    if tokens is not None and claims:
        raise ConfigurationError(
            "--claim is the stdio identity's; with --tokens each token's entry holds its claims"
        )
    if transport == "http" and tokens is None and not loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without authentication: give --tokens (a tokens "
            "file, see `sqlfence mcp token create`) or bind a loopback address"
        )
    http = HTTPSettings(
        host=host,
        port=port,
        allowed_hosts=tuple(allowed_hosts),
        allowed_origins=tuple(allowed_origins),
        max_sessions=max_sessions,
        max_sessions_per_identity=max_sessions_per_identity,
        session_idle_timeout=session_idle_timeout,
        public_url=public_url,
    )
    settings = MCPSettings(
        url=url,
        policy=policy,
        agent_id=agent_id,
        tenant=tenant,
        claims=dict(claims or {}),
        audit=audit,
        sandbox=sandbox,
        snapshot=snapshot,
        sandbox_root=sandbox_root,
        sandbox_quota_mb=sandbox_quota_mb,
        max_rows=max_rows,
        max_result_bytes=max_result_bytes,
        max_cell_bytes=max_cell_bytes,
        tokens=TokenFile(tokens) if tokens is not None else None,
        public_url=http.url,
        curated=load_tools(tools) if tools is not None else (),
    )
    resolved = settings.check()
    server, fence = build_server(settings, resolved)
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            serve_http(server, http)
    finally:
        fence.close()


def main(
    argv: Sequence[str] | None = None,
    *,
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
    report: Callable[[str, str], None] | None = None,
) -> None:
    """``sqlfence mcp [--policy P] [--sandbox] URL``; a configuration problem exits 2.

    ``report(message, kind)`` says what is wrong (default: one line on standard error), and
    ``parser_class`` reports usage errors (the CLI passes its JSON ones under ``--json``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["token"]:
        _token_command(arguments[1:])
        return
    parser = parser_class(prog="sqlfence mcp", description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (not needed with --sandbox)")
    parser.add_argument("--policy", help="policy file (YAML)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP: loopback addresses only")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--sandbox", action="store_true", help="a SQLite sandbox per session")
    parser.add_argument("--snapshot", help="golden snapshot each sandbox starts from")
    parser.add_argument("--sandbox-root", help="where sandboxes live (default .sqlfence)")
    parser.add_argument(
        "--sandbox-quota-mb",
        type=positive_int,
        default=DEFAULT_SANDBOX_QUOTA_MB,
        help="disk quota of each session's sandbox",
    )
    parser.add_argument("--audit", help="audit log directory")
    parser.add_argument(
        "--agent-id",
        help=f"the identity calls are judged and recorded as (default {DEFAULT_AGENT}); "
        "the policy section is chosen by it, never by what the client says",
    )
    parser.add_argument("--tenant")
    parser.add_argument(
        "--claim",
        action="append",
        type=claim,
        default=[],
        metavar="NAME=VALUE",
        help="a claim of the identity, for row filters' :claims.NAME (again for more)",
    )
    parser.add_argument("--tools", help="curated tools file (YAML): named tools over SQL")
    parser.add_argument("--max-rows", type=positive_int, default=200, help="rows per query result")
    parser.add_argument(
        "--max-result-bytes", type=positive_int, default=DEFAULT_RESULT_BYTES, help="per result"
    )
    parser.add_argument(
        "--max-cell-bytes", type=positive_int, default=DEFAULT_CELL_BYTES, help="per value"
    )
    parser.add_argument(
        "--tokens", help="HTTP: a tokens file; every request needs a bearer token from it"
    )
    parser.add_argument("--allowed-host", action="append", default=[], help="HTTP Host header")
    parser.add_argument("--allowed-origin", action="append", default=[], help="HTTP Origin")
    parser.add_argument("--max-sessions", type=positive_int, default=DEFAULT_MAX_SESSIONS)
    parser.add_argument(
        "--max-sessions-per-identity",
        type=positive_int,
        default=DEFAULT_MAX_SESSIONS_PER_IDENTITY,
        help="HTTP sessions one token may hold; past it, its own oldest one ends",
    )
    parser.add_argument("--public-url", help="HTTP: the URL clients use, if not host:port")
    parser.add_argument(
        "--session-idle-timeout", type=positive_int, default=DEFAULT_IDLE_TIMEOUT_S, help="seconds"
    )
    args = parser.parse_args(arguments)
    if args.url is None and not args.sandbox:
        parser.error("a database URL is required unless --sandbox is given")
    try:
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
            claims=dict(args.claim),
            sandbox_root=args.sandbox_root,
            max_rows=args.max_rows,
            max_result_bytes=args.max_result_bytes,
            max_cell_bytes=args.max_cell_bytes,
            tokens=args.tokens,
            allowed_hosts=args.allowed_host,
            allowed_origins=args.allowed_origin,
            max_sessions=args.max_sessions,
            session_idle_timeout=args.session_idle_timeout,
            tools=args.tools,
            max_sessions_per_identity=args.max_sessions_per_identity,
            public_url=args.public_url,
            sandbox_quota_mb=args.sandbox_quota_mb,
        )
    except (Error, OSError) as error:
        if report is None:
            print(f"sqlfence mcp: {error}", file=sys.stderr)
        else:
            report(f"sqlfence mcp: {error}", type(error).__name__)
        raise SystemExit(2) from None


def _token_command(argv: Sequence[str]) -> None:
    """``sqlfence mcp token create --tokens FILE --agent-id ID [--tenant T] [--claim K=V]``."""
    parser = argparse.ArgumentParser(prog="sqlfence mcp token")
    parser.add_argument("action", choices=("create",))
    parser.add_argument("--tokens", required=True, help="the tokens file (hashes only)")
    parser.add_argument("--agent-id", required=True, help="the identity the token stands for")
    parser.add_argument("--tenant")
    parser.add_argument(
        "--claim",
        action="append",
        type=claim,
        default=[],
        metavar="NAME=VALUE",
        help="a claim of the token, for row filters' :claims.NAME (again for more)",
    )
    args = parser.parse_args(argv)
    try:
        token = create_token(args.tokens, args.agent_id, args.tenant, dict(args.claim))
    except (Error, OSError) as error:
        print(f"sqlfence mcp token: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(token)
    print(
        f"token for {args.agent_id} added to {args.tokens} (only its hash is kept): "
        "this is the one time it is shown",
        file=sys.stderr,
    )
