"""``external``: a server you already run, reached through its admin URL."""

from __future__ import annotations

from pathlib import Path

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.registry import Record
from sqlfence.sandbox.runtimes.base import (
    GivenServer,
    PlacementRequest,
    RuntimeOptions,
    refuse_container_options,
)


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

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> ExternalRuntime:
        """The server at ``options.server_url``."""
        refuse_container_options(cls.name, options)
        return cls(options.server_url)

    def check(self, kind: str) -> None:
        """Any database with a server: not SQLite."""
        if kind == "sqlite":
            raise ConfigurationError("SQLite has no server: use runtime='embedded'")

    def place(self, request: PlacementRequest) -> GivenServer:
        """This server, for every sandbox."""
        return GivenServer(self.server_url, self.managed)

    def stop(self) -> None:
        """The server is not ours to stop."""

    @classmethod
    def reopen(cls, record: Record, root: Path) -> GivenServer:
        """The server the record names (its address only: the password comes from the
        environment or the credentials the caller gives the backend)."""
        return GivenServer(record.server)

    @classmethod
    def sweep(cls, root: Path, everything: bool) -> list[str]:
        """Nothing started: the records are all there is."""
        return []
