"""SQLite: a database file per namespace in a sandbox directory. The embedded default.

There is no server and no role: isolation is the file, and the fence's own engine-side
checks (authorizer, ``query_only``) are the second layer. Snapshots are files written with
SQLite's online backup API, so they are consistent while agents are connected. Database
files are made 0600 before SQLite opens them (its journals take the database's mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from sqlfence.errors import NotSupportedError, SandboxError
from sqlfence.policies.model import Policy
from sqlfence.sandbox import naming, private_files
from sqlfence.sandbox.backends.base import Contents, Namespace
from sqlfence.sandbox.limits import Limits

SUFFIX = ".sqlite"
DATA_FILE = "data.sqlite"
_SIDE_FILES = ("-journal", "-wal", "-shm")


class SQLiteBackend:
    """Namespaces are ``<directory>/<NAME>.sqlite``."""

    name = "sqlite"
    clones = False

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).resolve()

    def path(self, name: str) -> Path:
        """The database file of namespace ``name``."""
        return self.directory / f"{name}{SUFFIX}"

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """Create an empty database file. Raises SandboxError when it already exists.

        The file auto-vacuums: DELETE and DROP give its pages back, so an agent over its disk
        quota can get under it again (the quota measures the file).
        """
        private_files.directory(self.directory)
        path = self.path(name)
        try:
            path.touch(mode=0o600, exist_ok=False)
        except FileExistsError as error:
            raise SandboxError(f"sandbox namespace {name} already exists at {path}") from error
        with contextlib.closing(sqlite3.connect(path)) as database:
            database.execute("PRAGMA auto_vacuum = FULL")
            database.execute("VACUUM")  # writes the header, with the setting, before any table
        return Namespace(name=name, backend=self.name, url=f"sqlite:///{path}", location=str(path))

    def drop(self, name: str) -> None:
        """Delete the file and its journals."""
        path = self.path(name)
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()

    def names(self) -> list[str]:
        """Sandbox database files in the directory."""
        if not self.directory.is_dir():
            return []
        return sorted(
            path.name[: -len(SUFFIX)]
            for path in self.directory.glob(f"*{SUFFIX}")
            if naming.is_sandbox_name(path.name)
        )

    def size_bytes(self, name: str) -> int:
        """The file plus its journal or write-ahead log."""
        path = self.path(name)
        total = 0
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{path}{suffix}").stat().st_size
        return total

    def set_paused(self, name: str, paused: bool) -> None:
        """Nothing to do: the fence is the only way in, and it refuses while paused."""

    def contents(self, name: str) -> Contents:
        """Tables with row counts and a SHA-256 of the schema's SQL."""
        return _contents(self.path(name))

    def export_files(self, name: str, directory: Path) -> list[str]:
        """One consistent copy of the database, made with the online backup API."""
        self._require(name)
        target_path = private_files.reserve(directory / DATA_FILE)
        with _open(self.path(name)) as source, _open(target_path) as target:
            source.backup(target)
        return [DATA_FILE]

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """Copy the snapshot's database over the live one, page by page, in one transaction."""
        self._require(name)
        if files != [DATA_FILE]:
            raise SandboxError(f"not a SQLite snapshot: expected [{DATA_FILE!r}], found {files}")
        with _open(directory / DATA_FILE) as source, _open(self.path(name)) as target:
            source.backup(target)

    def clone(self, name: str, clone: str) -> str:
        """SQLite snapshots are files; there is no in-server clone."""
        raise NotSupportedError("SQLite has no in-server clones; snapshots are files")

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """SQLite snapshots are files; there is no in-server clone."""
        raise NotSupportedError("SQLite has no in-server clones; snapshots are files")

    def drop_clone(self, clone: str) -> None:
        """Nothing to drop."""

    def close(self) -> None:
        """No connections are kept."""

    def _require(self, name: str) -> None:
        if not self.path(name).exists():
            raise SandboxError(f"sandbox namespace {name} does not exist ({self.path(name)})")


@contextlib.contextmanager
def _open(path: Path) -> Any:
    connection = sqlite3.connect(path)
    try:
        yield connection
    finally:
        connection.close()


def _contents(path: Path) -> Contents:
    with _open(path) as connection:
        rows = connection.execute(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = {
            name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for kind, name, _ in rows
            if kind == "table" and not name.startswith("sqlite_")
        }
    digest = hashlib.sha256("\n".join(sql for _, _, sql in rows).encode()).hexdigest()
    return Contents(tables=tables, schema_digest=digest)
