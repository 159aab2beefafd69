"""InterSystems IRIS: a namespace per sandbox, made with ``CREATE DATABASE`` in ``%SYS``.

Written against the documented interfaces (REFERENCE.md) and not run here: no IRIS server
is reachable in this environment. What it does: create and drop namespaces over plain SQL
through ``iris.dbapi`` (needs ``%Admin_Manage``), list them, and hand out a URL to the
namespace. What it does not do yet: a per-sandbox IRIS user and role (``Security.Users`` /
``Security.Roles`` through the Native API), size, pause, and snapshots (global export and
import); those raise NotSupportedError instead of pretending.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlfence.errors import ConfigurationError, NotSupportedError, SandboxError
from sqlfence.policies.model import Policy
from sqlfence.sandbox import naming
from sqlfence.sandbox.backends.base import Contents, Namespace
from sqlfence.sandbox.limits import Limits

_MISSING = "IRIS sandboxes do not support {what} yet (see sqlfence/sandbox/backends/iris.py)"


class IRISBackend:
    """Namespaces on one IRIS server, managed through an admin URL to ``%SYS``."""

    name = "iris"
    clones = False

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        if parts.scheme != "iris" or not parts.hostname:
            raise ConfigurationError("IRIS server_url looks like iris://_SYSTEM:pw@host:1972/%SYS")
        self.server_url = server_url
        self._parts = parts
        self._admin: Any = None
        self._lock = threading.Lock()

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """``CREATE DATABASE name``: a namespace with its two databases."""
        if not naming.is_valid(name):
            raise SandboxError(f"{name!r} is not a valid IRIS namespace name")
        self._run(f"CREATE DATABASE {name}")
        return Namespace(
            name=name, backend=self.name, url=self._url(name), location=self._url(name, False)
        )

    def drop(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name`` (files included)."""
        if naming.is_valid(name):
            self._run(f"DROP DATABASE IF EXISTS {name}")

    def names(self) -> list[str]:
        """Sandbox namespaces, from ``%SYS.Namespace_List`` (unconfirmed query)."""
        rows = self._query("SELECT Nsp FROM %SYS.Namespace_List()")
        return sorted(str(row[0]) for row in rows if naming.is_sandbox_name(str(row[0])))

    def size_bytes(self, name: str) -> int:
        """Not implemented: would read ``SYS.Database`` ``Size`` via the Native API."""
        raise NotSupportedError(_MISSING.format(what="size_bytes"))

    def set_paused(self, name: str, paused: bool) -> None:
        """The fence refuses statements while paused; the database is not told (yet)."""

    def contents(self, name: str) -> Contents:
        """Not implemented for IRIS."""
        raise NotSupportedError(_MISSING.format(what="snapshots"))

    def export_files(self, name: str, directory: Path) -> list[str]:
        """Not implemented: would be ``%Library.Global.Export`` (server-side files)."""
        raise NotSupportedError(_MISSING.format(what="snapshots"))

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """Not implemented: would be ``%Library.Global.Import``."""
        raise NotSupportedError(_MISSING.format(what="snapshots"))

    def clone(self, name: str, clone: str) -> str:
        """IRIS has no in-server clone path here."""
        raise NotSupportedError(_MISSING.format(what="in-server clones"))

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """IRIS has no in-server clone path here."""
        raise NotSupportedError(_MISSING.format(what="in-server clones"))

    def drop_clone(self, clone: str) -> None:
        """Nothing to drop."""

    def close(self) -> None:
        """Close the admin connection."""
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None

    def _run(self, statement: str) -> None:
        with self._lock:
            cursor = self._connection().cursor()
            try:
                cursor.execute(statement)
            finally:
                cursor.close()

    def _query(self, statement: str) -> list[Any]:
        with self._lock:
            cursor = self._connection().cursor()
            try:
                cursor.execute(statement)
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def _connection(self) -> Any:
        if self._admin is None:
            import iris.dbapi

            parts = self._parts
            self._admin = iris.dbapi.connect(
                hostname=parts.hostname,
                port=parts.port or 1972,
                namespace="%SYS",
                username=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
            )
        return self._admin

    def _url(self, namespace: str, credentials: bool = True) -> str:
        # Until a per-sandbox IRIS user exists, fence connections use the admin user.
        parts = self._parts
        netloc = parts.netloc if credentials else parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, f"/{namespace}", "", ""))
