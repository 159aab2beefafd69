"""What exists, who owns it and when it expires; and the reaper that removes leftovers.

Each sandbox is a JSON record in ``<root>/registry/<NAME>.json`` written before its namespace
is created and removed after it is dropped, so a fresh process (``sqlfence sandbox gc``) can
find what a crashed one left. The owner is (host, pid, process start time): a pid that was
reused by another process does not keep a dead owner's sandboxes alive.

Records are 0600 files in a 0700 directory and name their server by address only (no
password, see ``credentials``); a record an older version wrote with a password in it is
rewritten without it the first time it is read, the password kept in memory for that run.
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

from sqlfence.sandbox import credentials, private_files
from sqlfence.sandbox.credentials import CredentialsMissing

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
    """One sandbox as the registry knows it. ``server`` is its server's address: the admin URL
    without a password (one given is taken out, so no record holds a secret).

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

    def __post_init__(self) -> None:
        if self.server is not None:
            object.__setattr__(self, "server", credentials.address(self.server))

    def expired(self, now: float | None = None) -> bool:
        """True once the TTL has passed."""
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class Registry:
    """Records under ``<root>/registry/``; every write is atomic (write, then rename).

    ``recovered`` holds, by address, the admin URLs of records that an older version wrote
    with a password, read (and rewritten without it) by this object: a reaper uses them.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.directory = self.root / REGISTRY_DIR
        self.recovered: dict[str, str] = {}
        self._private = False

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def put(self, record: Record) -> None:
        """Add or replace ``record`` as a 0600 file in the 0700 registry directory."""
        if not self._private:
            private_files.directory(self.root, tighten=False)
            private_files.directory(self.directory)
            self._private = True
        # One encode, one write, one rename: a pool re-assigns records on every acquire.
        payload = json.dumps(asdict(record), sort_keys=True).encode()
        temporary = self.directory / f".{record.name}.{os.getpid()}.tmp"
        private_files.write(temporary, payload)
        os.replace(temporary, self._path(record.name))

    def get(self, name: str) -> Record | None:
        """The record of ``name``, or None."""
        try:
            data = json.loads(self._path(name).read_text())
            server = data.get("server")
            record = _load(data)
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            return None
        if record.server is not None and server != record.server:  # written with a password
            self.recovered[record.server] = server
            with contextlib.suppress(OSError):
                self.put(record)
        return record

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
    keeps its record so that the next run tries again. Raises CredentialsMissing, once
    every record was tried, when some could not be dropped for want of an admin password
    (its ``removed`` lists what went anyway).
    """
    registry.sweep_temporary()
    removed = []
    lacking: dict[str, tuple[CredentialsMissing, list[str]]] = {}
    for record in registry.records():
        if everything or record.expired(now) or not record.owner.alive():
            try:
                drop(record)
            except CredentialsMissing as error:
                lacking.setdefault(str(error), (error, []))[1].append(record.name)
                continue
            except Exception:
                continue
            registry.remove(record.name)
            removed.append(record.name)
    if lacking:
        kept = sum(len(names) for _, names in lacking.values())
        raise CredentialsMissing(
            f"{kept} sandbox(es) kept for the next run: "
            + "; ".join(f"{error} ({', '.join(names)})" for error, names in lacking.values()),
            servers=tuple(server for error, _ in lacking.values() for server in error.servers),
            removed=removed,
        )
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
