"""Where sandbox servers run: ``embedded`` and ``external`` (docker, kubernetes: later)."""

from __future__ import annotations

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.runtimes.base import Runtime


def runtime_for(name: str | None, backend: str, server_url: str | None) -> Runtime:
    """The runtime called ``name`` (default: embedded for SQLite, external otherwise)."""
    from sqlfence.sandbox.runtimes.embedded import EmbeddedRuntime
    from sqlfence.sandbox.runtimes.external import ExternalRuntime

    chosen = name or ("embedded" if backend == "sqlite" else "external")
    if chosen == "embedded":
        return EmbeddedRuntime()
    if chosen == "external":
        return ExternalRuntime(server_url)
    raise ConfigurationError(
        f"runtime {chosen!r} is not available (embedded, external; docker is a separate issue)"
    )
