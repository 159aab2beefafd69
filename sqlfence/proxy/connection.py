"""``GuardedConnection``: a PEP 249 connection whose every statement passes the fence.

There is no side door: only the PEP 249 surface (plus a guarded ``execute`` shortcut) is
exposed, never the driver's own shortcuts such as sqlite3's ``executescript``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from sqlfence import errors, exits
from sqlfence.errors import InterfaceError, PolicyViolation
from sqlfence.observe.observer import Observer, Session
from sqlfence.policies.engine import Decision, Guard
from sqlfence.policies.model import Policy
from sqlfence.policies.tables import is_catalog_table
from sqlfence.proxy.cursor import GuardedCursor
from sqlfence.proxy.drivers import Driver


def known_relations(guard: Guard) -> frozenset[str]:
    """The relations the guard's catalog holds (tables, views, their columns known)."""
    return frozenset(guard.star_columns) | frozenset(guard.table_columns) | frozenset(guard.views)


class GuardedConnection:
    """A driver connection behind a ``Guard`` and an ``Observer``."""

    # PEP 249 optional extension: the exception classes as connection attributes.
    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(
        self,
        raw: Any,
        driver: Driver,
        guard: Guard,
        observer: Observer,
        session: Session,
        before_statement: Callable[[Decision], None] | None = None,
        owns_observer: bool = True,
        relearn: Callable[[Any], Guard] | None = None,
    ) -> None:
        self._raw = raw
        self._driver = driver
        self._driver_error = driver.error_class
        self._guard = guard
        self._decide = guard.decide
        # Under row filters or masks: the catalog is learnt again for a statement naming a
        # relation it does not hold (see _decide_knowing)
        self._relearn = relearn
        self._known = frozenset[str]()
        if relearn is not None:
            self._known = known_relations(guard)
            self._decide = self._decide_knowing
        self._observer = observer
        self._owns_observer = owns_observer
        self._session = session
        self._before = before_statement
        # A hook with ``after`` is also told when the driver is done with the statement.
        self._after: Callable[[], None] | None = getattr(before_statement, "after", None)
        # Set by a sandbox: called with each allowed decision, raises to refuse (pause, quota).
        self._gate: Callable[[Decision], None] | None = None
        self._close_hooks: list[Callable[[], None]] = []
        self._closed = False
        self._cancel_requested = False  # cancel() was called: its statement's error says so
        self._lock = threading.Lock()
        observer.connected(session)
        exits.register(self, exits.CONNECTIONS)  # closed (and recorded) at exit if left open

    # -- what the fence adds ---------------------------------------------------------

    @property
    def guard(self) -> Guard:
        """The guard judging this connection's statements (usable without a database)."""
        return self._guard

    @property
    def policy(self) -> Policy:
        """The effective policy of this connection."""
        return self._guard.policy

    @property
    def session(self) -> Session:
        """Who is connected to what (agent, tenant, namespace, server)."""
        return self._session

    @property
    def agent_id(self) -> str | None:
        """The agent this connection acts for."""
        return self._session.agent_id

    @property
    def tenant(self) -> str | None:
        """The tenant of the agent."""
        return self._session.tenant

    def get_metrics(self) -> dict[str, Any]:
        """Live metrics of this connection: queries_executed, slow_queries, avg_query_time_ms..."""
        return self._observer.metrics(self._session)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until this connection's audit events, spans, metrics and alerts so far were
        handed on (written to the audit files, given to the OpenTelemetry providers)."""
        self._observer.flush(timeout)

    def decide(self, sql: str) -> Decision:
        """What the fence would do with ``sql`` on this connection, without running it."""
        return self._decide(sql)

    def check(self, sql: str) -> Decision:
        """Judge ``sql`` as ``execute`` would, without running it; a denial is recorded (audit,
        metrics) and raised as PolicyViolation, an allowed decision is returned."""
        decision = self._decide(sql)
        if not decision.allowed:
            self._deny(sql, decision)
        return decision

    def _decide_knowing(self, sql: str) -> Decision:
        """The decision on ``sql``; when it names a relation the connection's catalog does
        not hold (made since it opened: a new partition of a filtered table would be read
        whole), the catalog is learnt again first: each time, for a name the database does
        not have either (a typing error, a temporary table), since it may have one the next
        moment (a partition made on the hour, read whole in any grace period)."""
        decision = self._guard.decide(sql)
        facts = decision.facts
        tables = facts.tables if facts is not None else frozenset()
        if tables <= self._known:
            return decision
        dialect = self._guard.dialect_name
        made = facts.written if facts is not None and facts.operation == "create" else ()
        unknown = [
            t for t in tables - self._known if t not in made and not is_catalog_table(dialect, t)
        ]
        if not unknown:
            return decision
        assert self._relearn is not None
        try:
            guard = self._relearn(self._before)
        except self._driver_error as error:
            raise self._translate(error) from error
        self._guard, self._known = guard, known_relations(guard)
        return guard.decide(sql)

    def cancel(self) -> None:
        """Stop the statement running on this connection, from any thread (the way psql's
        Ctrl-C does): it raises OperationalError saying it was cancelled. Nothing happens
        when no statement runs; one that is just starting may miss it (call again).
        SQLite interrupts the statement, PostgreSQL cancels it on the server; IRIS's driver
        cannot (NotSupportedError)."""
        if self._closed:
            return
        self._cancel_requested = True
        self._driver.cancel(self._raw)

    def _translate(self, error: BaseException) -> errors.Error:
        """The sqlfence error for a driver error, saying so when cancel() stopped it."""
        translated = self._driver.translate(error)
        if self._guard.policy.hides_values:
            # PostgreSQL's DETAIL may show a hidden row's values (a NOT NULL or CHECK error's
            # "Failing row contains" shows every column): from the driver's error too, which
            # stays chained to the one raised (and is printed with its traceback)
            sqlstate = str(getattr(error, "sqlstate", "") or "")
            _withhold_detail(translated, sqlstate)
            _withhold_detail(error, sqlstate)
        if self._cancel_requested and self._driver.was_cancelled(error):
            self._cancel_requested = False
            translated.args = ("statement cancelled: cancel() was called while it ran",)
        return translated

    def _deny(self, sql: str, decision: Decision) -> None:
        self._observer.denied(self._session, sql, decision)
        raise PolicyViolation(decision.explain(), decision)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once when this connection closes (used by sandboxes and pools)."""
        self._close_hooks.append(hook)

    # -- PEP 249 ---------------------------------------------------------------------

    def cursor(self) -> GuardedCursor:
        """A new guarded cursor."""
        self._check_open()
        try:
            raw = self._driver.open_cursor(self._raw)
        except self._driver_error as error:
            raise self._translate(error) from error
        self._driver.prepare_cursor(raw, self._guard)
        return GuardedCursor(self, raw)

    def execute(self, operation: str, parameters: Any = None) -> GuardedCursor:
        """Shortcut: a new cursor that has executed ``operation`` (guarded like any other)."""
        return self.cursor().execute(operation, parameters)

    def executemany(self, operation: str, seq_of_parameters: Any) -> GuardedCursor:
        """Shortcut: a new cursor that has run ``operation`` for every parameter set."""
        return self.cursor().executemany(operation, seq_of_parameters)

    @property
    def paramstyle(self) -> str:
        """This connection's placeholder style (PEP 249): ``qmark`` (``?``) on SQLite and
        IRIS, ``pyformat`` (``%s``, ``%(name)s``) on PostgreSQL."""
        return self._driver.paramstyle

    def commit(self) -> None:
        """Commit the current transaction."""
        self._check_open()
        try:
            self._raw.commit()
        except self._driver_error as error:
            raise self._translate(error) from error

    def rollback(self) -> None:
        """Roll back the current transaction."""
        self._check_open()
        try:
            self._raw.rollback()
        except self._driver_error as error:
            raise self._translate(error) from error

    def close(self) -> None:
        """Close the connection and record it. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        exits.unregister(self, exits.CONNECTIONS)
        try:
            self._raw.close()
        except self._driver_error as error:
            raise self._translate(error) from error
        finally:
            self._observer.disconnected(self._session)
            if self._owns_observer:
                self._observer.close()
            for hook in self._close_hooks:
                hook()

    def at_exit(self) -> None:
        """The interpreter exits with the connection open: close it, so its disconnect is
        recorded before the audit log closes."""
        self.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    @property
    def autocommit(self) -> bool:
        """The driver's autocommit mode, where it has one."""
        if hasattr(self._raw, "autocommit"):
            return bool(self._raw.autocommit)
        return getattr(self._raw, "isolation_level", "") is None

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if hasattr(self._raw, "autocommit"):
            self._raw.autocommit = value
        elif hasattr(self._raw, "isolation_level"):
            self._raw.isolation_level = None if value else ""
        else:
            raise errors.NotSupportedError(f"{self._driver.name} has no autocommit switch")

    def __enter__(self) -> GuardedConnection:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        """Commit on success, roll back on error, then close."""
        try:
            if not self._closed:
                if exc_type is None:
                    self.commit()
                else:
                    self.rollback()
        finally:
            self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("connection is closed")

    def __repr__(self) -> str:
        session = self._session
        where = session.namespace or session.server_address or "?"
        agent = f" agent={session.agent_id}" if session.agent_id else ""
        state = " closed" if self._closed else ""
        return f"<sqlfence.GuardedConnection {session.system}:{where}{agent}{state}>"


def _withhold_detail(error: BaseException, sqlstate: str) -> None:
    """Under a policy that hides values, a database error keeps its first line only: the
    detail of a constraint's error names the conflicting row's values (an exclusion
    constraint's, another tenant's). A data exception's line (SQLSTATE class 22) loses the
    value it quotes: which row the database reached first, and so named, follows the plan,
    which follows every tenant's statistics (``invalid input syntax for type integer:
    "x13_2"``)."""
    if getattr(error, "_info", None) is not None:  # psycopg: diag and pgresult hold it all
        error._info = None  # type: ignore[attr-defined]
    if getattr(error, "_pgconn", None) is not None:
        error._pgconn = None  # type: ignore[attr-defined]
    text = str(error.args[0]) if error.args else ""
    first, _, rest = text.partition("\n")
    if sqlstate.startswith("22"):
        quoted = _QUOTED.sub('"..."', first)
        if quoted != first:
            error.args = (
                f"{quoted} (the value is withheld: the connection's policy hides values)",
            )
            return
    if rest.strip():
        error.args = (f"{first} (its detail is withheld: the connection's policy hides values)",)


_QUOTED = re.compile(r'"(?:[^"]|"")*"')
