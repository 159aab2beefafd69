"""``embedded``: no server at all; namespaces are SQLite files under the sandbox root."""

from __future__ import annotations

from pathlib import Path

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.backends.base import Backend
from sqlfence.sandbox.runtimes.base import backend_for


class EmbeddedRuntime:
    """SQLite in this process."""

    name = "embedded"

    def backend(self, kind: str, root: Path) -> Backend:
        """The SQLite backend; other databases need a server (runtime="external")."""
        if kind != "sqlite":
            raise ConfigurationError(
                f"the embedded runtime runs SQLite only; use runtime='external' with "
                f"server_url=... for {kind}"
            )
        return backend_for(kind, root, None)

    def stop(self) -> None:
        """Nothing was started."""
