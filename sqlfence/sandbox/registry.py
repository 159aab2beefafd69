"""What exists, who owns it and when it expires; and the reaper that removes leftovers.

Each sandbox is a JSON record in ``<root>/registry/<NAME>.json`` written before its namespace
is created and removed after it is dropped, so a fresh process (``sqlfence sandbox gc``) can
find what a crashed one left. The owner is (host, pid, process start time): a pid that was
reused by another process does not keep a dead owner's sandboxes alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REGISTRY_DIR = "registry"


@dataclass(frozen=True)
class Owner:
    """The process that made a sandbox."""

    host: str
    pid: int
    started: int | None  # clock ticks since boot (Linux /proc); None where unknown

    @classmethod
    def current(cls) -> Owner:
        """This process."""
        return cls(socket.gethostname(), os.getpid(), process_start(os.getpid()))

    @classmethod
    def detached(cls) -> Owner:
        """No owning process: only the sandbox's ttl, ``destroy`` or ``gc --all`` end it."""
        return cls(socket.gethostname(), 0, None)

    def alive(self) -> bool:
        """False only when this host can tell the owner is gone (other hosts count as alive)."""
        if self.pid == 0 or self.host != socket.gethostname():
            return True
        if not _pid_alive(self.pid):
            return False
        started = process_start(self.pid)
        return self.started is None or started is None or started == self.started


@dataclass(frozen=True)
class Record:
    """One sandbox as the registry knows it. ``server`` is the admin URL of its server.

    With ``runtime="docker"`` the server is a container found by its labels, not by URL.
    """

    name: str
    backend: str
    agent_id: str
    tenant: str | None
    owner: Owner
    created_at: float
    expires_at: float | None
    location: str
    server: str | None = None
    clones: tuple[str, ...] = ()
    labels: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None  # "docker": the reaper removes its containers too

    def expired(self, now: float | None = None) -> bool:
        """True once the TTL has passed."""
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class Registry:
    """Records under ``<root>/registry/``; every write is atomic (write, then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.directory = self.root / REGISTRY_DIR

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def put(self, record: Record) -> None:
        """Add or replace ``record``. The file is private to the user (it may hold a URL)."""
        # One encode, one write, one rename: a pool re-assigns records on every acquire.
        payload = json.dumps(asdict(record), sort_keys=True).encode()
        temporary = os.path.join(self.directory, f".{record.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        os.replace(temporary, self._path(record.name))

    def get(self, name: str) -> Record | None:
        """The record of ``name``, or None."""
        try:
            return _load(json.loads(self._path(name).read_text()))
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            return None

    def remove(self, name: str) -> None:
        """Forget ``name``. No error when it is not recorded."""
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def sweep_temporary(self) -> None:
        """Delete half-written record files of writers that died mid-write (SIGKILL)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(".*.tmp"):
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def records(self) -> list[Record]:
        """Every readable record, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [self.get(path.stem) for path in self.directory.glob("*.json")]
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at)


Dropper = Callable[[Record], None]


def reap(
    registry: Registry, drop: Dropper, now: float | None = None, everything: bool = False
) -> list[str]:
    """Remove sandboxes that are expired or whose owner is gone; return their names.

    ``drop`` removes one record's namespace, role, clones and files (the sandbox module
    provides it). ``everything`` also removes sandboxes of live owners. A failing drop
    keeps its record so that the next run tries again.
    """
    registry.sweep_temporary()
    removed = []
    for record in registry.records():
        if everything or record.expired(now) or not record.owner.alive():
            try:
                drop(record)
            except Exception:
                continue
            registry.remove(record.name)
            removed.append(record.name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return True


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot, from /proc (None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def _load(data: dict[str, Any]) -> Record:
    data["owner"] = Owner(**data["owner"])
    data["clones"] = tuple(data.get("clones", ()))
    return Record(**data)
