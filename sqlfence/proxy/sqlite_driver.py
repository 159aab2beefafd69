"""SQLite: ``sqlite:///path.db`` and ``sqlite://`` (memory), hardened inside the engine.

The second layer here is SQLite's own: ``PRAGMA query_only`` for read-only policies, a
progress handler that interrupts a statement past its deadline, and an authorizer that
checks every table, column and function the engine touches against the policy.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from sqlfence.errors import ConfigurationError, Error, PolicyViolation
from sqlfence.observe.observer import Session
from sqlfence.policies.engine import Guard
from sqlfence.policies.tables import table_matches
from sqlfence.proxy.drivers import ConnectionURL, Driver

_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
# Engine actions that are statement kinds of their own, allowed only when the policy names them.
_STATEMENT_ACTIONS = {
    sqlite3.SQLITE_ATTACH: "attach",
    sqlite3.SQLITE_DETACH: "detach",
    sqlite3.SQLITE_PRAGMA: "pragma",
}
_PROGRESS_STEPS = 1000  # virtual machine instructions between deadline checks


class SQLiteDriver(Driver):
    """The standard library's sqlite3."""

    name = "sqlite"
    schemes = ("sqlite", "sqlite3")
    module_name = "sqlite3"
    dialect = "sqlite"
    system = "sqlite"
    default_schema = "main"

    def connect(self, url: ConnectionURL, guard: Guard, kwargs: dict[str, Any]) -> Any:
        path = url.database or ":memory:"
        if url.host:
            raise ConfigurationError(
                f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, "
                f"not a host named {url.host!r}"
            )
        options: dict[str, Any] = dict(url.options)
        options.update(kwargs)
        if "mode" in options and not path.startswith("file:"):
            path = f"file:{path}?mode={options.pop('mode')}"
            options["uri"] = True
        if "timeout" in options:
            options["timeout"] = float(options["timeout"])
        options.setdefault("check_same_thread", False)
        return self.module.connect(path, **options)

    def session(self, url: ConnectionURL | None, raw: Any) -> Session:
        namespace = (url.database or ":memory:") if url is not None else None
        return Session(system=self.system, namespace=namespace)

    def harden(self, raw: Any, guard: Guard, opened: bool) -> Callable[[], None] | None:
        policy = guard.policy
        enforce = policy.mode == "enforce"  # detect mode records violations, so lets them run
        if policy.read_only and enforce:
            raw.execute("PRAGMA query_only = ON")
        if hasattr(raw, "set_authorizer") and enforce:
            raw.set_authorizer(_Authorizer(guard))
        if policy.statement_timeout_ms is None:
            return None
        deadline = _Deadline(policy.statement_timeout_ms / 1000)
        raw.set_progress_handler(deadline.expired, _PROGRESS_STEPS)
        return deadline.arm

    def translate(self, error: BaseException) -> Error:
        message = str(error)
        if message.startswith("not authorized") or message.endswith("is prohibited"):
            return PolicyViolation(f"denied by the engine-side policy check: {message}")
        return super().translate(error)

    def describe(self, error: BaseException) -> str:
        message = str(error)
        if message == "interrupted":
            return "statement interrupted: it ran past the policy's statement_timeout_ms"
        return message


class _Deadline:
    """The statement deadline a progress handler checks; re-armed before each statement."""

    __slots__ = ("_at", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = float("inf")

    def arm(self) -> None:
        self._at = time.monotonic() + self._seconds

    def expired(self) -> int:
        return 1 if time.monotonic() > self._at else 0


class _Authorizer:
    """Engine-side check: denied tables, columns and functions, allow lists, ATTACH/PRAGMA."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._denied_functions = guard.denied_functions

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if action == sqlite3.SQLITE_READ or action in _WRITES:
            return self._table(arg1, arg2, db, source, action == sqlite3.SQLITE_READ)
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            return sqlite3.SQLITE_DENY if name in self._denied_functions else sqlite3.SQLITE_OK
        kind = _STATEMENT_ACTIONS.get(action)
        if kind is not None and not self._guard.policy.allows_statement(kind):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _table(
        self, table: str | None, column: str | None, db: str | None, source: str | None, read: bool
    ) -> int:
        if not table:
            return sqlite3.SQLITE_OK
        parts = ((db or "main").lower(), table.lower())
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
            for table_pattern, column_pattern in patterns.denied_columns:
                if table_matches(table_pattern, parts, loose=True) and fnmatchcase(
                    column.lower(), column_pattern
                ):
                    return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


DRIVER = SQLiteDriver()
