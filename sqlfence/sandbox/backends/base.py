"""The ``Backend`` protocol: one database kind's namespaces (create, drop, size, snapshot data).

A backend knows nothing of sandboxes, registries or fences: it turns names into namespaces
and back. Every drop is idempotent, so teardown and the reaper can call it blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlfence.policies.model import Policy
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
