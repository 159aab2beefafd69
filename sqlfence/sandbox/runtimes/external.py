"""``external``: a server you already run, reached through its admin URL."""

from __future__ import annotations

from pathlib import Path

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.backends.base import Backend
from sqlfence.sandbox.runtimes.base import backend_for


class ExternalRuntime:
    """A PostgreSQL or IRIS server that sqlfence does not start or stop.

    ``managed=True`` says the server serves sqlfence's sandboxes only, so it may be confined
    server-wide as the servers sqlfence starts are (PostgreSQL: PUBLIC loses CONNECT on
    ``postgres`` and ``template1``); the default leaves server-wide settings alone.
    """

    name = "external"

    def __init__(self, server_url: str | None, managed: bool = False) -> None:
        if not server_url:
            raise ConfigurationError("runtime='external' needs server_url=<admin URL>")
        self.server_url = server_url
        self.managed = managed

    def backend(self, kind: str, root: Path) -> Backend:
        """The backend of ``kind`` on this server."""
        if kind == "sqlite":
            raise ConfigurationError("SQLite has no server: use runtime='embedded'")
        return backend_for(kind, root, self.server_url, managed=self.managed)

    def stop(self) -> None:
        """The server is not ours to stop."""
