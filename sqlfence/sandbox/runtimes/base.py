"""The ``Runtime`` protocol: where a sandbox's server runs, and which backend talks to it.

``embedded`` needs no server (SQLite files), ``external`` is a server you already run (given
by its admin URL). A Docker or Kubernetes runtime adds a file here that starts the server,
then hands back the same backends with the URL of what it started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlfence.sandbox import credentials
from sqlfence.sandbox.backends.base import Backend


class Runtime(Protocol):
    """A place where namespaces live."""

    name: str

    def backend(self, kind: str, root: Path) -> Backend:
        """The backend of database ``kind`` on this runtime. Raises ConfigurationError."""
        ...

    def stop(self) -> None:
        """Release what the runtime started (nothing for servers it did not start)."""
        ...


@runtime_checkable
class ContainerHost(Protocol):
    """What a backend whose server is a container adds: its health, stats and failures."""

    def container_metrics(self) -> dict[str, Any]:
        """``cpu_percent`` and ``memory_used_mb`` of the container (empty when unknown)."""
        ...

    def failure(self) -> str | None:
        """Why the container cannot serve (dead, OOM-killed), or None."""
        ...

    def healthy(self) -> bool:
        """True when the container runs and its server answers (asks the engine)."""
        ...

    def dead(self) -> bool:
        """True once the container is known to have died (cheap: no engine call)."""
        ...

    def on_failure(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` when the container fails."""
        ...


def backend_for(
    kind: str,
    root: Path,
    server_url: str | None,
    given: credentials.Credentials = None,
    *,
    managed: bool = False,
) -> Backend:
    """Build backend ``kind`` for sandboxes under ``root`` (files) or on ``server_url``.

    ``server_url`` may be an address without a password (a registry record's): the password
    then comes from ``given`` admin URLs or the environment (see ``credentials``).
    ``managed`` says the server is sqlfence's alone (one it started), so the backend may
    confine it server-wide. Raises ConfigurationError, CredentialsMissing.
    """
    from sqlfence.errors import ConfigurationError

    if kind == "sqlite":
        from sqlfence.sandbox.backends.sqlite import SQLiteBackend

        return SQLiteBackend(root / "sandboxes")
    if server_url is None:
        raise ConfigurationError(f"the {kind} backend needs server_url=<admin URL of a server>")
    server_url = credentials.admin_url(kind, server_url, given)
    if kind in ("postgres", "postgresql"):
        from sqlfence.sandbox.backends.postgres import PostgresBackend

        return PostgresBackend(server_url, managed=managed)
    if kind == "iris":
        from sqlfence.sandbox.backends.iris import IRISBackend

        return IRISBackend(server_url)
    raise ConfigurationError(f"unknown sandbox backend {kind!r} (sqlite, postgres, iris)")


def names_are_public(backend: Backend) -> bool:
    """True when every login on the backend's server can list its namespaces and roles
    (``shared_catalog``, PostgreSQL): sandbox names there must not say whose they are."""
    return bool(getattr(backend, "shared_catalog", False))


def drop_recorded(
    kind: str,
    root: Path,
    server_url: str | None,
    name: str,
    clones: Iterable[str],
    given: credentials.Credentials = None,
) -> None:
    """Drop namespace ``name`` and its ``clones`` through a backend made for it, then close it.

    What the reaper does with a record whose owning process is gone.
    """
    backend = backend_for(kind, root, server_url, given)
    try:
        for clone in clones:
            backend.drop_clone(clone)
        backend.drop(name)
    finally:
        backend.close()
