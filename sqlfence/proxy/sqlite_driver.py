"""SQLite: ``sqlite:///path.db`` and ``sqlite://`` (memory), hardened inside the engine.

The second layer here is SQLite's own: ``PRAGMA query_only`` for read-only policies, a
progress handler that interrupts a statement past its deadline, and an authorizer that
checks every table, column and function the engine touches against the policy.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sqlfence import databases
from sqlfence.errors import ConfigurationError, Error, OperationalError, PolicyViolation
from sqlfence.observe.observer import Session
from sqlfence.policies.engine import Decision, Guard
from sqlfence.policies.server_code import ServerCode
from sqlfence.policies.tables import is_catalog_table, table_matches
from sqlfence.proxy import sqlite_catalog
from sqlfence.proxy.drivers import ConnectionURL, Driver
from sqlfence.sql.analysis import StatementFacts
from sqlfence.sql.functions import canonical
from sqlfence.sql.masks import SQLITE_HASH_FUNCTION, sha256_text
from sqlfence.sql.row_bounds import ROW_BOUND_FUNCTIONS

_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_MAKES_CODE = {
    sqlite3.SQLITE_CREATE_VIEW,
    sqlite3.SQLITE_CREATE_TEMP_VIEW,
    sqlite3.SQLITE_CREATE_TRIGGER,
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
}
# Engine actions that are statement kinds of their own, allowed only when the policy names them.
_STATEMENT_ACTIONS = {
    sqlite3.SQLITE_ATTACH: "attach",
    sqlite3.SQLITE_DETACH: "detach",
    sqlite3.SQLITE_PRAGMA: "pragma",
}
_DIALECT = databases.SQLITE.dialect
_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks


class SQLiteDriver(Driver):
    """The standard library's sqlite3."""

    database = databases.SQLITE

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        path = url.database or ":memory:"
        if url.host:
            raise ConfigurationError(
                f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, "
                f"not a host named {url.host!r}"
            )
        options: dict[str, Any] = dict(url.options)
        options.update(kwargs)
        if (
            "mode" not in options
            and path != ":memory:"
            and not path.startswith("file:")
            and not Path(path).exists()
        ):
            # A misspelt path must not hand the agent a new, empty database.
            raise OperationalError(
                f"no SQLite database at {path}: to create one, add ?mode=rwc to the URL "
                "(or pass mode='rwc')"
            )
        if "mode" in options and not path.startswith("file:"):
            path = f"file:{path}?mode={options.pop('mode')}"
            options["uri"] = True
        if "timeout" in options:
            options["timeout"] = float(options["timeout"])
        options.setdefault("check_same_thread", False)
        return self.module.connect(path, **options)

    def load_views(self, raw: Any) -> dict[str, set[str]]:
        """The tables each view and trigger-free view chain reads, from the views' own SQL
        (read by the fence's parser), so that a view over a denied table is denied up front
        as on PostgreSQL (the authorizer refuses it at prepare time in any case)."""
        from sqlfence.policies.engine import dialect_instance
        from sqlfence.sql.analysis import analyze
        from sqlfence.sql.names import Namer

        dialect = dialect_instance(self.dialect)
        namer = Namer(dialect, self.default_schema)
        views: dict[str, set[str]] = {}
        for schema, name, sql in sqlite_catalog.view_definitions(raw):
            facts = analyze(sql, dialect, Namer(dialect, schema) if schema else namer).facts
            views[f"{schema}.{name}".lower()] = set(facts.tables)
        for table, shadows in sqlite_catalog.shadow_tables(raw).items():
            views.setdefault(table, set()).update(shadows)
        for virtual, source in sqlite_catalog.content_tables(raw).items():
            views.setdefault(source, set()).add(virtual)  # its rows are the source's
        return views

    def load_parts(self, raw: Any) -> dict[str, str]:
        """Each shadow table -> its virtual table (FTS, R-tree); an external-content FTS
        table -> the table its content is (``content=orders``: its index holds orders')."""
        parts = {
            s: owner
            for owner, shadows in sqlite_catalog.shadow_tables(raw).items()
            for s in shadows
        }
        parts.update(sqlite_catalog.content_tables(raw))
        return parts

    def load_server_code(self, raw: Any, reaches: Mapping[str, Collection[str]]) -> ServerCode:
        """SQLite runs no code of the database's own but triggers (the authorizer judges
        their bodies); what it writes on its own is its foreign keys' actions: table ->
        the tables an UPDATE or DELETE of it writes (a table referencing itself too, which
        the authorizer cannot tell from the statement's own write)."""
        cascades: dict[str, set[str]] = {}
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            tables = raw.execute(f"SELECT name FROM {master} WHERE type = 'table'").fetchall()
            for (name,) in tables:
                quoted = '"' + str(name).replace('"', '""') + '"'
                keys = raw.execute(f'PRAGMA "{schema}".foreign_key_list({quoted})').fetchall()
                for key in keys:
                    parent, on_update, on_delete = key[2], key[5], key[6]
                    if {on_update, on_delete} & _ACTIONS:
                        child = f"{schema}.{name}".lower()
                        cascades.setdefault(f"{schema}.{parent}".lower(), set()).add(child)
        code = ServerCode(cascades={key: frozenset(value) for key, value in cascades.items()})
        return code.spread(reaches, ()) if cascades else code

    def replacing_tables(self, raw: Any) -> set[str]:
        """Tables declaring ``ON CONFLICT REPLACE`` on a key or column (a plain INSERT or
        UPDATE then deletes the row it conflicts with, whoever's it is). Read from each
        table's text, generously: the phrase anywhere in it counts."""
        found = set()
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            rows = raw.execute(f"SELECT name, sql FROM {master} WHERE type = 'table'")
            for name, sql in rows.fetchall():
                if sql and _REPLACES.search(_COMMENTS.sub(" ", sql)):
                    found.add(f"{schema}.{name}".lower())
        return found

    def load_table_columns(self, raw: Any) -> dict[str, set[str]]:
        """Every table's and view's columns, in every attached database."""
        columns: dict[str, set[str]] = {}
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            names = raw.execute(f"SELECT name FROM {master} WHERE type IN ('table', 'view')")
            for (name,) in names.fetchall():
                info = raw.execute("SELECT name FROM pragma_table_xinfo(?, ?)", (name, schema))
                columns[f"{schema}.{name}".lower()] = {row[0] for row in info.fetchall()}
        return columns

    def load_star_columns(self, raw: Any) -> dict[str, list[str]]:
        """Every table's and view's columns as ``SELECT *`` returns them (a virtual table's
        hidden columns left out; generated ones in), in every attached database."""
        columns: dict[str, list[str]] = {}
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            names = raw.execute(f"SELECT name FROM {master} WHERE type IN ('table', 'view')")
            for (name,) in names.fetchall():
                info = raw.execute(
                    "SELECT name FROM pragma_table_xinfo(?, ?) WHERE hidden <> 1 ORDER BY cid",
                    (name, schema),
                )
                columns[f"{schema}.{name}".lower()] = [row[0] for row in info.fetchall()]
        return columns

    def load_placing_columns(self, raw: Any) -> dict[str, set[str]]:
        """Each table's clustering key, in whose order a scan returns rows: a rowid table's
        INTEGER PRIMARY KEY (the rowid itself); a WITHOUT ROWID table's primary key, and
        the columns of each of its indexes (SQLite scans a covering index of such a table
        even when told NOT INDEXED; an index on an expression counts every column)."""
        found: dict[str, set[str]] = {}
        for schema, name, without_rowid in sqlite_catalog.tables_and_rowids(raw):
            columns = raw.execute(
                "SELECT name, upper(type), pk FROM pragma_table_info(?, ?)", (name, schema)
            ).fetchall()
            key = [(column, kind) for column, kind, pk in columns if pk > 0]
            if len(key) == 1 and key[0][1] == "INTEGER" and not without_rowid:
                found[f"{schema}.{name}".lower()] = {key[0][0]}
            elif without_rowid:
                indexed = raw.execute(
                    "SELECT x.cid, x.name FROM pragma_index_list(?, ?) AS l,"
                    " pragma_index_xinfo(l.name, ?) AS x WHERE x.key = 1",
                    (name, schema, schema),
                ).fetchall()
                placing = {column for column, _kind in key} | {c for _cid, c in indexed if c}
                if any(cid == -2 for cid, _name in indexed):
                    placing |= {column for column, _kind, _pk in columns}
                found[f"{schema}.{name}".lower()] = placing
        return found

    def load_references(self, raw: Any) -> dict[str, set[tuple[str, str | None]]]:
        """Each table's foreign keys (``pragma_foreign_key_list``), in every attached database."""
        found: dict[str, set[tuple[str, str | None]]] = {}
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            names = raw.execute(f"SELECT name FROM {master} WHERE type = 'table'").fetchall()
            for (name,) in names:
                keys = raw.execute(
                    'SELECT "table", "to" FROM pragma_foreign_key_list(?, ?)', (name, schema)
                ).fetchall()
                for referenced, column in keys:
                    target = f"{schema}.{referenced}".lower()
                    # no column named: the referenced table's primary key
                    named = (
                        [column] if column else sqlite_catalog.primary_key(raw, schema, referenced)
                    )
                    for each in named or [None]:
                        found.setdefault(f"{schema}.{name}".lower(), set()).add((target, each))
        return found

    def load_generated_columns(self, raw: Any) -> dict[str, dict[str, set[str]]]:
        """Generated columns and the columns they are computed from, from each table's own
        CREATE TABLE text (read by the fence's parser)."""
        import sqlglot
        from sqlglot import exp

        generated: dict[str, dict[str, set[str]]] = {}
        for _seq, schema, _file in raw.execute("PRAGMA database_list").fetchall():
            master = "sqlite_temp_master" if schema == "temp" else f'"{schema}".sqlite_master'
            rows = raw.execute(f"SELECT name, sql FROM {master} WHERE type = 'table'").fetchall()
            for name, sql in rows:
                if not sql or ("generated" not in sql.lower() and " as " not in sql.lower()):
                    continue
                try:
                    tree = sqlglot.parse_one(sql, read=self.dialect)
                except sqlglot.errors.SqlglotError:
                    continue  # the authorizer still stands; such a table is rare
                for column in tree.find_all(exp.ColumnDef):
                    for constraint in column.constraints:
                        if isinstance(constraint.kind, exp.ComputedColumnConstraint):
                            sources = {c.name.lower() for c in constraint.kind.find_all(exp.Column)}
                            table = generated.setdefault(f"{schema}.{name}".lower(), {})
                            table[column.name.lower()] = sources
        return generated

    def session(self, url: ConnectionURL | None, raw: Any) -> Session:
        namespace = (url.database or ":memory:") if url is not None else None
        return Session(system=self.system, namespace=namespace)

    def harden(self, raw: Any, guard: Guard, opened: bool) -> Callable[[Decision], None] | None:
        policy = guard.policy
        enforce = policy.mode == "enforce"  # detect mode records violations, so lets them run
        if policy.read_only and enforce:
            raw.execute("PRAGMA query_only = ON")
        if policy.masked_columns and hasattr(raw, "create_function"):
            # the hash masker's function (SQLite has no SHA-256 of its own)
            raw.create_function(SQLITE_HASH_FUNCTION, 1, sha256_text, deterministic=True)
        authorizer = None
        if hasattr(raw, "set_authorizer") and enforce:
            # A wrapped connection is also the caller's own: its statements (those the fence
            # did not judge) are left alone; one the fence opened has no other user.
            shadows = {
                s: o for o, found in sqlite_catalog.shadow_tables(raw).items() for s in found
            }
            code = (
                sqlite_catalog.code_names(raw)
                if policy.row_filters or policy.masked_columns
                else None
            )
            authorizer = _Authorizer(guard, strict=opened, shadows=shadows, code=code)
            raw.set_authorizer(authorizer)
        deadline = None
        if policy.statement_timeout_ms is not None:
            deadline = _Deadline(policy.statement_timeout_ms / 1000)
            raw.set_progress_handler(deadline.expired, _PROGRESS_STEPS)
        if authorizer is None:
            return None if deadline is None else deadline.arm_for
        if deadline is None and opened:
            return authorizer.expect
        return _Both(authorizer, deadline)

    @contextlib.contextmanager
    def reading_catalog(self, raw: Any, hook: Any) -> Iterator[None]:
        authorizer = _authorizer_of(hook)
        if authorizer is None:
            yield
            return
        raw.set_authorizer(None)  # the fence's own reads of the schema, as at connect
        try:
            yield
        finally:
            raw.set_authorizer(authorizer)

    def adopt(self, hook: Any, guard: Guard) -> None:
        authorizer = _authorizer_of(hook)
        if authorizer is not None:
            authorizer.adopt(guard)

    def translate(self, error: BaseException) -> Error:
        message = str(error)
        if message.startswith("not authorized") or message.endswith("is prohibited"):
            return PolicyViolation(f"denied by the engine-side policy check: {message}")
        return super().translate(error)

    def describe(self, error: BaseException) -> str:
        message = str(error)
        if message == "interrupted":  # cancel() says so itself: this is the deadline
            return "statement interrupted: it ran past the policy's statement_timeout_ms"
        return message

    def cancel(self, raw: Any) -> None:
        raw.interrupt()

    def was_cancelled(self, error: BaseException) -> bool:
        return str(error) == "interrupted"


class _Deadline:
    """The statement deadline a progress handler checks; re-armed before each statement."""

    __slots__ = ("_at", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = float("inf")

    def arm_for(self, decision: Decision) -> None:
        self._at = time.monotonic() + self._seconds

    def expired(self) -> int:
        return 1 if time.monotonic() > self._at else 0


def _authorizer_of(hook: Any) -> _Authorizer | None:
    """The authorizer behind ``harden``'s hook (``_Both``, or the authorizer's ``expect``)."""
    found = getattr(hook, "authorizer", None) or getattr(hook, "__self__", None)
    return found if isinstance(found, _Authorizer) else None


class _Both:
    """Before a statement: tell the authorizer what was judged, arm the deadline; after it
    (``after``): the authorizer forgets, so the caller's own statements are its own."""

    __slots__ = ("_authorizer", "_deadline")

    def __init__(self, authorizer: _Authorizer, deadline: _Deadline | None) -> None:
        self._authorizer = authorizer
        self._deadline = deadline

    def __call__(self, decision: Decision) -> None:
        self._authorizer.expect(decision)
        if self._deadline is not None:
            self._deadline.arm_for(decision)

    def after(self) -> None:
        self._authorizer.forget()

    @property
    def authorizer(self) -> _Authorizer:
        return self._authorizer


_OPERATOR_FUNCTIONS = frozenset({"like", "glob", "regexp", "match", "->", "->>"})
# SQLite's own bookkeeping: written by DDL, AUTOINCREMENT and the first use of a virtual
# table, read by rowid; never the statement's own doing (SQLite refuses direct writes).
_BOOKKEEPING = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_sequence"})


class _Authorizer:
    """Engine-side check, run by SQLite as it prepares a statement: the database's reading.

    Denied tables, columns and functions, allow lists, the system catalog, ATTACH/PRAGMA;
    and agreement: a table the statement itself touches must be one the fence judged, so
    whatever the fence misread, SQLite refuses it before anything runs.
    """

    def __init__(
        self,
        guard: Guard,
        strict: bool = True,
        shadows: Mapping[str, str] | None = None,
        code: set[str] | None = None,
    ) -> None:
        self._guard = guard
        # the names of the views and triggers (SQLite names one as a read's source, and a
        # CTE of the statement too): known at connect, and those made on this connection
        self._code = code if code is not None else set()
        # shadow table -> its virtual table: a virtual table the fence judged reads and
        # writes its own shadow tables (FTS5's docs_content) in statements of its own
        self._shadows = dict(shadows or {})
        self._strict = strict  # False: statements the fence did not judge are not judged here
        self._denied_functions = guard.denied_functions
        allowed = guard.patterns.allowed_functions
        # SQLite runs LIKE, GLOB, REGEXP, MATCH and JSON arrows as functions, which sqlglot
        # reads as operators; the fence's own row bound calls min/max/coalesce/nullif.
        self._allowed_functions = (
            None if allowed is None else allowed | _OPERATOR_FUNCTIONS | ROW_BOUND_FUNCTIONS
        )
        self._catalog_allowed = guard.policy.allow_system_catalog
        self._protects = bool(guard.policy.row_filters or guard.policy.masked_columns)
        self._allow_unparsed = guard.policy.allow_unparsed
        self._judged = threading.local()

    def adopt(self, guard: Guard) -> None:
        """Judge by ``guard`` from now on (the same policy, its catalog learnt again)."""
        self._guard = guard

    def expect(self, decision: Decision) -> None:
        """The decision on the statement about to be prepared on this thread."""
        self._judged.facts = decision.facts

    def forget(self) -> None:
        """The fence's statement is done (wrapped connections: what follows is the caller's)."""
        self._judged.facts = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if not self._strict and getattr(self._judged, "facts", None) is None:
            return sqlite3.SQLITE_OK  # the caller's own statement on its own connection
        if action == sqlite3.SQLITE_READ or action in _WRITES:
            return self._table(arg1, arg2, db, source, action == sqlite3.SQLITE_READ)
        if action == sqlite3.SQLITE_FUNCTION:
            return self._function(arg2 or "")
        if action in _MAKES_CODE and arg1:
            self._code.add(arg1.lower())  # a view or trigger this connection makes
        kind = _STATEMENT_ACTIONS.get(action)
        if kind is not None and not self._guard.policy.allows_statement(kind):
            if action == sqlite3.SQLITE_PRAGMA and self._pragma_function(arg1):
                return sqlite3.SQLITE_OK  # pragma_x(...) in a query the fence judged
            if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "data_version":
                return sqlite3.SQLITE_OK  # read by FTS5 itself; a counter, nothing else
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _function(self, called: str) -> int:
        """SQLite's own name for a function, judged by the fence's canonical names."""
        name = canonical(called)
        if name in self._denied_functions or called.lower() in self._denied_functions:
            return sqlite3.SQLITE_DENY
        allowed = self._allowed_functions
        if allowed is not None and name not in allowed and called.lower() not in allowed:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _shadow_of_judged(self, parts: tuple[str, str], facts: StatementFacts | None) -> bool:
        """Whether the table is a shadow table of a virtual table the fence judged."""
        owner = self._shadows.get(".".join(parts))
        return owner is not None and _judged(facts, owner.rpartition(".")[2], False)

    def _own_cte(self, source: str, facts: StatementFacts | None) -> bool:
        """Whether a read's source is a CTE of the statement (the fence rewrote its body),
        not a view or trigger of the same name (a view named in the statement, or one of
        the database's)."""
        name = source.lower()
        return (
            facts is not None
            and name in facts.ctes
            and name not in self._code
            and all(table.rpartition(".")[2] != name for table in facts.tables)
        )

    def _pragma_function(self, pragma: str | None) -> bool:
        """Whether ``pragma`` is a ``pragma_<name>`` table-valued function the fence judged
        (and allowed: only under allow_system_catalog); SQLite reports it as a PRAGMA."""
        facts: StatementFacts | None = getattr(self._judged, "facts", None)
        return (
            facts is not None
            and self._catalog_allowed
            and f"pragma_{(pragma or '').lower()}" in facts.functions
        )

    def _table(
        self, table: str | None, column: str | None, db: str | None, source: str | None, read: bool
    ) -> int:
        if not table:
            return sqlite3.SQLITE_OK
        parts = ((db or databases.SQLITE.default_schema).lower(), table.lower())
        facts: StatementFacts | None = getattr(self._judged, "facts", None)
        if parts[1] in _BOOKKEEPING and (
            not read or column == "ROWID" or (facts is not None and facts.is_ddl)
        ):
            return sqlite3.SQLITE_OK  # DDL reads and writes the schema table itself
        if db is None and not column and facts is not None and parts[1] in facts.ctes:
            return sqlite3.SQLITE_OK  # count(*) of one of the statement's own CTEs
        if (
            source is None
            # SQLite reports a read of no column of no database for a CTE or a view's base
            # table read by count(*): nothing to agree on (deny and allow lists still judge it)
            and not (db is None and not column)
            # the catalog's own virtual tables (dbstat) read the schema where it is allowed
            and not (self._catalog_allowed and is_catalog_table(_DIALECT, ".".join(parts)))
            and not _judged(facts, parts[1], self._allow_unparsed)
            and not self._shadow_of_judged(parts, facts)
        ):
            return sqlite3.SQLITE_DENY
        if facts is not None and parts[1] in facts.functions:
            return sqlite3.SQLITE_OK  # a table-valued function the fence judged as a function
        if (
            read
            and not self._catalog_allowed
            and is_catalog_table(_DIALECT, ".".join(parts))
            and not self._named_in_allow_list(parts)
        ):
            return sqlite3.SQLITE_DENY
        if (
            source is not None
            and self._protects
            and self._guard.protected(".".join(parts))
            and not self._own_cte(source, facts)
        ):
            # A trigger's body (or a view's) is SQL the rewrite never saw: under row filters
            # or masks it may not read or write a filtered or masked table at all (a trigger
            # copying every tenant's rows into a table the agent reads).
            return sqlite3.SQLITE_DENY
        patterns = self._guard.patterns
        # A view hiding a denied table is still a read of that table; trigger bodies are
        # the schema owner's code, so only the statement's own writes are judged.
        if (read or source is None) and any(
            table_matches(pattern, parts, loose=True) for pattern in patterns.denied_tables
        ):
            return sqlite3.SQLITE_DENY
        if (
            source is None
            and patterns.allowed_tables is not None
            and not any(
                table_matches(pattern, parts, loose=False) for pattern in patterns.allowed_tables
            )
        ):
            return sqlite3.SQLITE_DENY
        if column and (read or source is None):
            # a generated column reads the columns it is computed from
            read_columns = {column.lower()}
            read_columns |= patterns.generated_columns.get(".".join(parts), {}).get(
                column.lower(), frozenset()
            )
            for table_pattern, column_pattern in patterns.denied_columns:
                if table_matches(table_pattern, parts, loose=True) and any(
                    fnmatchcase(name, column_pattern) for name in read_columns
                ):
                    return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _named_in_allow_list(self, parts: tuple[str, str]) -> bool:
        allowed = self._guard.patterns.allowed_set
        return allowed is not None and allowed.names(".".join(parts))


def _judged(facts: StatementFacts | None, table: str, allow_unparsed: bool) -> bool:
    """Whether the fence's facts name ``table`` (a table, view or table-valued function)."""
    if facts is None or (facts.unparsed and allow_unparsed):
        return True  # nothing judged here (the fence's own statements) or explicitly unparsed
    if table in facts.functions:
        return True
    return any(name.rpartition(".")[2].lower() == table for name in facts.tables)


DRIVER = SQLiteDriver()


_ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})  # a foreign key's that write
_REPLACES = re.compile(r"\bON\s+CONFLICT\s+REPLACE\b", re.IGNORECASE)
# Comments, as SQLite skips them between the words (ON/**/CONFLICT -- x\n REPLACE); taken out
# of string literals too, which only errs towards refusing.
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)
