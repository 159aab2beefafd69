"""PostgreSQL through psycopg 3: ``postgresql://user:password@host:port/database?options``.

The second layer is the server's: ``default_transaction_read_only`` and ``statement_timeout``
are set as session options at connect time, before the agent's first statement. With a
statement timeout, each ``execute`` also has a client-side deadline (the timeout plus
``DEADLINE_GRACE_S``): a server that stops answering cannot hold the caller for ever.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlfence import databases
from sqlfence.errors import ConfigurationError
from sqlfence.policies.engine import Decision, Guard
from sqlfence.policies.server_code import ServerCode
from sqlfence.proxy.deadline import WATCHDOG
from sqlfence.proxy.drivers import ConnectionURL, Driver
from sqlfence.proxy.postgres_code import load_server_code
from sqlfence.sql import postgres_grammar


class PostgresDriver(Driver):
    """psycopg 3 (the ``postgres`` extra)."""

    database = databases.POSTGRES

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        params: dict[str, Any] = dict(url.options)
        for key, value in (
            ("user", url.username),
            ("password", url.password),
            ("host", url.host),
            ("port", url.port),
            ("dbname", url.database),
        ):
            if value:
                params.setdefault(key, value)
        params.update(kwargs)
        # A server that takes the TCP connection but never answers (frozen) must not hold
        # connect() for ever: libpq's own limit, unless the caller gave one.
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        settings = _session_settings(guard)
        if settings:
            extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
            params["options"] = f"{params.get('options', '')} {extra}".strip()
        raw = self.module.connect(**params)
        timeout = guard.policy.statement_timeout_ms
        if timeout is not None:
            _DEADLINES[raw] = timeout / 1000 + DEADLINE_GRACE_S
        return raw

    def cancel(self, raw: Any) -> None:
        # cancel_safe (psycopg 3.2) waits for the server without blocking other threads.
        getattr(raw, "cancel_safe", raw.cancel)()

    def was_cancelled(self, error: BaseException) -> bool:
        return isinstance(error, self.module.errors.QueryCanceled)

    def open_cursor(self, raw: Any) -> Any:
        """A psycopg cursor that always uses the extended query protocol.

        psycopg sends a statement without parameters with the simple protocol, which runs
        every ``;``-separated command in the text; the extended protocol makes the server
        itself refuse a second command, whatever the fence read.
        """
        factory = getattr(raw, "cursor_factory", None)
        if not isinstance(factory, type):
            return raw.cursor()  # not a psycopg 3 connection: its own cursor
        return _one_statement(factory, _DEADLINES.get(raw))(raw, row_factory=raw.row_factory)

    def privileges(self, raw: Any) -> tuple[str, ...]:
        """``superuser`` or the predefined roles that reach outside SQL, held by the login."""
        with raw.cursor() as cursor:
            cursor.execute(_PRIVILEGES_QUERY)
            row = cursor.fetchone()
        if not getattr(raw, "autocommit", False):
            raw.rollback()
        if row is None:
            return ()
        if row[0]:
            return ("superuser",)
        return tuple(role for role, held in zip(_SERVER_ROLES, row[1:], strict=True) if held)

    def load_parts(self, raw: Any) -> dict[str, str]:
        """Each inheritance child and partition -> its parent (pg_inherits)."""
        return {
            f"{schema}.{table}": f"{parent_schema}.{parent}"
            for parent_schema, parent, schema, table in _catalog_rows(raw, _PARTS_QUERY)
        }

    def load_views(self, raw: Any) -> dict[str, set[str]]:
        """What reading a relation reads besides it, from pg_depend and pg_inherits: a view's
        or a rule's tables, a parent's inheritance children and partitions."""
        views: dict[str, set[str]] = {}
        for view_schema, view, schema, table in _catalog_rows(raw, _VIEWS_QUERY):
            views.setdefault(f"{view_schema}.{view}", set()).add(f"{schema}.{table}")
        # pg_depend records nothing on the system catalog (it is pinned): a view's own
        # definition, read by PostgreSQL's grammar, says which catalog tables it reads.
        for view_schema, view, definition, path in _catalog_rows(raw, _VIEW_TEXT_QUERY):
            reading = postgres_grammar.read(definition or "", path or self.default_schema, False)
            if reading.error is None:
                views.setdefault(f"{view_schema}.{view}", set()).update(reading.tables)
        return views

    def load_view_columns(self, raw: Any) -> dict[str, set[tuple[str, str]]]:
        """The (table, column) pairs each view reads, from pg_depend's column entries."""
        columns: dict[str, set[tuple[str, str]]] = {}
        for view_schema, view, schema, table, column in _catalog_rows(raw, _VIEW_COLUMNS_QUERY):
            columns.setdefault(f"{view_schema}.{view}", set()).add((f"{schema}.{table}", column))
        # A whole-row reference in a view (row_to_json(u)) leaves no column entry: the view's
        # own definition, read by the fence, names the tables it reads whole ("*").
        from sqlfence.policies.engine import dialect_instance
        from sqlfence.sql.analysis import analyze
        from sqlfence.sql.names import Namer

        dialect = dialect_instance(self.dialect)
        for view_schema, view, definition, path in _catalog_rows(raw, _VIEW_TEXT_QUERY):
            facts = analyze(
                definition or "", dialect, Namer(dialect, path or self.default_schema)
            ).facts
            for table in facts.star_tables:
                columns.setdefault(f"{view_schema}.{view}", set()).add((table, "*"))
        return columns

    def load_table_columns(self, raw: Any) -> dict[str, set[str]]:
        """Every table's and view's columns outside the system schemas."""
        columns: dict[str, set[str]] = {}
        for schema, table, column in _catalog_rows(raw, _TABLE_COLUMNS_QUERY):
            columns.setdefault(f"{schema}.{table}", set()).add(column)
        return columns

    def load_star_columns(self, raw: Any) -> dict[str, list[str]]:
        """Every table's and view's columns outside the system schemas, in ``*``'s order."""
        columns: dict[str, list[str]] = {}
        for schema, table, column in _catalog_rows(raw, _STAR_COLUMNS_QUERY):
            columns.setdefault(f"{schema}.{table}", []).append(column)
        return columns

    def load_server_code(self, raw: Any, reaches: Mapping[str, Collection[str]]) -> ServerCode:
        """Functions outside the system schemas (pg_proc) and every path into them."""
        return load_server_code(lambda sql, params: _catalog_rows(raw, sql, params), reaches)

    def load_references(self, raw: Any) -> dict[str, set[tuple[str, str | None]]]:
        """Each table's foreign keys outside the system schemas (pg_constraint)."""
        found: dict[str, set[tuple[str, str | None]]] = {}
        for schema, table, target_schema, target, column in _catalog_rows(raw, _REFERENCES):
            found.setdefault(f"{schema}.{table}", set()).add((f"{target_schema}.{target}", column))
        return found

    def load_placing_columns(self, raw: Any) -> dict[str, set[str]]:
        """Each partitioned table's key columns (an expression's too), the columns of an
        inheritance child's CHECK constraints, and of the index a table was CLUSTERed on."""
        found: dict[str, set[str]] = {}
        for schema, table, column in _catalog_rows(raw, _PLACING_QUERY):
            found.setdefault(f"{schema}.{table}", set()).add(column)
        return found

    def load_generated_columns(self, raw: Any) -> dict[str, dict[str, set[str]]]:
        """Generated columns and the columns they are computed from (pg_depend)."""
        generated: dict[str, dict[str, set[str]]] = {}
        for schema, table, column, source in _catalog_rows(raw, _GENERATED_QUERY):
            generated.setdefault(f"{schema}.{table}", {}).setdefault(column, set()).add(source)
        return generated

    def pin_schema(self, raw: Any) -> str | None:
        """Pin ``search_path`` to its first existing schema, so that an unqualified name
        means exactly what the fence qualifies it with (another schema of a longer path, or
        one named after the login, cannot stand in for it)."""
        rows = _catalog_rows(raw, "SELECT (current_schemas(false))[1]")
        schema = rows[0][0] if rows and rows[0][0] else self.default_schema
        with raw.cursor() as cursor:
            # pg_temp last: a temporary table cannot stand in for the schema's table of the
            # same name (PostgreSQL searches it first unless the path names it)
            cursor.execute(
                "SELECT set_config('search_path', quote_ident(%s) || ', pg_temp', false)",
                (schema,),
            )
        if not getattr(raw, "autocommit", False):
            raw.commit()
        return str(schema)

    def harden(self, raw: Any, guard: Guard, opened: bool) -> Callable[[Decision], None] | None:
        if opened:
            return None  # the session options were given at connect time
        settings = _session_settings(guard)
        if settings:
            with raw.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute(f"SET SESSION {name} = {value}")
            if not getattr(raw, "autocommit", False):
                raw.commit()
        return None


# What a view's or rule's rewrite depends on: relation v (the view or ruled table) on t.
_REWRITE_DEPENDENCIES = """
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass
  AND d.refclassid = 'pg_class'::regclass
  AND t.oid <> v.oid
  AND vn.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# Inheritance children and partitions, with their parents.
_PARTS_QUERY = """
SELECT pn.nspname, p.relname, cn.nspname, c.relname
FROM pg_inherits i
JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace pn ON pn.oid = p.relnamespace
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
"""
# Views' and rules' (also DO ALSO rules on tables) dependencies, and inheritance children
# and partitions, which a read or write of their parent reaches.
_VIEWS_QUERY = (
    """
SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname
"""
    + _REWRITE_DEPENDENCIES
    + "UNION"
    + _PARTS_QUERY
)
_VIEW_TEXT_QUERY = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid), (current_schemas(false))[1]
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""
_TABLE_COLUMNS_QUERY = """
SELECT n.nspname, c.relname, a.attname
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""
_STAR_COLUMNS_QUERY = _TABLE_COLUMNS_QUERY + "ORDER BY n.nspname, c.relname, a.attnum\n"
_REFERENCES = """
SELECT n.nspname, c.relname, fn.nspname, f.relname, a.attname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class f ON f.oid = k.confrelid
JOIN pg_namespace fn ON fn.oid = f.relnamespace
JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = ANY (k.confkey)
WHERE k.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# A partition key's columns, plain or in an expression, are the only columns a table itself
# depends on internally; an inheritance child's CHECK says which rows it holds; CLUSTER laid
# the rows out in the order of the index it marks (indisclustered).
_PLACING_QUERY = """
SELECT n.nspname, c.relname, a.attname
FROM pg_depend d
JOIN pg_class c ON c.oid = d.objid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = d.objid AND d.objsubid > 0 AND d.refobjsubid = 0 AND d.deptype = 'i'
  AND c.relkind = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT n.nspname, c.relname, a.attname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (k.conkey)
WHERE k.contype = 'c' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
UNION
SELECT n.nspname, c.relname, a.attname
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid
  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = x.indrelid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
WHERE x.indisclustered AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
_GENERATED_QUERY = """
SELECT n.nspname, c.relname, a.attname, s.attname
FROM pg_attrdef ad
JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
JOIN pg_class c ON c.oid = ad.adrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ad.adrelid AND d.refobjsubid > 0
JOIN pg_attribute s ON s.attrelid = d.refobjid AND s.attnum = d.refobjsubid
WHERE a.attgenerated <> ''
"""
_VIEW_COLUMNS_QUERY = (
    """
SELECT DISTINCT vn.nspname, v.relname, tn.nspname, t.relname,
       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum = d.refobjsubid)
"""
    + _REWRITE_DEPENDENCIES
    + "  AND d.refobjsubid > 0\n"
)


def _catalog_rows(raw: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Rows of the fence's own catalog query, leaving no transaction open behind it.

    Without JIT: the planner's estimates for the catalog's recursive queries are large
    enough to compile them, which takes seconds for a query that runs in milliseconds."""
    autocommit = getattr(raw, "autocommit", False)
    # In the agent's own transaction (the catalog learnt again mid-session): a savepoint,
    # rolled back to, leaves it as it was
    status = getattr(getattr(raw, "info", None), "transaction_status", _IDLE)
    inside = not autocommit and status != _IDLE
    with raw.cursor() as cursor:
        if autocommit or inside:
            cursor.execute("SAVEPOINT sqlfence_catalog" if inside else "BEGIN")
        try:
            cursor.execute("SELECT set_config('jit', 'off', true)")
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
        finally:
            if inside:
                cursor.execute("ROLLBACK TO SAVEPOINT sqlfence_catalog")
                cursor.execute("RELEASE SAVEPOINT sqlfence_catalog")
            elif autocommit:
                cursor.execute("ROLLBACK")
    if not autocommit and not inside:
        raw.rollback()
    return rows


_IDLE = 0  # libpq's PQTRANS_IDLE: no transaction open


_SERVER_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")
_PRIVILEGES_QUERY = (
    "SELECT rolsuper, "
    + ", ".join(f"pg_has_role(session_user, '{role}', 'MEMBER')" for role in _SERVER_ROLES)
    + " FROM pg_roles WHERE rolname = session_user"
)
_ONE_STATEMENT: dict[tuple[Any, float | None], type] = {}
# The client-side deadline of each connection with a statement timeout, in seconds.
_DEADLINES: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
DEADLINE_GRACE_S = 2.0  # the server's own statement_timeout has this long to answer first
CONNECT_TIMEOUT_S = 10  # seconds connect() waits for a server that took the TCP connection


def _one_statement(base: Any, deadline: float | None = None) -> type:
    """``base`` (a psycopg cursor class) sending every statement with the extended protocol,
    and with ``deadline`` (seconds) watched on each execute."""
    made = _ONE_STATEMENT.get((base, deadline))
    if made is not None:
        return made
    send = getattr(base, "_execute_send", None)
    if send is None or "force_extended" not in inspect.signature(send).parameters:
        raise ConfigurationError(
            "this psycopg version cannot be made to send one statement per call; "
            "install psycopg>=3.1,<4"
        )

    def _execute_send(self: Any, query: Any, *, force_extended: bool = False, **kw: Any) -> None:
        send(self, query, force_extended=True, **kw)

    methods: dict[str, Any] = {"_execute_send": _execute_send}
    if deadline is not None:
        methods["execute"] = _watched(base.execute, deadline)
        methods["executemany"] = _watched(base.executemany, deadline)
    made = type(f"OneStatement{base.__name__}", (base,), methods)
    _ONE_STATEMENT[(base, deadline)] = made
    return made


def _watched(run: Callable[..., Any], deadline: float) -> Callable[..., Any]:
    """``run`` (a cursor method) under the watchdog: past ``deadline`` seconds the
    connection's socket is shut down and the driver's error says why."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        connection = self.connection
        with WATCHDOG.watching(lambda: connection.pgconn.socket, deadline) as expired:
            try:
                return run(self, *args, **kwargs)
            except Exception as error:
                if not expired.fired:
                    raise
                raise type(error)(
                    f"no answer from the server within {deadline:g} s (statement_timeout_ms "
                    f"plus {DEADLINE_GRACE_S:g} s): the connection was closed"
                ) from error

    return method


def _session_settings(guard: Guard) -> dict[str, str]:
    policy = guard.policy
    # The fence reads '...' as the SQL standard does: with this off, the server would take
    # a backslash in a string as an escape and read the rest of the text otherwise.
    settings: dict[str, str] = {"standard_conforming_strings": "on"}
    if policy.read_only and policy.mode == "enforce":
        settings["default_transaction_read_only"] = "on"
    if policy.statement_timeout_ms is not None:
        settings["statement_timeout"] = str(int(policy.statement_timeout_ms))
    if policy.masked_columns:
        # An index scan returns rows in the index's order: on (tenant_id, salary) it ranks
        # each row by its masked salary (row_number() OVER (), LIMIT, string_agg). Bitmap
        # scans, which return rows as stored, still serve lookups; planner settings stay.
        settings["enable_indexscan"] = "off"
        settings["enable_indexonlyscan"] = "off"
    return settings


DRIVER = PostgresDriver()
