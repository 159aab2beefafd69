"""The MCP server over streamable HTTP: sessions that cannot be hoarded, and the Host and
Origin checks (DNS-rebinding protection) on every bind address.

Sessions are bounded three ways: ``max_sessions`` in all, ``max_sessions_per_identity`` per
credential (a token holder past it ends its own oldest session), and an idle timeout. At
``max_sessions`` a new session ends the session idle longest instead of being refused, so a
flood of abandoned sessions cannot lock out a fresh client.
"""

from __future__ import annotations

import ipaddress
import math
import signal
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

DEFAULT_MAX_SESSIONS_PER_IDENTITY = 10
# A tool call is a statement (at most max_statement_length) or a few arguments: a bigger
# request is refused (413) before anything parses it.
MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HTTPSettings:
    """Where and how the HTTP transport listens."""

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_sessions: int = 100
    max_sessions_per_identity: int = DEFAULT_MAX_SESSIONS_PER_IDENTITY
    session_idle_timeout: float = 300
    public_url: str | None = None

    @property
    def url(self) -> str:
        """The URL clients use (and the Protected Resource Metadata names)."""
        if self.public_url:
            return self.public_url
        host = socket.gethostname() if _wildcard(self.host) else self.host
        return f"http://{_url_host(host)}:{self.port}/mcp"

    def security(self) -> TransportSecuritySettings:
        """Host and Origin checks: this server's own names, plus what was configured."""
        hosts, origins = _own_names(self.host, self.port)
        if self.public_url:  # behind a proxy that keeps the Host header
            public = urlsplit(self.public_url)
            hosts.append(public.netloc)
            origins.append(f"{public.scheme}://{public.netloc}")
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*hosts, *self.allowed_hosts],
            allowed_origins=[*origins, *self.allowed_origins],
        )


def serve_http(server: MCPServer, settings: HTTPSettings) -> None:
    """Streamable HTTP at ``/mcp`` until interrupted."""
    import uvicorn

    app = server.streamable_http_app(
        max_request_body_size=MAX_REQUEST_BYTES,
        transport_security=settings.security(),
        max_sessions=settings.max_sessions,
        session_idle_timeout=settings.session_idle_timeout,
        host=settings.host,
    )
    manager = server.session_manager
    manager.__class__ = BoundedSessionManager
    assert isinstance(manager, BoundedSessionManager)
    manager.per_identity = max(1, min(settings.max_sessions_per_identity, settings.max_sessions))
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again: with the
    # default handler that would end the process before the caller's cleanup (the audit
    # log's close). Raise SystemExit instead, so every finally block runs.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class BoundedSessionManager(StreamableHTTPSessionManager):
    """Sessions per credential and in all, making room rather than refusing.

    A credential at ``per_identity`` sessions ends its own oldest one (idle or not: holding
    streams open cannot hoard sessions). At ``max_sessions`` a new session ends the session
    idle longest, the caller's own first; one with a request in flight is not ended, and when
    every session is busy the new one is refused (503).
    """

    per_identity: int = DEFAULT_MAX_SESSIONS_PER_IDENTITY

    def _admit_session(
        self, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        if requestor is not None:
            own = [key for key, owner in self._session_owners.items() if owner == requestor]
            if len(own) >= self.per_identity:
                self._end(min(own, key=self._last_active))
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            idle = [
                (self._session_owners.get(key) != requestor, self._last_active(key), key)
                for key in self._server_instances
                if self._last_active(key) != math.inf
            ]
            if idle:
                self._end(min(idle)[2])
        return super()._admit_session(requestor)

    def _last_active(self, key: str) -> float:
        """When the session's idle countdown ends; inf while a request is in flight."""
        transport = self._server_instances.get(key)
        scope = transport.idle_scope if transport is not None else None
        if scope is None or scope.cancel_called:
            return -math.inf  # already ending
        return float(scope.deadline)

    def _end(self, key: str) -> None:
        transport = self._server_instances.pop(key, None)
        self._session_owners.pop(key, None)
        if transport is not None and transport.idle_scope is not None:
            transport.idle_scope.cancel()  # its server task ends it as an idle timeout would


def loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _own_names(host: str, port: int) -> tuple[list[str], list[str]]:
    """The Host headers and Origins of requests to this server: its address and port; the
    loopback names on loopback; on a wildcard bind also the machine's name and addresses."""
    names = {host}
    if loopback(host) or _wildcard(host):
        names |= {"127.0.0.1", "localhost", "::1"}
    if _wildcard(host):
        names |= _machine_names()
    names.discard("0.0.0.0")
    names.discard("::")
    hosts = sorted(f"{_url_host(name)}:{port}" for name in names)
    return hosts, [f"http://{entry}" for entry in hosts]


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    names |= {str(info[4][0]) for info in infos}
    return {name for name in names if name}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
