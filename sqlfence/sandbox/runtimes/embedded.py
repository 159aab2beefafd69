"""``embedded``: no server at all; namespaces are SQLite files under the sandbox root."""

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


class EmbeddedRuntime:
    """SQLite in this process."""

    name = "embedded"

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> EmbeddedRuntime:
        """The embedded runtime (``server_url`` is not needed and goes unused)."""
        refuse_container_options(cls.name, options)
        return cls()

    def check(self, kind: str) -> None:
        """SQLite only: other databases need a server (runtime="external")."""
        if kind != "sqlite":
            raise ConfigurationError(
                f"the embedded runtime runs SQLite only; use runtime='external' with "
                f"server_url=... for {kind}"
            )

    def place(self, request: PlacementRequest) -> GivenServer:
        """No server: the backend writes files under the root."""
        return GivenServer(None)

    def stop(self) -> None:
        """Nothing was started."""

    @classmethod
    def reopen(cls, record: Record, root: Path) -> GivenServer:
        """Files under the root."""
        return GivenServer(None)

    @classmethod
    def sweep(cls, root: Path, everything: bool) -> list[str]:
        """No servers: the records are all there is."""
        return []
