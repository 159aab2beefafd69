"""What exists, who owns it and when it expires; and the reaper that removes leftovers.

Each sandbox is a row of one SQLite database, ``<root>/registry/records.sqlite`` (WAL mode),
written before its namespace is created and removed after it is dropped, so a fresh process
(``sqlfence sandbox gc``) can find what a crashed one left. Every write is one transaction,
atomic across processes; lookup is by primary key and gc reads only what is expired or owned
by a process that is gone (indexed), so neither grows with the number of sandboxes. The owner
is (host, pid, process start time): a pid that was reused by another process does not keep a
dead owner's sandboxes alive. What a crash may lose without harm (which agent a pooled
sandbox is lent to) is written from a background thread (``put_soon``), off the acquire path.

The database is 0600 (its WAL files take its mode) in a 0700 directory, and records name their
server by address only (no password, see ``credentials``). Older versions kept a JSON file per
sandbox in the same directory: such files are moved into the database whenever the registry
is read, so an upgrade leaks nothing; one written with a password loses it on the way, the
password kept in memory (``recovered``) for that run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlfence.sandbox import credentials, private_files
from sqlfence.sandbox.credentials import CredentialsMissing

REGISTRY_DIR = "registry"
DATABASE = "records.sqlite"
BUSY_TIMEOUT_S = 30.0  # another process's write transaction lasts microseconds
WRITE_BEHIND_S = 0.02  # how often put_soon's writer looks for work


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


# One column per field, so that reading a record decodes no JSON but its labels.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandboxes (
    name TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    tenant TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL,
    location TEXT NOT NULL,
    server TEXT,
    clones TEXT NOT NULL,
    labels TEXT NOT NULL,
    runtime TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sandboxes_by_age ON sandboxes (created_at);
CREATE INDEX IF NOT EXISTS sandboxes_by_expiry ON sandboxes (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS sandboxes_by_owner ON sandboxes (host, pid, started);
"""
_COLUMNS = (
    "name, backend, agent_id, tenant, host, pid, started, created_at, expires_at, location, "
    "server, clones, labels, runtime"
)


DEFAULT_ROOT = Path(".sqlfence")


def resolve_root(root: str | Path | None) -> Path:
    """The absolute sandbox root: ``root``, or ``.sqlfence`` in the working directory."""
    return Path(root if root is not None else DEFAULT_ROOT).resolve()


class Registry:
    """The records of one sandbox root; safe to share between threads and processes.

    ``recovered`` holds, by address, the admin URLs of records that an older version wrote
    with a password, moved into the database (without it) by this object: a reaper uses them.
    Reading a root that has no registry creates nothing.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.directory = self.root / REGISTRY_DIR
        self.path = self.directory / DATABASE
        self.recovered: dict[str, str] = {}
        self._store: _Store | None = None

    def put(self, record: Record) -> None:
        """Add or replace ``record`` (one transaction: other processes see all of it or none)."""
        self._writer().put([record])

    def put_soon(self, record: Record) -> None:
        """Add or replace ``record`` from a background thread, within moments: for changes a
        crash may lose (which agent holds a pooled sandbox), never for what gc needs. Every
        other call of this process on this registry sees it at once."""
        self._writer().put_soon(record)

    def get(self, name: str) -> Record | None:
        """The record of ``name``, or None."""
        store = self._reader()
        record = store.get(name) if store is not None else None
        if record is None and (self.directory / f"{name}.json").is_file():
            self._import_files()  # an older version's process wrote it just now
            record = self._writer().get(name)
        return record

    def remove(self, name: str) -> None:
        """Forget ``name``. No error when it is not recorded."""
        store = self._reader()
        if store is not None:
            store.remove(name)
        with contextlib.suppress(FileNotFoundError):  # an older version's file of it
            (self.directory / f"{name}.json").unlink()

    def records(self) -> list[Record]:
        """Every readable record, oldest first."""
        self._import_files()
        store = self._reader()
        return store.select("1") if store is not None else []

    def doomed(self, now: float | None = None) -> list[Record]:
        """The records that are expired at ``now`` or whose owner is gone, oldest first.

        Reads the distinct owners and, by index, only the records to remove: with nothing to
        remove it costs the same for ten sandboxes or ten thousand.
        """
        self._import_files()
        store = self._reader()
        if store is None:
            return []
        moment = time.time() if now is None else now
        found = {r.name: r for r in store.select("expires_at <= ?", (moment,))}
        for owner in store.owners():
            if not owner.alive():
                where = "host = ? AND pid = ? AND started IS ?"
                found.update(
                    (r.name, r) for r in store.select(where, (owner.host, owner.pid, owner.started))
                )
        return sorted(found.values(), key=lambda r: (r.created_at, r.name))

    def sweep_temporary(self) -> None:
        """Delete half-written record files an older version's writers left (SIGKILL)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(".*.tmp"):
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _reader(self) -> _Store | None:
        """The database, or None where nothing was ever recorded (reading creates nothing)."""
        store = self._store
        if store is not None and store.pid == os.getpid():
            return store
        return self._writer() if self.path.exists() else None

    def _writer(self) -> _Store:
        """The database, made (0600, in a 0700 directory) when it does not exist."""
        store = self._store
        if store is None or store.pid != os.getpid() or store.gone():
            # Also when the root was deleted under a long-running process: start it again.
            self._store = store = _Store.shared(self.root, self.directory, self.path)
        return store

    def _import_files(self) -> None:
        """Move an older version's record files into the database, then delete them."""
        try:
            with os.scandir(self.directory) as entries:
                files = [Path(e.path) for e in entries if e.name.endswith(".json")]
        except (FileNotFoundError, NotADirectoryError):
            return
        if not files:
            return
        records = []
        for path in files:
            try:
                data = json.loads(path.read_text())
                server = data.get("server")
                record = _load(data)
            except (FileNotFoundError, ValueError, TypeError, KeyError):
                continue  # half-written or foreign: left where it is, as before
            if record.server is not None and server != record.server:  # written with a password
                self.recovered[record.server] = server
            records.append((path, record))
        if records:
            # An older version's file is its writer's latest word on that sandbox.
            self._writer().put([record for _, record in records])
        for path, _ in records:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def while_locked(step: Callable[[], object]) -> None:
    """Run ``step`` again while another process holds the database: SQLite answers a journal
    mode change (and the schema of a database two processes make at once) with "database is
    locked" at once, without waiting its busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as error:
            text = str(error)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Store:
    """One process's connection to one registry database, shared by its Registry objects."""

    _open: weakref.WeakValueDictionary[Path, _Store] = weakref.WeakValueDictionary()
    _opening = threading.Lock()
    # A forked child must not use, nor close, its parent's connections (closing one could
    # checkpoint the parent's WAL under it): they are kept here, unused, instead.
    _inherited: list[_Store] = []

    def __init__(self, root: Path, directory: Path, path: Path) -> None:
        private_files.directory(root, tighten=False)
        private_files.directory(directory)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private_files.FILE_MODE)
                os.close(fd)  # 0600 before SQLite opens it: its WAL and shm files copy the mode
        self.pid = os.getpid()
        self.path = path
        self.lock = threading.Lock()  # the connection's, and the order of writes
        self._pending: dict[str, Record] = {}  # put_soon's, by name: only the latest counts
        self._pending_lock = threading.Lock()
        self._behind: threading.Thread | None = None
        self._looked = time.monotonic()
        self.connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        # WAL: readers never wait for a writer; NORMAL: a commit survives a process crash
        # (only a power cut can lose the last ones), and costs no fsync.
        while_locked(lambda: self.connection.execute("PRAGMA journal_mode=WAL"))
        self.connection.execute("PRAGMA synchronous=NORMAL")
        while_locked(lambda: self.connection.executescript(_SCHEMA))

    @classmethod
    def shared(cls, root: Path, directory: Path, path: Path) -> _Store:
        """This process's store of ``path``, opened (or made) when it has none or it is gone."""
        key = path.absolute()
        with cls._opening:
            store = cls._open.get(key)
            if store is not None and store.pid != os.getpid():
                cls._inherited.append(store)
                store = None
            if store is None or not path.exists():
                store = cls._open[key] = cls(root, directory, path)
            return store

    def gone(self) -> bool:
        """True when the database file was deleted (looked at once a second at most: a
        stat on every write would cost more than the write)."""
        now = time.monotonic()
        if now - self._looked < 1.0:
            return False
        self._looked = now
        return not self.path.exists()

    def put(self, records: Iterable[Record]) -> None:
        with self.lock:
            self._flush()
            self._put(list(records))

    def put_soon(self, record: Record) -> None:
        # No wake-up call: on a busy machine, waking a thread from here costs the caller a
        # context switch (milliseconds); the writer looks every WRITE_BEHIND_S instead.
        with self._pending_lock:
            self._pending[record.name] = record
            if self._behind is None:
                self._behind = threading.Thread(
                    target=self._write_behind, name="sqlfence-registry", daemon=True
                )
                self._behind.start()

    def _write_behind(self) -> None:
        idle = 0.0
        while True:
            time.sleep(WRITE_BEHIND_S)
            with self._pending_lock:
                if not self._pending:
                    idle += WRITE_BEHIND_S
                    if idle >= 1.0:
                        self._behind = None  # idle: let the store close with its last user
                        return
                    continue
            idle = 0.0
            with self.lock:
                self._flush()

    def flush(self) -> None:
        """Write what ``put_soon`` left pending, now."""
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        # Called with self.lock held, so pending writes land before any later write.
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if pending:
            self._put(list(pending.values()))

    def _put(self, records: list[Record]) -> None:
        rows = [_row(record) for record in records]
        marks = ", ".join("?" * 14)
        self._write(f"INSERT OR REPLACE INTO sandboxes ({_COLUMNS}) VALUES ({marks})", rows)

    def remove(self, name: str) -> None:
        with self.lock:
            self._flush()
            self._write("DELETE FROM sandboxes WHERE name = ?", [(name,)])

    def _write(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) == 1:
            self.connection.execute(statement, rows[0])  # autocommit: one transaction
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            self.connection.executemany(statement, rows)
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def get(self, name: str) -> Record | None:
        found = self.select("name = ?", (name,))
        return found[0] if found else None

    def select(self, where: str, parameters: tuple[Any, ...] = ()) -> list[Record]:
        with self.lock:
            self._flush()
            rows = self.connection.execute(
                f"SELECT {_COLUMNS} FROM sandboxes WHERE {where} ORDER BY created_at, name",
                parameters,
            ).fetchall()
        # One JSON parse for the labels and clones of every row, not two per row.
        try:
            labels = json.loads("[" + ",".join(row[12] for row in rows) + "]")
            clones = json.loads("[" + ",".join(row[11] for row in rows) + "]")
        except ValueError:  # a damaged row: decode them one by one, skipping it
            return [r for row in rows if (r := _one(row)) is not None]
        owners: dict[tuple[str, int, int | None], Owner] = {}
        return [_record(row, owners, labels[i], clones[i]) for i, row in enumerate(rows)]

    def owners(self) -> list[Owner]:
        with self.lock:
            self._flush()
            rows = self.connection.execute(
                "SELECT DISTINCT host, pid, started FROM sandboxes"
            ).fetchall()
        return [Owner(host, pid, started) for host, pid, started in rows]


@atexit.register
def _flush_at_exit() -> None:
    for store in list(_Store._open.values()):
        if store.pid == os.getpid():
            with contextlib.suppress(Exception):
                store.flush()


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
    for record in registry.records() if everything else registry.doomed(now):
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


def _row(r: Record) -> tuple[Any, ...]:
    owner = r.owner
    labels = json.dumps(r.labels, sort_keys=True)
    return (r.name, r.backend, r.agent_id, r.tenant, owner.host, owner.pid, owner.started,
            r.created_at, r.expires_at, r.location, r.server, json.dumps(list(r.clones)),
            labels, r.runtime)  # fmt: skip


def _record(
    row: tuple[Any, ...],
    owners: dict[tuple[str, int, int | None], Owner],
    labels: dict[str, Any],
    clones: list[str],
) -> Record:
    name, backend, agent_id, tenant, host, pid, started, created_at, expires_at = row[:9]
    location, server, runtime = row[9], row[10], row[13]
    key = (host, pid, started)
    owner = owners.get(key)
    if owner is None:
        owner = owners[key] = Owner(host, pid, started)
    return Record(name, backend, agent_id, tenant, owner, created_at, expires_at, location,
                  server, tuple(clones), labels, runtime)  # fmt: skip


def _one(row: tuple[Any, ...]) -> Record | None:
    try:
        return _record(row, {}, json.loads(row[12]), json.loads(row[11]))
    except ValueError:
        return None


def _load(data: dict[str, Any]) -> Record:
    data["owner"] = Owner(**data["owner"])
    data["clones"] = tuple(data.get("clones", ()))
    return Record(**data)
