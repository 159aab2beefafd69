"""The ``Backend`` protocol: one database kind's namespaces (create, drop, size, snapshot data).

A backend knows nothing of sandboxes, registries, fences or where its server runs (that is
a runtime's business): given a server's admin URL, it turns names into namespaces and back.
Every drop is idempotent, so teardown and the reaper can call it blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlfence.errors import ConfigurationError
from sqlfence.policies.model import Policy
from sqlfence.sandbox import credentials
from sqlfence.sandbox.limits import Limits


@dataclass(frozen=True)
class Namespace:
    """One sandbox's namespace: where it is and the URL fence connections use."""

    name: str
    backend: str
    url: str  # connects as the sandbox's own role, never the admin one
    location: str  # file path, or server address and database (for people and the registry)
    role: str | None = None


@dataclass(frozen=True)
class Contents:
    """What a namespace holds: tables with row counts, and a digest of its schema."""

    tables: dict[str, int] = field(default_factory=dict)
    schema_digest: str = ""


@runtime_checkable
class Backend(Protocol):
    """One database kind. ``name`` is what ``AgentSandbox.create(backend=...)`` takes."""

    name: str
    # True when in-server clones are the fast snapshot path (PostgreSQL TEMPLATE);
    # False when snapshots are files (SQLite backup API).
    clones: bool

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """Make namespace ``name`` with its own least-privilege role. Raises SandboxError;
        NothingMade when it failed before making anything."""
        ...

    def drop(self, name: str) -> None:
        """Remove namespace ``name``, its role and its clones. No error when already gone."""
        ...

    def names(self) -> list[str]:
        """The sandbox namespaces that exist (made by sqlfence, by name prefix)."""
        ...

    def size_bytes(self, name: str) -> int:
        """The namespace's size on disk."""
        ...

    def set_paused(self, name: str, paused: bool) -> None:
        """Make the database itself refuse (or accept again) new connections, where it can."""
        ...

    def contents(self, name: str) -> Contents:
        """Tables, row counts and schema digest (for snapshot manifests)."""
        ...

    def export_files(self, name: str, directory: Path) -> list[str]:
        """Write the namespace's data as portable files into ``directory``; return their names."""
        ...

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """Replace the namespace's data with the (already verified) files of a snapshot."""
        ...

    def clone(self, name: str, clone: str) -> str:
        """Copy namespace ``name`` in-server to ``clone``; return a digest of its contents."""
        ...

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """Replace namespace ``name`` with a copy of ``clone``, checking ``digest`` first.

        Raises SandboxError (leaving ``name`` as it was) when the copy's digest differs.
        """
        ...

    def drop_clone(self, clone: str) -> None:
        """Remove an in-server clone. No error when already gone."""
        ...

    def close(self) -> None:
        """Release admin connections."""
        ...


def backend_type(kind: str) -> type[Backend]:
    """The backend class of database ``kind``, whose class attributes say what it is
    (``name``, ``clones``, ``shared_catalog``) before any server exists. Raises
    ConfigurationError for an unknown kind."""
    if kind == "sqlite":
        from sqlfence.sandbox.backends.sqlite import SQLiteBackend

        return SQLiteBackend
    if kind in ("postgres", "postgresql"):
        from sqlfence.sandbox.backends.postgres import PostgresBackend

        return PostgresBackend
    if kind == "iris":
        from sqlfence.sandbox.backends.iris import IRISBackend

        return IRISBackend
    raise ConfigurationError(f"unknown sandbox backend {kind!r} (sqlite, postgres, iris)")


def backend_for(
    kind: str,
    root: Path,
    server_url: str | None,
    given: credentials.Credentials = None,
    *,
    managed: bool = False,
) -> Backend:
    """Backend ``kind`` for sandboxes under ``root`` (files) or on the server at ``server_url``.

    ``server_url`` may be an address without a password (a registry record's): the password
    then comes from ``given`` admin URLs or the environment (see ``credentials``).
    ``managed`` says the server is sqlfence's alone (one it started), so the backend may
    confine it server-wide. Raises ConfigurationError, CredentialsMissing.
    """
    name = backend_type(kind).name
    if name == "sqlite":
        from sqlfence.sandbox.backends.sqlite import SQLiteBackend

        return SQLiteBackend(root / "sandboxes")
    if server_url is None:
        raise ConfigurationError(f"the {kind} backend needs server_url=<admin URL of a server>")
    server_url = credentials.admin_url(kind, server_url, given)
    if name == "postgres":
        from sqlfence.sandbox.backends.postgres import PostgresBackend

        return PostgresBackend(server_url, managed=managed)
    from sqlfence.sandbox.backends.iris import IRISBackend

    return IRISBackend(server_url)


def names_are_public(backend: type[Backend] | Backend) -> bool:
    """True when every login on the backend's server can list its namespaces and roles
    (``shared_catalog``, PostgreSQL): sandbox names there must not say whose they are."""
    return bool(getattr(backend, "shared_catalog", False))
