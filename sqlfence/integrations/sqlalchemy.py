"""SQLAlchemy dialects through the fence: ``sqlfence+sqlite://``, ``+postgresql://``, ``+iris://``.

Each is SQLAlchemy's own dialect (pysqlite, psycopg, sqlalchemy-iris) whose connections are
sqlfence ``GuardedConnection``s, so Core and ORM statements are judged, row-limited and
audited like any other. The fence's options (``FENCE_OPTIONS``, those ``wrap()`` takes:
``policy`` as a path, YAML text, a mapping or a ``Policy``, ``agent_id``, ``tenant``,
``audit`` ...) come from ``connect_args`` or URL query parameters; the rest go to the driver.

Two kinds of SQL reach the database and they take different paths:

* the application's statements (Core, ORM, ``text()``) always go through the fence;
* SQLAlchemy's own fixed SQL (connection initialisation, ping, isolation-level probes and
  the Inspector's reflection queries) runs on the driver connection underneath, because it
  is written by SQLAlchemy, not by the agent, and several of its statements (``SHOW``,
  ``PRAGMA``, ``;``) are ones a policy rightly refuses. Reflection is still bound by the
  policy: a table the policy does not let the agent read does not exist for the Inspector
  (absent from ``get_table_names``, ``has_table`` is False, ``get_columns`` raises
  ``NoSuchTableError``), and denied columns are left out of ``get_columns``.

A denial raises ``sqlalchemy.exc.ProgrammingError`` whose ``orig`` is the ``PolicyViolation``.
"""

from __future__ import annotations

import functools
import sqlite3
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.engine.default import DefaultDialect

from sqlfence import errors
from sqlfence.errors import ConfigurationError, DefaultPolicyWarning, NotSupportedError
from sqlfence.integrations.mcp_catalog import column_denied, visible
from sqlfence.policies.engine import Guard
from sqlfence.policies.loader import load_policy
from sqlfence.policies.model import Policy
from sqlfence.proxy.connect import DEFAULT_POLICY_WARNING, wrap
from sqlfence.proxy.connection import GuardedConnection
from sqlfence.proxy.options import (  # re-exported: the names it took before
    FENCE_OPTIONS as FENCE_OPTIONS,  # noqa: PLC0414
)

IRIS_EXTRA = "sqlalchemy-iris"

_EXCEPTIONS = (
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
)
# Reflection methods that name one table: refused (NoSuchTableError) for a hidden table.
_ONE_TABLE = (
    "get_columns",
    "get_pk_constraint",
    "get_foreign_keys",
    "get_indexes",
    "get_unique_constraints",
    "get_check_constraints",
    "get_table_comment",
    "get_table_options",
    "get_view_definition",
)
# Reflection methods that list tables or views: hidden ones are left out.
_NAME_LISTS = (
    "get_table_names",
    "get_view_names",
    "get_materialized_view_names",
    "get_temp_table_names",
    "get_temp_view_names",
)
# Reflection methods over many tables at once (MetaData.reflect): hidden keys are left out.
_MULTI = (
    "get_multi_columns",
    "get_multi_pk_constraint",
    "get_multi_foreign_keys",
    "get_multi_indexes",
    "get_multi_unique_constraints",
    "get_multi_check_constraints",
    "get_multi_table_comment",
    "get_multi_table_options",
)
# SQLAlchemy's own probes that take a DBAPI connection: they get the driver connection.
_DRIVER_PROBES = (
    "do_ping",
    "get_isolation_level",
    "set_isolation_level",
    "get_default_isolation_level",
    "detect_autocommit_setting",
    "get_readonly",
    "set_readonly",
    "get_deferrable",
    "set_deferrable",
)


class FencedDBAPI(types.ModuleType):
    """The DBAPI module SQLAlchemy sees: sqlfence's exception classes over the driver's module.

    SQLAlchemy wraps an exception only when it is the module's ``Error``; the fence raises
    ``sqlfence.Error`` subclasses (a ``PolicyViolation`` is a ``ProgrammingError``), so those
    are the classes exposed here. Everything else (type objects, ``paramstyle``, the driver's
    extras) is the driver module's own.
    """

    def __init__(self, driver_module: types.ModuleType) -> None:
        super().__init__(f"sqlfence[{driver_module.__name__}]")
        self.driver_module = driver_module
        self.paramstyle = getattr(driver_module, "paramstyle", "qmark")
        for name in _EXCEPTIONS:
            setattr(self, name, getattr(errors, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver_module, name)


class FencedConnection:
    """What SQLAlchemy's pool holds: a ``GuardedConnection``, and the driver connection
    beneath it for SQLAlchemy's own initialisation, ping and reflection SQL.

    ``cursor()`` is guarded except inside ``trusted()``, which only the dialect enters.
    """

    def __init__(self, guarded: GuardedConnection, raw: Any) -> None:
        self.guarded = guarded
        self.driver_connection = raw
        self._trusted = 0

    @property
    def guard(self) -> Guard:
        """The guard judging this connection's statements."""
        return self.guarded.guard

    @contextmanager
    def trusted(self) -> Iterator[Any]:
        """Let the dialect's own SQL through to the driver connection for a moment."""
        unguarded = getattr(self.driver_connection, "unguarded", None)
        self._trusted += 1
        try:
            if unguarded is not None and self._trusted == 1:
                with unguarded():
                    yield self.driver_connection
            else:
                yield self.driver_connection
        finally:
            self._trusted -= 1

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """A guarded cursor (the driver's own cursor only inside ``trusted()``)."""
        if self._trusted:
            return self.driver_connection.cursor(*args, **kwargs)
        if args or kwargs:
            raise NotSupportedError(
                "named (server-side) cursors do not go through the fence; "
                "drop stream_results / yield_per for this engine"
            )
        return self.guarded.cursor()

    def commit(self) -> None:
        """Commit the current transaction."""
        self.guarded.commit()

    def rollback(self) -> None:
        """Roll back the current transaction."""
        self.guarded.rollback()

    def close(self) -> None:
        """Close the fence connection (and so the driver connection)."""
        self.guarded.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.guarded.closed

    @property
    def autocommit(self) -> bool:
        """The driver's autocommit mode."""
        return self.guarded.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.guarded.autocommit = value

    def __repr__(self) -> str:
        return f"<sqlfence.integrations.sqlalchemy.FencedConnection {self.guarded!r}>"


class _SQLiteDriverConnection(sqlite3.Connection):
    """sqlite3's connection, remembering the fence's authorizer so that the dialect's own
    ``PRAGMA`` and ``sqlite_master`` reads can run for a moment without it."""

    _fence_authorizer: Any = None

    def set_authorizer(self, authorizer_callback: Any, /) -> None:
        self._fence_authorizer = authorizer_callback
        super().set_authorizer(authorizer_callback)

    @contextmanager
    def unguarded(self) -> Iterator[None]:
        super().set_authorizer(None)
        try:
            yield
        finally:
            super().set_authorizer(self._fence_authorizer)


class FencedDialect(DefaultDialect):
    """The fence half of every sqlfence dialect; mixed in before SQLAlchemy's own dialect."""

    driver = "sqlfence"
    supports_statement_cache = True
    fence_dialect: ClassVar[str] = ""

    @classmethod
    def import_dbapi(cls) -> Any:
        driver_module: Any = super().import_dbapi()
        return FencedDBAPI(driver_module)

    def create_connect_args(self, url: URL) -> Any:
        fence = {key: url.query[key] for key in FENCE_OPTIONS if key in url.query}
        cargs, cparams = super().create_connect_args(url.difference_update_query(FENCE_OPTIONS))
        return cargs, {**cparams, **fence}

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        """Open the driver connection and put it behind the fence."""
        fence = {key: cparams.pop(key) for key in FENCE_OPTIONS if key in cparams}
        if fence.get("policy") is None:  # the default policy, said as connect() says it
            warnings.warn(DEFAULT_POLICY_WARNING, DefaultPolicyWarning, stacklevel=2)
        fence["policy"] = _raising_on_row_limit(
            fence.get("policy"), fence.get("agent_id"), fence.get("tenant")
        )
        raw = self._open_driver_connection(cargs, cparams)
        try:
            guarded = wrap(raw, dialect=self.fence_dialect, **fence)
        except BaseException:
            raw.close()
            raise
        return FencedConnection(guarded, raw)

    def _open_driver_connection(self, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        module = self.loaded_dbapi
        real = module.driver_module if isinstance(module, FencedDBAPI) else module
        return real.connect(*cargs, **cparams)

    def on_connect(self) -> Any:  # the SQLite and PostgreSQL bases disagree on Optional
        hook = super().on_connect()
        if hook is None:
            return None
        return lambda connection: hook(_driver_connection(connection))

    def initialize(self, connection: Connection) -> None:
        with _trusted(connection):
            super().initialize(connection)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        if connection is not None:
            connection = _driver_connection(connection)
        return bool(super().is_disconnect(e, connection, cursor))

    def has_table(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        if not visible(_guard(connection), schema, table_name):
            return False
        with _trusted(connection):
            return bool(super().has_table(connection, table_name, schema, **kw))

    def has_index(
        self,
        connection: Connection,
        table_name: str,
        index_name: str,
        schema: str | None = None,
        **kw: Any,
    ) -> bool:
        if not visible(_guard(connection), schema, table_name):
            return False
        with _trusted(connection):
            found = super().has_index(  # type: ignore[no-untyped-call]  # untyped upstream
                connection, table_name, index_name, schema, **kw
            )
        return bool(found)


def _driver_connection(connection: Any) -> Any:
    # SQLAlchemy hands its probes the DBAPI connection or the pool's proxy around it.
    fenced = getattr(connection, "dbapi_connection", connection)
    return fenced.driver_connection if isinstance(fenced, FencedConnection) else connection


def _fenced(connection: Connection) -> FencedConnection:
    dbapi = connection.connection.dbapi_connection
    if not isinstance(dbapi, FencedConnection):
        raise ConfigurationError("not a sqlfence connection")
    return dbapi


@contextmanager
def _trusted(connection: Connection) -> Iterator[None]:
    with _fenced(connection).trusted():
        yield


def _guard(connection: Connection) -> Guard:
    return _fenced(connection).guard


def _one_table(name: str) -> Callable[..., Any]:
    def method(
        self: FencedDialect,
        connection: Connection,
        table_name: str,
        schema: str | None = None,
        **kw: Any,
    ) -> Any:
        guard = _guard(connection)
        if not visible(guard, schema, table_name):
            raise exc.NoSuchTableError(table_name)
        with _trusted(connection):
            result = getattr(super(FencedDialect, self), name)(
                connection, table_name, schema=schema, **kw
            )
        if name == "get_columns":
            result = [
                column
                for column in result
                if not column_denied(guard, schema, table_name, column["name"])
            ]
        return result

    method.__name__ = name
    return method


def _name_list(name: str) -> Callable[..., Any]:
    def method(
        self: FencedDialect, connection: Connection, schema: str | None = None, **kw: Any
    ) -> Any:
        guard = _guard(connection)
        with _trusted(connection):
            names = getattr(super(FencedDialect, self), name)(connection, schema=schema, **kw)
            return [table for table in names if visible(guard, schema, table)]

    method.__name__ = name
    return method


def _multi(name: str) -> Callable[..., Any]:
    def method(self: FencedDialect, connection: Connection, **kw: Any) -> Any:
        guard = _guard(connection)
        with _trusted(connection):
            # Consumed inside: the default implementation is a lazy generator.
            pairs = list(getattr(super(FencedDialect, self), name)(connection, **kw))
        kept = [(key, value) for key, value in pairs if visible(guard, key[0], key[1])]
        if name == "get_multi_columns":
            kept = [
                (key, [c for c in value if not column_denied(guard, key[0], key[1], c["name"])])
                for key, value in kept
            ]
        return kept

    method.__name__ = name
    return method


def _driver_probe(name: str) -> Callable[..., Any]:
    def method(self: FencedDialect, dbapi_connection: Any, *args: Any, **kw: Any) -> Any:
        return getattr(super(FencedDialect, self), name)(
            _driver_connection(dbapi_connection), *args, **kw
        )

    method.__name__ = name
    return method


for _name in _ONE_TABLE:
    setattr(FencedDialect, _name, _one_table(_name))
for _name in _NAME_LISTS:
    setattr(FencedDialect, _name, _name_list(_name))
for _name in _MULTI:
    setattr(FencedDialect, _name, _multi(_name))
for _name in _DRIVER_PROBES:
    setattr(FencedDialect, _name, _driver_probe(_name))


class SQLiteDialect_sqlfence(FencedDialect, SQLiteDialect_pysqlite):
    """``sqlfence+sqlite:///path.db``: the standard library's sqlite3 behind the fence."""

    fence_dialect = "sqlite"
    supports_statement_cache = True  # SQLAlchemy reads it from each class's own __dict__

    def _open_driver_connection(self, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        cparams.setdefault("factory", _SQLiteDriverConnection)
        return super()._open_driver_connection(cargs, cparams)


class PGDialect_sqlfence(FencedDialect, PGDialect_psycopg):
    """``sqlfence+postgresql://user@host/db``: psycopg 3 behind the fence."""

    fence_dialect = "postgres"
    supports_statement_cache = True

    def _type_info_fetch(self, connection: Connection, name: str) -> Any:
        from psycopg.types import TypeInfo

        with _fenced(connection).trusted() as raw:
            return TypeInfo.fetch(raw, name)


@functools.cache
def _iris_dialect() -> type[DefaultDialect]:
    try:
        from sqlalchemy_iris.iris import IRISDialect_iris
    except ImportError as error:
        raise ConfigurationError(
            "sqlfence+iris:// needs the sqlalchemy-iris dialect: "
            f"pip install 'sqlfence[{IRIS_EXTRA}]'"
        ) from error

    class IRISDialect_sqlfence(FencedDialect, IRISDialect_iris):  # type: ignore[misc]  # sqlalchemy-iris ships no type hints
        """``sqlfence+iris://user:pw@host:1972/NAMESPACE``: sqlalchemy-iris behind the fence."""

        fence_dialect = "iris"
        supports_statement_cache = True

    return IRISDialect_sqlfence


def __getattr__(name: str) -> Any:
    # sqlalchemy-iris is optional: the IRIS dialect class is built when first asked for,
    # so this module imports without it and a missing package names the extra to install.
    if name == "IRISDialect_sqlfence":
        return _iris_dialect()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> None:
    """Register the three dialects in-process (what the entry points do once installed)."""
    from sqlalchemy.dialects import registry

    registry.register("sqlfence.sqlite", __name__, "SQLiteDialect_sqlfence")
    registry.register("sqlfence.postgresql", __name__, "PGDialect_sqlfence")
    registry.register("sqlfence.psycopg", __name__, "PGDialect_sqlfence")
    registry.register("sqlfence.iris", __name__, "IRISDialect_sqlfence")


dialect = SQLiteDialect_sqlfence


def _raising_on_row_limit(policy: Any, agent_id: Any, tenant: Any) -> Policy:
    """The policy, raising RowLimitExceeded on a cut result unless it says otherwise: an ORM
    cannot see a cut result (80 orders would load as 50, and its state would be wrong)."""
    resolved = (
        policy if isinstance(policy, Policy) else load_policy(policy).resolve(agent_id, tenant)
    )
    if "on_row_limit" in resolved.origins or "on_row_limit" in resolved.model_fields_set:
        return resolved
    return resolved.model_copy(update={"on_row_limit": "error"})
