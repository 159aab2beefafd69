"""Serving the MCP tools: ``serve()`` and the ``sqlfence mcp`` command line.

Everything checkable is checked before serving; a problem exits with status 2 and one line.
HTTP without a tokens file binds loopback addresses only; with one, every request carries a
bearer token whose entry names the identity (``sqlfence mcp token create`` makes one).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from sqlfence.errors import ConfigurationError, Error
from sqlfence.integrations.mcp import (
    DEFAULT_AGENT,
    DEFAULT_CELL_BYTES,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_SESSIONS,
    DEFAULT_RESULT_BYTES,
    MCPSettings,
    build_server,
)
from sqlfence.integrations.mcp_tokens import TokenFile, create_token
from sqlfence.policies.loader import PolicySource


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
    max_result_bytes: int = DEFAULT_RESULT_BYTES,
    max_cell_bytes: int = DEFAULT_CELL_BYTES,
    tokens: str | Path | None = None,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
) -> None:
    """Run the MCP server until the client disconnects (stdio) or it is interrupted (http).

    ``transport="http"`` serves streamable HTTP at ``http://host:port/mcp``; the host
    defaults to 127.0.0.1. ``tokens`` (a tokens file, HTTP only) makes every request carry a
    bearer token whose entry names its identity; without it only loopback addresses are
    served. The Host and Origin headers are checked on every bind address (``allowed_hosts``,
    ``allowed_origins`` add to the defaults). The configuration is checked first:
    ConfigurationError, PolicyError or OperationalError name what is wrong before anything
    is served.
    """
    if transport not in ("stdio", "http"):
        raise ConfigurationError(f"unknown transport {transport!r} (stdio or http)")
    if tokens is not None and transport != "http":
        raise ConfigurationError(
            "--tokens applies to the HTTP transport; over stdio the identity is --agent-id"
        )
    if transport == "http" and tokens is None and not _loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without authentication: give --tokens (a tokens "
            "file, see `sqlfence mcp token create`) or bind a loopback address"
        )
    public = f"http://{_url_host(host)}:{port}/mcp"
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
        max_result_bytes=max_result_bytes,
        max_cell_bytes=max_cell_bytes,
        tokens=TokenFile(tokens) if tokens is not None else None,
        public_url=public,
    )
    resolved = settings.check()
    server, tools = build_server(settings, resolved)
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=[*_default_hosts(host, port), *allowed_hosts],
                allowed_origins=list(allowed_origins),
            )
            _serve_http(server, host, port, security, max_sessions, session_idle_timeout)
    finally:
        tools.close()


def _serve_http(
    server: MCPServer,
    host: str,
    port: int,
    security: TransportSecuritySettings,
    max_sessions: int,
    idle_timeout: float,
) -> None:
    """Streamable HTTP at ``/mcp`` with sessions that make room for a new client (below)."""
    import uvicorn

    app = server.streamable_http_app(
        transport_security=security,
        max_sessions=max_sessions,
        session_idle_timeout=idle_timeout,
        host=host,
    )
    server.session_manager.__class__ = RoomMakingSessionManager
    uvicorn.run(app, host=host, port=port, log_level="warning")


class RoomMakingSessionManager(StreamableHTTPSessionManager):
    """At ``max_sessions``, a new session ends the session idle longest instead of being
    refused with 503 until one times out: a flood of abandoned sessions cannot lock out a
    fresh client. The caller's own idle sessions go first, so one credential flooding the
    server displaces itself; a session with a request in flight (an open stream) is never
    ended, and when every session is busy the new one is still refused.
    """

    def _admit_session(
        self, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            self._end_idlest(requestor)
        return super()._admit_session(requestor)

    def _end_idlest(self, requestor: AuthorizationContext | None) -> None:
        idle = [
            (self._session_owners.get(key) != requestor, scope.deadline, key)
            for key, transport in self._server_instances.items()
            if (scope := transport.idle_scope) is not None
            and not scope.cancel_called
            and scope.deadline != math.inf  # the SDK's mark of a request in flight
        ]
        if not idle:
            return
        *_, key = min(idle)
        transport = self._server_instances.pop(key)
        self._session_owners.pop(key, None)
        assert transport.idle_scope is not None
        transport.idle_scope.cancel()  # its server task ends it as an idle timeout would


def main(argv: Sequence[str] | None = None) -> None:
    """``sqlfence mcp [--policy P] [--sandbox] URL``; a configuration problem exits 2."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["token"]:
        _token_command(arguments[1:])
        return
    parser = argparse.ArgumentParser(prog="sqlfence mcp", description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="database URL (not needed with --sandbox)")
    parser.add_argument("--policy", help="policy file (YAML)")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP: loopback addresses only")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--sandbox", action="store_true", help="a SQLite sandbox per session")
    parser.add_argument("--snapshot", help="golden snapshot each sandbox starts from")
    parser.add_argument("--sandbox-root", help="where sandboxes live (default .sqlfence)")
    parser.add_argument("--audit", help="audit log directory")
    parser.add_argument(
        "--agent-id",
        help=f"the identity calls are judged and recorded as (default {DEFAULT_AGENT}); "
        "the policy section is chosen by it, never by what the client says",
    )
    parser.add_argument("--tenant")
    parser.add_argument("--max-rows", type=_positive, default=200, help="rows per query result")
    parser.add_argument(
        "--max-result-bytes", type=_positive, default=DEFAULT_RESULT_BYTES, help="per result"
    )
    parser.add_argument(
        "--max-cell-bytes", type=_positive, default=DEFAULT_CELL_BYTES, help="per value"
    )
    parser.add_argument(
        "--tokens", help="HTTP: a tokens file; every request needs a bearer token from it"
    )
    parser.add_argument("--allowed-host", action="append", default=[], help="HTTP Host header")
    parser.add_argument("--allowed-origin", action="append", default=[], help="HTTP Origin")
    parser.add_argument("--max-sessions", type=_positive, default=DEFAULT_MAX_SESSIONS)
    parser.add_argument(
        "--session-idle-timeout", type=_positive, default=DEFAULT_IDLE_TIMEOUT_S, help="seconds"
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
            sandbox_root=args.sandbox_root,
            max_rows=args.max_rows,
            max_result_bytes=args.max_result_bytes,
            max_cell_bytes=args.max_cell_bytes,
            tokens=args.tokens,
            allowed_hosts=args.allowed_host,
            allowed_origins=args.allowed_origin,
            max_sessions=args.max_sessions,
            session_idle_timeout=args.session_idle_timeout,
        )
    except (Error, OSError) as error:
        print(f"sqlfence mcp: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _default_hosts(host: str, port: int) -> list[str]:
    """The Host headers a request may carry: this address and port (and the loopback names
    when bound to one)."""
    if _loopback(host):
        return ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    return [f"{_url_host(host)}:{port}"]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _token_command(argv: Sequence[str]) -> None:
    """``sqlfence mcp token create --tokens FILE --agent-id ID [--tenant T]``."""
    parser = argparse.ArgumentParser(prog="sqlfence mcp token")
    parser.add_argument("action", choices=("create",))
    parser.add_argument("--tokens", required=True, help="the tokens file (hashes only)")
    parser.add_argument("--agent-id", required=True, help="the identity the token stands for")
    parser.add_argument("--tenant")
    args = parser.parse_args(argv)
    try:
        token = create_token(args.tokens, args.agent_id, args.tenant)
    except (Error, OSError) as error:
        print(f"sqlfence mcp token: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(token)
    print(
        f"token for {args.agent_id} added to {args.tokens} (only its hash is kept): "
        "this is the one time it is shown",
        file=sys.stderr,
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
