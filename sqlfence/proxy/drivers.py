"""The driver registry: URL scheme -> DBAPI module, sqlglot dialect, and session hardening.

Hardening is the second layer, applied by the proxy and never by the agent: the database
itself refuses what the policy forbids wherever it can (read-only sessions, statement
timeouts, SQLite's authorizer).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlfence import databases, errors
from sqlfence.databases import DatabaseProfile
from sqlfence.errors import ConfigurationError
from sqlfence.observe.observer import Session
from sqlfence.policies.engine import Decision, Guard
from sqlfence.policies.server_code import ServerCode

# Most specific first: a driver's IntegrityError is also its DatabaseError.
_PEP249_NAMES = (
    "IntegrityError",
    "DataError",
    "OperationalError",
    "ProgrammingError",
    "NotSupportedError",
    "InternalError",
    "DatabaseError",
    "InterfaceError",
    "Error",
)
_KEPT_ATTRIBUTES = ("sqlstate", "pgcode", "sqlite_errorcode", "sqlite_errorname", "sqlcode")


@dataclass(frozen=True)
class ConnectionURL:
    """A parsed ``scheme://user:password@host:port/database?options`` URL."""

    scheme: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> ConnectionURL:
        """Split a URL; raises ConfigurationError when it is not one."""
        if "://" not in url:
            raise ConfigurationError(
                f"not a database URL: {url!r} (expected e.g. sqlite:///path.db, "
                "postgresql://user@host/db, iris://user:pw@host:1972/USER)"
            )
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"bad port in URL {_redact(url)!r}") from None
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            scheme=parts.scheme.lower(),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=port,
            database=unquote(path),
            options=dict(parse_qsl(parts.query)),
        )


class Driver:
    """One database family. Subclasses name their ``database`` profile and say how to
    connect and how to harden a session; a Driver without a profile is a generic one."""

    database: DatabaseProfile | None = None
    # What the profile says, or a generic driver's
    name = "generic"
    schemes: tuple[str, ...] = ()
    module_name = ""
    extra: str | None = None
    dialect = ""
    system = "other_sql"
    default_schema: str | None = None

    @property
    def paramstyle(self) -> str:
        """The DBAPI module's placeholder style (PEP 249); the profile's, else ``qmark``,
        when the module does not say."""
        default = self.database.paramstyle if self.database is not None else "qmark"
        return str(getattr(self.module, "paramstyle", None) or default)

    def __init__(self) -> None:
        database = self.database
        if database is not None:
            self.name = database.name
            self.schemes = database.url_schemes
            self.module_name = database.driver_module
            self.extra = database.pip_extra
            self.dialect = database.dialect
            self.system = database.system
            self.default_schema = database.default_schema
        self._module: ModuleType | None = None
        self._errors: tuple[tuple[type[BaseException], type[errors.Error]], ...] = ()

    @property
    def module(self) -> ModuleType:
        """The DBAPI module, imported on first use; a missing one names the pip extra."""
        if self._module is None:
            try:
                module = importlib.import_module(self.module_name)
            except ImportError as error:
                hint = f"pip install 'sqlfence[{self.extra}]'" if self.extra else "install it"
                raise ConfigurationError(
                    f"the {self.name} driver ({self.module_name}) is not installed: {hint}"
                ) from error
            self.use_module(module)
        assert self._module is not None
        return self._module

    def use_module(self, module: ModuleType) -> None:
        """Adopt ``module`` as this driver's DBAPI module and learn its exception classes."""
        self._module = module
        pairs = []
        for name in _PEP249_NAMES:
            theirs = getattr(module, name, None)
            if isinstance(theirs, type) and issubclass(theirs, BaseException):
                pairs.append((theirs, getattr(errors, name)))
        self._errors = tuple(pairs)

    @property
    def error_class(self) -> type[BaseException]:
        """The driver's base exception class (what the cursor catches)."""
        error: type[BaseException] = getattr(self.module, "Error", Exception)
        return error

    def translate(self, error: BaseException) -> errors.Error:
        """The sqlfence PEP 249 error for a driver error, keeping codes such as SQLSTATE."""
        ours = next(
            (cls for theirs, cls in self._errors if isinstance(error, theirs)),
            errors.OperationalError,
        )
        translated = ours(self.describe(error))
        for attribute in _KEPT_ATTRIBUTES:
            value = getattr(error, attribute, None)
            if value is not None:
                setattr(translated, attribute, value)
        return translated

    def describe(self, error: BaseException) -> str:
        """The message of a driver error as sqlfence shows it."""
        return str(error) or type(error).__name__

    def cancel(self, raw: Any) -> None:
        """Stop the statement running on ``raw`` (called from another thread)."""
        raise errors.NotSupportedError(
            f"the {self.name} driver cannot cancel a running statement from another thread"
        )

    def was_cancelled(self, error: BaseException) -> bool:
        """True when ``error`` is how the driver reports a statement ``cancel`` stopped."""
        return False

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        """Open a raw connection (session options that harden it may be applied here)."""
        raise ConfigurationError(f"sqlfence cannot open {self.name} URLs; use sqlfence.wrap()")

    def harden(self, raw: Any, guard: Guard, opened: bool) -> Callable[[Decision], None] | None:
        """Apply the policy's second layer; ``opened`` is False for a ``wrap``ped connection.

        Returns a hook to call before each statement (SQLite arms its deadline), or None.
        """
        return None

    def reading_catalog(self, raw: Any, hook: Any) -> contextlib.AbstractContextManager[None]:
        """Around the fence's own catalog queries in the middle of a session (``hook`` is
        ``harden``'s): the agent's transaction, if one is open, is left as it was."""
        return contextlib.nullcontext()

    def adopt(self, hook: Any, guard: Guard) -> None:
        """The connection's guard is now ``guard`` (its catalog learnt again): what
        ``harden`` armed judges by it from now on."""

    def load_catalog(self, raw: Any) -> dict[str, str]:
        """Reference columns -> referenced tables, for dialects with implicit joins (IRIS)."""
        return {}

    def load_views(self, raw: Any) -> dict[str, set[str]]:
        """Qualified relation -> the tables and views it reads directly (the database's
        catalog: views, rules, inheritance children)."""
        return {}

    def load_view_columns(self, raw: Any) -> dict[str, set[tuple[str, str]]]:
        """Qualified view -> the (table, column) pairs it reads directly."""
        return {}

    def load_parts(self, raw: Any) -> dict[str, str]:
        """Qualified table holding another table's rows -> that table: a partition or an
        inheritance child -> its parent, a virtual table's shadow table -> the virtual table."""
        return {}

    def replacing_tables(self, raw: Any) -> set[str]:
        """Qualified tables whose own definition replaces a conflicting row on write (SQLite's
        ``ON CONFLICT REPLACE``): a row filter cannot hold there."""
        return set()

    def load_table_columns(self, raw: Any) -> dict[str, set[str]]:
        """Qualified table or view -> its columns (what ``*`` reads there)."""
        return {}

    def load_star_columns(self, raw: Any) -> dict[str, list[str]]:
        """Qualified table or view -> the columns ``SELECT *`` returns, in order, as the
        catalog names them (for masked columns: the derived table lists them)."""
        return {}

    def load_server_code(self, raw: Any, reaches: Mapping[str, Collection[str]]) -> ServerCode:
        """The database's own code (functions outside the system schemas, whose bodies may
        read any table) and every path into it; ``reaches`` maps each view to the relations
        a read of it reads (``load_views``)."""
        return ServerCode()

    def load_references(self, raw: Any) -> dict[str, set[tuple[str, str | None]]]:
        """Qualified table -> (referenced table, referenced column) of each of its foreign
        keys' columns (None: the referenced table's primary key, not named)."""
        return {}

    def load_placing_columns(self, raw: Any) -> dict[str, set[str]]:
        """Qualified table -> the columns whose values decide where it keeps a row, and so
        the order a scan returns rows in, or which part a row is read from: a partition key,
        an inheritance child's CHECK, a clustered primary key (a masked one would tell)."""
        return {}

    def load_generated_columns(self, raw: Any) -> dict[str, dict[str, set[str]]]:
        """Qualified table -> generated column -> the columns of the table it is computed
        from (reading it reads them)."""
        return {}

    def pin_schema(self, raw: Any) -> str | None:
        """Make the session resolve unqualified names in one schema; returns it (or None
        when the dialect's default holds)."""
        return None

    def open_cursor(self, raw: Any) -> Any:
        """A driver cursor for the fence (PostgreSQL: one that sends one statement a call)."""
        return raw.cursor()

    def prepare_cursor(self, cursor: Any, guard: Guard) -> None:
        """Per-cursor hardening (IRIS query timeouts)."""

    def privileges(self, raw: Any) -> tuple[str, ...]:
        """What the login may do beyond SQL (superuser, running programs, server files)."""
        return ()

    def session(self, url: ConnectionURL | None, raw: Any) -> Session:
        """The correlation fields for events of this connection."""
        if url is None:
            return Session(system=self.system)
        return Session(
            system=self.system,
            namespace=url.database or None,
            server_address=url.host,
            server_port=url.port,
        )


_REGISTRY: dict[str, Driver] = {}
_BY_DIALECT: dict[str, Driver] = {}


def register(driver: Driver) -> Driver:
    """Make ``driver`` reachable by its URL schemes and dialect name."""
    for scheme in driver.schemes:
        _REGISTRY[scheme] = driver
    if driver.dialect:
        _BY_DIALECT.setdefault(driver.dialect, driver)
    _BY_DIALECT.setdefault(driver.name, driver)
    return driver


def for_url(url: ConnectionURL) -> Driver:
    """The driver for a URL's scheme; ConfigurationError names the known schemes."""
    _load_builtin()
    driver = _REGISTRY.get(url.scheme)
    if driver is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown URL scheme {url.scheme!r} (known: {known})")
    return driver


def for_dialect(dialect: str) -> Driver:
    """The driver profile for a dialect name (``sqlite``, ``postgres``, ``iris``...)."""
    _load_builtin()
    database = databases.find(dialect)
    name = database.dialect if database is not None else dialect
    driver = _BY_DIALECT.get(name)
    if driver is not None:
        return driver
    generic = Driver()
    generic.dialect = name
    return generic


def _load_builtin() -> None:
    if not _REGISTRY:
        from sqlfence.proxy import iris_driver, postgres_driver, sqlite_driver

        for module in (sqlite_driver, postgres_driver, iris_driver):
            register(module.DRIVER)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
