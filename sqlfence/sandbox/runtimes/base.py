"""The ``Runtime`` protocol: where a sandbox's server runs. Runtimes make servers, backends
make namespaces on them.

A runtime hands each new sandbox a ``Placement``: the admin URL of a server (one it started,
found, or was given), and what that server adds (health, stats, freezing, failures). The
sandbox then asks the database's backend (``backends.base.backend_for``) for its namespace
on that server. ``embedded`` needs no server (SQLite files), ``external`` is a server you
already run; ``docker`` starts containers, ``shared`` (many sandboxes per server) or
``dedicated`` (one each). A new orchestrator is a new file here and one line in the
registry of ``runtimes/__init__.py``; nothing else asks which runtime a sandbox has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlfence.errors import ConfigurationError
from sqlfence.sandbox.backends.base import Backend
from sqlfence.sandbox.limits import Limits
from sqlfence.sandbox.registry import Record


@dataclass(frozen=True)
class RuntimeOptions:
    """What ``AgentSandbox.create`` (and a pool) was told about where servers run."""

    server_url: str | None = None  # external: the admin URL of your server
    placement: str | None = None  # container runtimes: "shared" or "dedicated"
    image: str | None = None  # container runtimes: instead of the database's default image


@dataclass(frozen=True)
class PlacementRequest:
    """One new sandbox, as a runtime needs to know it to find or start its server."""

    name: str  # the namespace name, chosen before the server
    kind: str  # the backend's name: "sqlite", "postgres", "iris"
    root: Path  # the sandbox root (labels tie servers to it, for the reaper)
    limits: Limits  # a dedicated server enforces them (cgroups, pod resources)
    agent_id: str
    tenant: str | None
    expires_at: float | None  # epoch seconds: labels, or a lease the server side ends


class Placement(Protocol):
    """The server holding one sandbox's namespace, as the runtime placed it there."""

    admin_url: str | None  # what the backend connects with (None: no server, SQLite)
    managed: bool  # the server is sqlfence's alone: the backend may confine it server-wide
    outlives_process: bool  # the server stays up without this process (the sandbox may detach)

    def holds_namespaces(self) -> bool:
        """True when the namespace must be dropped in the server before ``release``; False
        when the server takes it along (a dedicated server) or is already gone."""
        ...

    def release(self) -> None:
        """The sandbox is gone: stop what was started for it alone (idempotent)."""
        ...

    def pause(self, paused: bool) -> bool:
        """Freeze or thaw the whole server; False when it is shared (pause the namespace)."""
        ...

    def metrics(self) -> dict[str, Any]:
        """What the server measures of itself (``cpu_percent``, ``memory_used_mb``...)."""
        ...

    def failure(self) -> str | None:
        """Why the server cannot serve (dead, OOM-killed), or None."""
        ...

    def healthy(self) -> bool:
        """True when the server runs and answers (may ask its engine: not cheap)."""
        ...

    def dead(self) -> bool:
        """True once the server is known to have died (cheap: no round trip)."""
        ...

    def on_failure(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` when the server fails."""
        ...


class Runtime(Protocol):
    """A place where servers run. Registered by ``name`` in ``runtimes/__init__.py``."""

    name: str

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> Runtime:
        """This runtime, configured. Raises ConfigurationError for options it has no use for."""
        ...

    def check(self, kind: str) -> None:
        """Raise ConfigurationError unless servers of backend ``kind`` run here."""
        ...

    def place(self, request: PlacementRequest) -> Placement:
        """Start or find the server for a new sandbox. Raises SandboxError; nothing is left
        behind when it does (or labels let the reaper find it)."""
        ...

    def stop(self) -> None:
        """Release the servers this runtime started for many sandboxes (shared ones)."""
        ...

    @classmethod
    def reopen(cls, record: Record, root: Path) -> Placement:
        """The placement of a recorded sandbox, from another process: ``AgentSandbox.open``
        and the reaper. A server that is gone gives a placement holding no namespaces."""
        ...

    @classmethod
    def sweep(cls, root: Path, everything: bool) -> list[str]:
        """Remove servers of ``root`` no live record owns (expired, owner dead; every one
        with ``everything``), found by their labels; what went. The reaper calls it."""
        ...


class GivenServer:
    """The placement on a server sqlfence did not start (or no server at all: SQLite).

    Nothing to release, freeze or measure: the server's own health is the backend's to find.
    """

    outlives_process = True

    def __init__(self, admin_url: str | None, managed: bool = False) -> None:
        self.admin_url = admin_url
        self.managed = managed

    def holds_namespaces(self) -> bool:
        """Always: drop the namespace in the server."""
        return True

    def release(self) -> None:
        """The server is not ours."""

    def pause(self, paused: bool) -> bool:
        """Never the whole server."""
        return False

    def metrics(self) -> dict[str, Any]:
        """Nothing measured."""
        return {}

    def failure(self) -> str | None:
        """Not watched."""
        return None

    def healthy(self) -> bool:
        """Not probed: the backend finds out."""
        return True

    def dead(self) -> bool:
        """Not watched."""
        return False

    def on_failure(self, listener: Callable[[str], None]) -> None:
        """Never called."""


def refuse_container_options(name: str, options: RuntimeOptions) -> None:
    """For runtimes without containers: ``placement=`` and ``image=`` have no meaning."""
    if options.placement is not None or options.image is not None:
        raise ConfigurationError(
            f"placement= and image= need a container runtime (docker), not {name!r}"
        )


def drop_namespace(
    placement: Placement, backend: Backend, name: str, clones: Iterable[str]
) -> None:
    """Drop namespace ``name`` and its ``clones`` where they live, then release the server.

    What both ``AgentSandbox.destroy`` and the reaper do: a dedicated server goes whole.
    """
    try:
        if placement.holds_namespaces():
            for clone in clones:
                backend.drop_clone(clone)
            backend.drop(name)
    finally:
        placement.release()
