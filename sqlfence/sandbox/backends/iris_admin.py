"""One IRIS server administered from Python: SQL through ``iris.dbapi``, system classes
through the Native API, and the security objects that confine a sandbox's user.

Written against the documented interfaces (REFERENCE.md, docs/iris.md, the ``Security.*``,
``Config.*`` and ``SYS.Database`` class references, the ``iris`` module's own docstrings);
run against a live server only when ``SQLFENCE_IRIS_URL`` is set
(tests/sandbox/test_iris_live.py).

Confinement, the IRIS way: a database is readable or writable by a user only through the
resource that protects it. ``CREATE DATABASE`` makes a namespace with two databases (globals
and routines); each gets a resource of its own (``%DB_<name>_DATA`` / ``_CODE``), and the
sandbox's role holds those two and ``%Service_SQL`` and nothing else, so its user can read
no other database. Read-only sandboxes get ``R`` on the data database (the routines database
stays writable, for cached queries on older versions); since SQL privileges take precedence
over resources for SQL access, the backend also grants such a user ``SELECT`` only. The
role's description records the mode (``... (writable)``), since its resource list cannot be
read back reliably from Python (see ``role_read_only``).

Connections are scarce (the Community Edition's licence gives about five in all), so the
admin side is one pooled session per server and process: one ``iris.dbapi`` connection that
also carries the Native API (``iris.createIRIS`` takes it), moved to whichever namespace the
work at hand needs, shared by every backend of that server (``shared_server``).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from sqlfence import databases
from sqlfence.errors import ConfigurationError, LicenceRefused, SandboxError
from sqlfence.proxy.iris_driver import LICENCE_LIMIT, is_licence_refusal
from sqlfence.sandbox import naming

SYSTEM_NAMESPACE = "%SYS"
_DESCRIPTION = "sqlfence sandbox {name}"
_WRITABLE = "(writable)"
Answer = Literal["ok", "busy", "no"]


def _port(parts: SplitResult) -> int:
    """The superserver port of an IRIS URL: its own, else the profile's (1972)."""
    return parts.port or int(databases.IRIS.default_port or 0)


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


def role_description(name: str, read_only: bool) -> str:
    """The description of sandbox ``name``'s role, which records its mode."""
    return f"{_DESCRIPTION.format(name=name)} {'(read-only)' if read_only else _WRITABLE}"


def described_read_only(description: Any) -> bool:
    """The mode a role description records: only ``(writable)`` is writable, anything else
    (a role made before the mode was recorded, say) reads as read-only (fail closed)."""
    return not str(description or "").rstrip().endswith(_WRITABLE)


def password_statement(user: str, password: str) -> str:
    """``ALTER USER "user" IDENTIFY BY 'password'``, which changes a user's password (one's
    own, or with ``%Admin_Secure`` another's).

    IRIS takes neither name nor password as a parameter, so both are written into the text:
    the name as a delimited identifier (required for a name starting with ``_``), the password
    as a string literal, which may hold any character but its own quote, 3 to 32 of them.
    Raises ConfigurationError for a value that cannot be written so, rather than escape it.
    """
    if not user or any(c == '"' or not c.isprintable() for c in user):
        raise ConfigurationError(f"{user!r} cannot be an IRIS user name here")
    if not 3 <= len(password) <= 32 or any(
        c == "'" or not c.isprintable() or c.isspace() for c in password
    ):
        raise ConfigurationError(
            "an IRIS password must be 3 to 32 printable characters, no spaces and no ' "
            f"({len(password)} given)"
        )
    return f"ALTER USER \"{user}\" IDENTIFY BY '{password}'"


def is_ok(status: Any) -> bool:
    """True for an OK ``%Status`` as the Native API returns it (1)."""
    return status in (1, "1", b"1", True)


def login(
    parts: SplitResult, namespace: str, timeout: float | None = None, tcp: bool = False
) -> Any:
    """A DB-API connection to ``namespace`` with ``parts``' credentials (it carries the Native
    API too); ``timeout`` in seconds (the driver's default is 10), ``tcp`` to forbid shared
    memory. Raises SandboxError naming the licence limit when IRIS refuses for want of a
    licence unit, the driver's own error otherwise."""
    import iris.dbapi

    arguments: dict[str, Any] = {
        "hostname": parts.hostname,
        "port": _port(parts),
        "namespace": namespace,
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }
    if timeout is not None:
        arguments["timeout"] = max(1, math.ceil(timeout))  # the driver takes whole seconds
    if tcp:
        arguments["sharedmemory"] = False
    where = f"{parts.hostname}:{_port(parts)}"
    try:
        return iris.dbapi.connect(**arguments)
    except iris.dbapi.Error as error:
        if is_licence_refusal(error):
            raise LicenceRefused(
                f"{LICENCE_LIMIT}; sqlfence holds {admin_sessions()} admin session(s) in this "
                f"process [{where}: {error}]"
            ) from error
        raise SandboxError(f"IRIS server {where}: cannot log in: {error}") from error
    except (OSError, RuntimeError) as error:  # the driver's socket errors are not DB-API ones
        raise SandboxError(f"IRIS server {where}: cannot log in: {error}") from error


def probe(url: str, timeout: float) -> Answer:
    """Log in to ``url``'s namespace and out again: ``ok``; ``busy`` when the server refused
    for want of a licence unit (it runs, it is full); ``no`` for anything else (nothing
    listening, not IRIS, a wrong password, no answer within ``timeout`` seconds)."""
    parts = urlsplit(url)
    try:
        connection = login(parts, parts.path.lstrip("/") or "USER", timeout, tcp=True)
    except LicenceRefused:
        return "busy"
    except Exception:  # the driver's errors and anything else a half-open socket gives
        return "no"
    with contextlib.suppress(Exception):
        connection.close()
    return "ok"


@dataclass
class _Session:
    namespace: str
    connection: Any  # an iris.dbapi connection
    native: Any  # iris.IRIS over the same connection


class IRISServer:
    """The admin side of one server: a single pooled session (``session``), moved between
    ``%SYS`` and sandbox namespaces as the work needs, never two at once. Thread-safe: one
    piece of admin work at a time."""

    def __init__(self, parts: SplitResult) -> None:
        self._parts = parts
        self._session: _Session | None = None
        self._depth = 0
        self._lock = threading.RLock()

    @property
    def sessions(self) -> int:
        """How many connections the admin side holds to the server now (0 or 1)."""
        return 0 if self._session is None else 1

    # -- sessions --------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, namespace: str) -> Iterator[_Session]:
        """The pooled session, in ``namespace``; held (and locked) for the block.

        Raises RuntimeError when a block asks for another namespace inside a block holding
        one (that would need a second connection). A session a block left with an error is
        closed, so a broken connection is never reused.
        """
        with self._lock:
            current = self._session
            if current is None or current.namespace != namespace:
                if self._depth:
                    raise RuntimeError(
                        f"IRIS admin session held in {current and current.namespace} while "
                        f"{namespace} was asked for: the admin side keeps one connection"
                    )
                self._drop()
                connection = login(self._parts, namespace)
                import iris

                current = self._session = _Session(
                    namespace, connection, iris.createIRIS(connection)
                )
            self._depth += 1
            try:
                yield current
            except BaseException:
                if self._depth == 1:
                    self._drop()
                raise
            finally:
                self._depth -= 1

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run ``statement`` in ``%SYS``; the rows it returned (none for DDL)."""
        with self.session(SYSTEM_NAMESPACE) as held:
            return run(held.connection, statement, params)

    @contextlib.contextmanager
    def namespace_sql(self, namespace: str) -> Iterator[Any]:
        """The admin session's DB-API connection, in ``namespace``."""
        with self.session(namespace) as held:
            yield held.connection

    @contextlib.contextmanager
    def namespace_native(self, namespace: str) -> Iterator[Any]:
        """The admin session's Native API handle (``iris.IRIS``), in ``namespace``."""
        with self.session(namespace) as held:
            yield held.native

    def call(self, class_name: str, method: str, *args: Any) -> Any:
        """``classMethodValue`` in ``%SYS``."""
        with self.session(SYSTEM_NAMESPACE) as held:
            return held.native.classMethodValue(class_name, method, *args)

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
        """``%OpenId`` (or ``Open`` for ``Config.*``) in ``%SYS``; SandboxError when absent.
        The object lives in the session: use it inside the caller's ``session`` block."""
        opener = "Open" if class_name.startswith("Config.") else "%OpenId"
        with self.session(SYSTEM_NAMESPACE) as held:
            found = held.native.classMethodObject(class_name, opener, object_id)
        if found is None or found == "":
            raise SandboxError(f"IRIS: no {class_name} {object_id!r}")
        return found

    def save(self, instance: Any, what: str) -> None:
        """``%Save`` an object opened with ``open``."""
        with self.session(SYSTEM_NAMESPACE):
            self.check(instance.invoke("%Save"), what)

    def class_query(self, class_name: str, query: str, column: str, *args: Any) -> list[str]:
        """Column ``column`` of class query ``class_name:query(args)`` run in ``%SYS``
        through ``%SQL.Statement`` (a class query need not be an SQL procedure, and the
        arguments arrive as the values given, ``""`` included)."""
        with self.session(SYSTEM_NAMESPACE) as held:
            statement = held.native.classMethodObject("%SQL.Statement", "%New")
            what = f"preparing {class_name}:{query}"
            self.check(statement.invoke("%PrepareClassQuery", class_name, query), what)
            result = statement.invoke("%Execute", *args)
            sqlcode = result.get("%SQLCODE")
            if sqlcode not in (None, "") and int(sqlcode) < 0:
                raise SandboxError(
                    f"IRIS: {class_name}:{query}{args!r} failed: SQLCODE {sqlcode} "
                    f"{result.get('%Message')}"
                )
            values = []
            while result.invoke("%Next"):
                values.append(str(result.invoke("%Get", column)))
            return values

    def close(self) -> None:
        """Close the session (a later call opens a new one)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        held, self._session = self._session, None
        if held is not None:
            with contextlib.suppress(Exception):
                held.connection.close()

    # -- sandbox access: resources, role and user -------------------------------------

    def grant_access(self, name: str, password: str, read_only: bool) -> None:
        """Protect ``name``'s databases with resources of their own; make its role and user."""
        with self.session(SYSTEM_NAMESPACE):
            self._grant_access(name, password, read_only)

    def _grant_access(self, name: str, password: str, read_only: bool) -> None:
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
                "Security.Roles",
                "Create",
                role,
                role_description(name, read_only),
                role_resources(name, read_only),
                "",
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

    def set_password(self, user: str, password: str) -> None:
        """Change ``user``'s password (``password_statement``, run in ``%SYS``)."""
        self.query(password_statement(user, password))

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
        with self.session(SYSTEM_NAMESPACE):
            return bool(int(self.open("Security.Users", name.lower()).get("Enabled") or 0))

    def set_login(self, name: str, enabled: bool) -> None:
        """Enable or disable user ``name``: disabled, IRIS refuses its new connections."""
        with self.session(SYSTEM_NAMESPACE):
            user = self.open("Security.Users", name.lower())
            user.set("Enabled", 1 if enabled else 0)
            self.save(user, f"{'enabling' if enabled else 'disabling'} user {name}")

    # -- databases -------------------------------------------------------------------

    def directories(self, namespace: str) -> tuple[str, str]:
        """The directories of ``namespace``'s globals and routines databases."""
        with self.session(SYSTEM_NAMESPACE):
            config = self.open("Config.Namespaces", namespace)
            found = []
            for kind in ("Globals", "Routines"):
                database = config.get(kind)
                found.append(str(self.open("Config.Databases", str(database)).get("Directory")))
        return found[0], found[1]

    def size_bytes(self, namespace: str) -> int:
        """The size of ``namespace``'s two databases (``SYS.Database.Size`` is in MB)."""
        total = 0.0
        with self.session(SYSTEM_NAMESPACE):
            for directory in dict.fromkeys(self.directories(namespace)):
                total += float(self.open("SYS.Database", directory).get("Size") or 0)
        return int(total * 1024 * 1024)

    def global_names(self, namespace: str) -> list[str]:
        """The globals stored in ``namespace``'s own two databases (system globals included,
        so class definitions and compiled code come along; none of another database)."""
        found: set[str] = set()
        with self.session(SYSTEM_NAMESPACE):
            for directory in dict.fromkeys(self.directories(namespace)):
                # DirectoryList(Directory, System, Mask, SystemGlobals): this server, every
                # name, system globals too
                names = self.class_query(
                    "%SYS.GlobalQuery", "DirectoryList", "Name", directory, "", "*", 1
                )
                found.update(names)
        return sorted(found)

    def role_read_only(self, name: str) -> bool:
        """Whether sandbox ``name``'s role may only read its data database, as its
        description records (``Resources`` is not a string property to read back from
        Python, and ``Security.Roles.Get`` fills a local array Python cannot pass)."""
        with self.session(SYSTEM_NAMESPACE):
            role = self.open("Security.Roles", role_name(name).lower())
            return described_read_only(role.get("Description"))


_shared: dict[tuple[str, int, str, str], list[Any]] = {}  # key -> [server, users]
_shared_lock = threading.Lock()


def shared_server(parts: SplitResult) -> IRISServer:
    """This process's admin side for the server and login in ``parts`` (any path), made on
    first use; give it back with ``release``."""
    key = (
        str(parts.hostname),
        _port(parts),
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            if not _shared:
                atexit.register(close_shared)
            entry = _shared[key] = [IRISServer(parts), 0]
        entry[1] += 1
        server: IRISServer = entry[0]
        return server


def release(server: IRISServer) -> None:
    """One user fewer of ``server``; the last one's release closes its session."""
    with _shared_lock:
        for entry in _shared.values():
            if entry[0] is server:
                entry[1] = max(0, entry[1] - 1)
                if entry[1]:
                    return
    server.close()


def admin_sessions() -> int:
    """How many admin connections this process holds to IRIS servers (one per server at most)."""
    with _shared_lock:
        servers = [entry[0] for entry in _shared.values()]
    return sum(server.sessions for server in servers)


def close_shared() -> None:
    """Close every shared server's session (at interpreter exit)."""
    with _shared_lock:
        servers = [entry[0] for entry in _shared.values()]
    for server in servers:
        server.close()


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
