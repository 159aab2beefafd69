"""One IRIS server administered from Python: SQL through ``iris.dbapi``, system classes
through the Native API, and the security objects that confine a sandbox's user.

Written against the documented interfaces (REFERENCE.md, the ``Security.*``, ``Config.*``
and ``SYS.Database`` class references, the ``iris`` module's own docstrings); run against a
live server only when ``SQLFENCE_IRIS_URL`` is set (tests/sandbox/test_iris_live.py).

Confinement, the IRIS way: a database is readable or writable by a user only through the
resource that protects it. ``CREATE DATABASE`` makes a namespace with two databases (globals
and routines); each gets a resource of its own (``%DB_<name>_DATA`` / ``_CODE``), and the
sandbox's role holds those two and ``%Service_SQL`` and nothing else, so its user can read
no other database. Read-only sandboxes get ``R`` on the data database (the routines database
stays writable, for cached queries on older versions); since SQL privileges take precedence
over resources for SQL access, the backend also grants such a user ``SELECT`` only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import SplitResult, unquote

from sqlfence.errors import SandboxError
from sqlfence.sandbox import naming

SYSTEM_NAMESPACE = "%SYS"
_DESCRIPTION = "sqlfence sandbox {name}"


def resource_names(name: str) -> tuple[str, str]:
    """The resources protecting sandbox ``name``'s globals and routines databases."""
    limit = naming.MAX_LENGTH - len("%DB_")
    return (
        "%DB_" + naming.fit(f"{name}_DATA", limit),
        "%DB_" + naming.fit(f"{name}_CODE", limit),
    )


def role_name(name: str) -> str:
    """The role of sandbox ``name``'s user."""
    return naming.derived(name, "ROLE")


def role_resources(name: str, read_only: bool) -> str:
    """The role's ``Resource:Permissions`` list (``Security.Roles.Create``'s format)."""
    data, code = resource_names(name)
    return f"{data}:{'R' if read_only else 'RW'},{code}:RW,%Service_SQL:U"


def is_ok(status: Any) -> bool:
    """True for an OK ``%Status`` as the Native API returns it (1)."""
    return status in (1, "1", b"1", True)


class IRISServer:
    """Admin sessions to one server: a DB-API connection and a Native API handle in ``%SYS``
    (kept), and short-lived ones to a sandbox namespace. Thread-safe."""

    def __init__(self, parts: SplitResult) -> None:
        self._parts = parts
        self._sql: Any = None
        self._native: Any = None
        self._native_connection: Any = None
        self._lock = threading.RLock()

    # -- sessions --------------------------------------------------------------------

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run ``statement`` in ``%SYS``; the rows it returned (none for DDL)."""
        with self._lock:
            if self._sql is None:
                self._sql = self._dbapi(SYSTEM_NAMESPACE)
            return run(self._sql, statement, params)

    @contextlib.contextmanager
    def namespace_sql(self, namespace: str) -> Iterator[Any]:
        """A DB-API connection to ``namespace`` as the admin user, closed afterwards."""
        connection = self._dbapi(namespace)
        try:
            yield connection
        finally:
            connection.close()

    @contextlib.contextmanager
    def namespace_native(self, namespace: str) -> Iterator[Any]:
        """A Native API handle (``iris.IRIS``) in ``namespace`` as the admin user."""
        import iris

        connection = self._native_connect(namespace)
        try:
            yield iris.createIRIS(connection)
        finally:
            connection.close()

    def call(self, class_name: str, method: str, *args: Any) -> Any:
        """``classMethodValue`` in ``%SYS``."""
        with self._lock:
            return self._system().classMethodValue(class_name, method, *args)

    def check(self, status: Any, what: str) -> None:
        """Raise SandboxError with IRIS's own error text when ``status`` is not OK."""
        if is_ok(status):
            return
        try:
            text = self.call("%SYSTEM.Status", "GetErrorText", status)
        except Exception:  # the explanation is a courtesy; the failure is what matters
            text = repr(status)
        raise SandboxError(f"IRIS: {what} failed: {text}")

    def open(self, class_name: str, object_id: str) -> Any:
        """``%OpenId`` (or ``Open`` for ``Config.*``) in ``%SYS``; SandboxError when absent."""
        opener = "Open" if class_name.startswith("Config.") else "%OpenId"
        with self._lock:
            found = self._system().classMethodObject(class_name, opener, object_id)
        if found is None or found == "":
            raise SandboxError(f"IRIS: no {class_name} {object_id!r}")
        return found

    def save(self, instance: Any, what: str) -> None:
        """``%Save`` an object opened with ``open``."""
        with self._lock:
            self.check(instance.invoke("%Save"), what)

    def close(self) -> None:
        """Close the ``%SYS`` sessions."""
        with self._lock:
            for connection in (self._sql, self._native_connection):
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
            self._sql = self._native = self._native_connection = None

    # -- sandbox access: resources, role and user -------------------------------------

    def grant_access(self, name: str, password: str, read_only: bool) -> None:
        """Protect ``name``'s databases with resources of their own; make its role and user."""
        description = _DESCRIPTION.format(name=name)
        role = role_name(name)
        data, code = resource_names(name)
        globals_dir, routines_dir = self.directories(name)
        for resource, directory in ((data, globals_dir), (code, routines_dir)):
            if not self.call("Security.Resources", "Exists", resource):
                self.check(
                    self.call("Security.Resources", "Create", resource, description),
                    f"creating resource {resource}",
                )
            database = self.open("SYS.Database", directory)
            database.set("ResourceName", resource)
            self.save(database, f"protecting {directory} with {resource}")
        self.check(
            self.call(
                "Security.Roles", "Create", role, description, role_resources(name, read_only), ""
            ),
            f"creating role {role}",
        )
        self.check(
            self.call(
                "Security.Users",
                "Create",
                name,
                role,  # its own role, nothing else
                password,
                description,
                name,  # default namespace
                "",  # routine
                "",  # expiration date
                0,  # change password at next login
                1,  # enabled
                description,
            ),
            f"creating user {name}",
        )

    def revoke_access(self, name: str) -> None:
        """Delete ``name``'s user and role (resources go with ``drop_resources``)."""
        for class_name, item in (("Security.Users", name), ("Security.Roles", role_name(name))):
            if self.call(class_name, "Exists", item):
                self.check(self.call(class_name, "Delete", item), f"deleting {class_name} {item}")

    def drop_resources(self, name: str) -> None:
        """Delete the two database resources of ``name`` (after its databases are gone)."""
        for resource in resource_names(name):
            if self.call("Security.Resources", "Exists", resource):
                self.check(
                    self.call("Security.Resources", "Delete", resource),
                    f"deleting resource {resource}",
                )

    def login_enabled(self, name: str) -> bool:
        """Whether user ``name`` may log in."""
        return bool(int(self.open("Security.Users", name.lower()).get("Enabled") or 0))

    def set_login(self, name: str, enabled: bool) -> None:
        """Enable or disable user ``name``: disabled, IRIS refuses its new connections."""
        user = self.open("Security.Users", name.lower())
        user.set("Enabled", 1 if enabled else 0)
        self.save(user, f"{'enabling' if enabled else 'disabling'} user {name}")

    # -- databases -------------------------------------------------------------------

    def directories(self, namespace: str) -> tuple[str, str]:
        """The directories of ``namespace``'s globals and routines databases."""
        config = self.open("Config.Namespaces", namespace)
        found = []
        for kind in ("Globals", "Routines"):
            database = config.get(kind)
            found.append(str(self.open("Config.Databases", str(database)).get("Directory")))
        return found[0], found[1]

    def size_bytes(self, namespace: str) -> int:
        """The size of ``namespace``'s two databases (``SYS.Database.Size`` is in MB)."""
        total = 0.0
        for directory in dict.fromkeys(self.directories(namespace)):
            total += float(self.open("SYS.Database", directory).get("Size") or 0)
        return int(total * 1024 * 1024)

    def global_names(self, namespace: str) -> list[str]:
        """The globals stored in ``namespace``'s own two databases (system globals included,
        so class definitions and compiled code come along; none of another database)."""
        found: set[str] = set()
        for directory in dict.fromkeys(self.directories(namespace)):
            rows = self.query(
                "SELECT Name FROM %SYS.GlobalQuery_DirectoryList(?, '', '*', 1)", (directory,)
            )
            found.update(str(row[0]) for row in rows)
        return sorted(found)

    def role_read_only(self, name: str) -> bool:
        """Whether sandbox ``name``'s role may only read its data database."""
        resources = str(self.open("Security.Roles", role_name(name).lower()).get("Resources"))
        data, _ = resource_names(name)
        return f"{data}:RW" not in resources.split(",")

    # -- plumbing --------------------------------------------------------------------

    def _system(self) -> Any:
        if self._native is None:
            import iris

            self._native_connection = self._native_connect(SYSTEM_NAMESPACE)
            self._native = iris.createIRIS(self._native_connection)
        return self._native

    def _credentials(self, namespace: str) -> dict[str, Any]:
        parts = self._parts
        return {
            "hostname": parts.hostname,
            "port": parts.port or 1972,
            "namespace": namespace,
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
        }

    def _dbapi(self, namespace: str) -> Any:
        import iris.dbapi

        return iris.dbapi.connect(**self._credentials(namespace))

    def _native_connect(self, namespace: str) -> Any:
        import iris

        return iris.connect(**self._credentials(namespace))


def run(connection: Any, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Execute one statement; its rows, or commit it when it returns none (DDL, GRANT)."""
    cursor = connection.cursor()
    try:
        cursor.execute(statement, params) if params else cursor.execute(statement)
        if cursor.description:
            return list(cursor.fetchall())
        connection.commit()
        return []
    finally:
        cursor.close()
