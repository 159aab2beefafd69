"""InterSystems IRIS: a namespace per sandbox, with a user and role confined to it.

``CREATE DATABASE name`` (in ``%SYS``) makes the namespace and its two databases; each
database gets a resource of its own, and a role holding only those resources and a login
user holding only that role are made for the sandbox (``iris_admin``), so fence connections
never use the admin user and the sandbox's user can open no other database. Read-only
policies get ``SELECT`` only on the sandbox's schemas (and read access only to the data
database, as a further layer; SQL privileges take precedence over database resources for
SQL access, so the grants are what refuse writes). Pause disables the user (new logins
refused). Snapshots are the namespace's globals, walked and loaded through the Native API
(``iris_globals``); a restore decodes the whole file first, then replaces the globals inside
one transaction and purges the namespace's cached queries.

IRIS has no per-user connection limit or statement timeout: the fence enforces
``max_connections`` and the query timeout (``setQueryTimeout``) for this backend. Every
backend of one server in a process shares one admin session (``iris_admin.shared_server``),
since the Community Edition's licence allows about five connections in all.

Written against the documented interfaces (REFERENCE.md and the class references named in
``iris_admin``); no IRIS server is reachable in this environment, so the live tests
(tests/sandbox/test_iris_live.py) run only where ``SQLFENCE_IRIS_URL`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlfence.errors import ConfigurationError, NotSupportedError, SandboxError
from sqlfence.policies.model import Policy
from sqlfence.sandbox import naming
from sqlfence.sandbox.backends import iris_admin, iris_globals
from sqlfence.sandbox.backends.base import Contents, Namespace
from sqlfence.sandbox.backends.iris_admin import run
from sqlfence.sandbox.limits import Limits

logger = logging.getLogger("sqlfence.sandbox")

_USER_SCHEMAS = "NOT (TABLE_SCHEMA %STARTSWITH '%') AND TABLE_SCHEMA <> 'INFORMATION_SCHEMA'"
_TABLES = (
    "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
    f"WHERE TABLE_TYPE = 'BASE TABLE' AND {_USER_SCHEMAS} ORDER BY TABLE_SCHEMA, TABLE_NAME"
)
_SCHEMA = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_DEFAULT "
    f"FROM INFORMATION_SCHEMA.COLUMNS WHERE {_USER_SCHEMAS} "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
)
_NO_CLONES = "IRIS sandboxes have no in-server clones; snapshots are global files"


class IRISBackend:
    """Namespaces on one IRIS server, managed through an admin URL (``%Admin_Manage`` and
    ``%Admin_Secure`` are needed: databases, resources, roles and users)."""

    name = "iris"
    clones = False

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        if parts.scheme != "iris" or not parts.hostname:
            raise ConfigurationError("IRIS server_url looks like iris://_SYSTEM:pw@host:1972/%SYS")
        self.server_url = server_url
        self._parts = parts
        self._server = iris_admin.shared_server(parts)  # one admin session per server
        self._released = False
        self._read_only: dict[str, bool] = {}

    # -- namespaces ------------------------------------------------------------------

    def create(
        self, name: str, limits: Limits, policy: Policy, labels: dict[str, Any]
    ) -> Namespace:
        """``CREATE DATABASE name``, then its resources, role and user (undone on failure)."""
        if not naming.is_valid(name):
            raise SandboxError(f"{name!r} is not a valid IRIS namespace name")
        password = secrets.token_urlsafe(18)
        self._server.query(f"CREATE DATABASE {name}")
        self._read_only[name] = policy.read_only
        try:
            self._server.grant_access(name, password, policy.read_only)
            if not policy.read_only:
                self._sql(name, f"GRANT %DB_OBJECT_DEFINITION TO {name}")
        except BaseException:
            self.drop(name)
            raise
        return Namespace(
            name=name,
            backend=self.name,
            url=self._url(name, name, password),
            location=self._url(name),
            role=name,
        )

    def drop(self, name: str) -> None:
        """Remove the user and role, ``DROP DATABASE IF EXISTS`` (files too), the resources."""
        if not naming.is_valid(name):
            return
        self._server.revoke_access(name)
        self._server.query(f"DROP DATABASE IF EXISTS {name}")
        self._server.drop_resources(name)
        self._read_only.pop(name, None)

    def names(self) -> list[str]:
        """Sandbox namespaces, from ``%SYS.Namespace_List``."""
        rows = self._server.query("SELECT Nsp FROM %SYS.Namespace_List()")
        return sorted(str(row[0]) for row in rows if naming.is_sandbox_name(str(row[0])))

    def size_bytes(self, name: str) -> int:
        """The two databases' ``SYS.Database.Size``."""
        return self._server.size_bytes(name)

    def set_paused(self, name: str, paused: bool) -> None:
        """Disable (or enable again) the sandbox's user: IRIS refuses its new logins."""
        self._server.set_login(name, not paused)

    def contents(self, name: str) -> Contents:
        """Tables with row counts and a SHA-256 of the column definitions."""
        with self._server.namespace_sql(name) as conn:
            cursor = conn.cursor()
            try:
                cursor.execute(_TABLES)
                tables = [(str(s), str(t)) for s, t in cursor.fetchall()]
                counts = {}
                for schema, table in tables:
                    cursor.execute(f"SELECT COUNT(*) FROM {_ident(schema)}.{_ident(table)}")
                    counts[f"{schema}.{table}"] = int(cursor.fetchone()[0])
                cursor.execute(_SCHEMA)
                columns = [tuple(str(value) for value in row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        digest = hashlib.sha256(repr(columns).encode()).hexdigest()
        return Contents(tables=counts, schema_digest=digest)

    # -- snapshots -------------------------------------------------------------------

    def export_files(self, name: str, directory: Path) -> list[str]:
        """Every node of the namespace's own globals, to ``globals.jsonl.gz``."""
        names = self._own_globals(name)
        with self._server.namespace_native(name) as native:
            walked = (node for each in names for node in iris_globals.walk(native, each))
            iris_globals.write_nodes(directory / iris_globals.FILE, walked)
        return [iris_globals.FILE]

    def import_files(self, name: str, directory: Path, files: list[str]) -> None:
        """Replace the namespace's globals with the snapshot's, in one transaction, with the
        sandbox's user locked out meanwhile; then grant it the restored tables."""
        if files != [iris_globals.FILE]:
            raise SandboxError(
                f"not an IRIS snapshot: expected [{iris_globals.FILE!r}], found {files}"
            )
        nodes = iris_globals.read_nodes(directory / iris_globals.FILE)
        enabled = self._server.login_enabled(name)
        self._server.set_login(name, False)
        try:
            present = self._own_globals(name)
            with self._server.namespace_native(name) as native:
                native.tStart()
                try:
                    for global_name in present:
                        native.kill(global_name)
                    iris_globals.load(native, nodes)
                    native.tCommit()
                except BaseException:
                    native.tRollback()
                    raise
                try:  # plans cached for the replaced tables must not be reused
                    native.classMethodValue("%SYSTEM.SQL", "Purge")
                except Exception as error:
                    logger.warning("IRIS: purging cached queries of %s failed: %s", name, error)
            self._grant_tables(name)
        finally:
            if enabled:
                self._server.set_login(name, True)

    def clone(self, name: str, clone: str) -> str:
        """IRIS has no in-server clone path."""
        raise NotSupportedError(_NO_CLONES)

    def restore_clone(self, name: str, clone: str, digest: str) -> None:
        """IRIS has no in-server clone path."""
        raise NotSupportedError(_NO_CLONES)

    def drop_clone(self, clone: str) -> None:
        """Nothing to drop."""

    def close(self) -> None:
        """Give back the shared admin session (closed with its last backend). Idempotent;
        a backend used after ``close`` opens a session again, closed at interpreter exit."""
        if not self._released:
            self._released = True
            iris_admin.release(self._server)

    # -- plumbing --------------------------------------------------------------------

    def _own_globals(self, name: str) -> list[str]:
        """The namespace's globals; SandboxError when none are found although it has tables
        (a snapshot of nothing, or a restore that merges instead of replacing, is refused)."""
        names = self._server.global_names(name)
        if not names and self.contents(name).tables:
            raise SandboxError(
                f"IRIS: no globals listed for namespace {name} although it has tables "
                "(%SYS.GlobalQuery_DirectoryList on its databases returned nothing)"
            )
        return names

    def _grant_tables(self, name: str) -> None:
        """Restored tables belong to whoever made them: grant their schemas to ``name``,
        ``SELECT`` only when the sandbox is read-only (or that cannot be told)."""
        read_only = self._read_only.get(name)
        if read_only is None:
            try:
                read_only = self._server.role_read_only(name)
            except Exception:  # fail closed: a sandbox of unknown mode gets read access
                read_only = True
        privileges = "SELECT" if read_only else "SELECT, INSERT, UPDATE, DELETE"
        for schema in sorted({table.split(".", 1)[0] for table in self.contents(name).tables}):
            self._sql(name, f"GRANT {privileges} ON SCHEMA {_ident(schema)} TO {name}")

    def _sql(self, namespace: str, statement: str) -> None:
        with self._server.namespace_sql(namespace) as conn:
            run(conn, statement)

    def _url(self, namespace: str, user: str | None = None, password: str | None = None) -> str:
        parts = self._parts
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if user is not None:
            netloc = f"{quote(user, safe='')}:{quote(password or '', safe='')}@{netloc}"
        return urlunsplit((parts.scheme, netloc, f"/{namespace}", "", ""))


def _ident(name: str) -> str:
    """A delimited identifier."""
    return '"' + name.replace('"', '""') + '"'
