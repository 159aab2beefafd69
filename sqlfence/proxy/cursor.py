"""``GuardedCursor``: every statement is decided before the driver sees it; rows are capped.

Only ``execute``, ``executemany`` and ``callproc`` are intercepted; the rest is a thin pass
through. The hot path for a statement seen before is a dictionary lookup, two observer calls
and the driver call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlfence.errors import (
    DataError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
    RowLimitExceeded,
)

if TYPE_CHECKING:
    from sqlfence.policies.engine import Decision
    from sqlfence.proxy.connection import GuardedConnection


_PARAMETER_TYPES = (tuple, list, dict)
_VALUE_ERRORS = (UnicodeError, OverflowError, TypeError)


def _check_parameters(parameters: object) -> None:
    """PEP 249 parameters are a sequence or a mapping; anything else is the caller's error."""
    if isinstance(parameters, (str, bytes)) or not isinstance(parameters, (Sequence, Mapping)):
        raise ProgrammingError(
            f"parameters must be a sequence or a mapping, not {type(parameters).__name__}"
        )


class GuardedCursor:
    """A PEP 249 cursor over a driver cursor, through the connection's guard and observer."""

    __slots__ = (
        "_after",
        "_before",
        "_cap",
        "_closed",
        "_connection",
        "_cut_raises",
        "_decide",
        "_decided",
        "_decision",
        "_fetched",
        "_filled_at",
        "_finished",
        "_pending",
        "_raw",
        "_returned",
        "_session",
        "_started",
        "_token",
        "_truncated",
    )

    def __init__(self, connection: GuardedConnection, raw: Any) -> None:
        self._connection = connection
        self._raw = raw
        # What every statement uses, fixed for the connection's life, looked up once here
        # rather than through the connection on each call (the sandbox's gate is not: it is
        # set after the connection is made, so it is read from the connection each time).
        observer = connection._observer
        self._session = connection._session
        self._decide = connection._decide
        self._started = observer.started
        self._finished = observer.finished
        self._fetched = observer.fetched
        self._before = connection._before
        self._after = connection._after
        # on_row_limit: error asks for one row more, so a cut is always seen (and raised).
        self._cut_raises = connection._guard.policy.on_row_limit == "error"
        self._decision: Decision | None = None
        # The text ``_decision`` is on: the same str object again is the same decision (a
        # guard's decision depends only on the text), so it is not looked up again.
        self._decided: str | None = None
        self._token: object = None  # the observer's, handed back to it
        self._cap: int | None = None
        # The row count at which the last decision's injected LIMIT may have cut its result
        # (-1 when none can have: not rewritten, or on_row_limit: error sees every cut).
        self._filled_at = -1
        self._returned = 0
        self._truncated = False
        self._pending = False
        self._closed = False

    # -- what the fence adds ---------------------------------------------------------

    @property
    def connection(self) -> GuardedConnection:
        """The guarded connection this cursor belongs to (PEP 249 extension)."""
        return self._connection

    @property
    def decision(self) -> Decision | None:
        """The decision on the last statement executed (or denied) with this cursor."""
        return self._decision

    @property
    def truncated(self) -> bool:
        """True when the row cap may have cut this result: more rows existed than returned."""
        return self._truncated or self._returned == self._filled_at

    # -- statements ------------------------------------------------------------------

    def execute(self, operation: str, parameters: Any = None) -> GuardedCursor:
        """Decide, then run ``operation``. Raises PolicyViolation when denied."""
        if parameters is not None and type(parameters) not in _PARAMETER_TYPES:
            _check_parameters(parameters)
        token = self._start(operation, parameters)
        decision = self._decision
        assert decision is not None  # set by _start
        try:
            if parameters is None:
                self._raw.execute(decision.sql)
            else:
                self._raw.execute(decision.sql, parameters)
        except self._connection._driver_error as error:
            raise self._failed(token, error) from error
        except _VALUE_ERRORS as error:  # a value the driver cannot send: the caller's data
            raise self._bad_value(token, error) from error
        finally:
            if self._after is not None:
                self._after()
        # _ran, inline: this is the hot path
        self._finished(self._session, token, self._raw.rowcount, None)
        self._token = token
        self._cap = decision.max_rows
        self._returned = 0
        self._truncated = False
        self._pending = True
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> GuardedCursor:
        """Decide once, then run ``operation`` for every parameter set."""
        if isinstance(seq_of_parameters, (str, bytes)) or not hasattr(
            seq_of_parameters, "__iter__"
        ):
            raise ProgrammingError(
                "executemany() takes a sequence of parameter sets, not "
                f"{type(seq_of_parameters).__name__}"
            )
        token = self._start(operation, seq_of_parameters)
        decision = self._decision
        assert decision is not None  # set by _start
        try:
            self._raw.executemany(decision.sql, seq_of_parameters)
        except self._connection._driver_error as error:
            raise self._failed(token, error) from error
        except _VALUE_ERRORS as error:
            raise self._bad_value(token, error) from error
        finally:
            if self._after is not None:
                self._after()
        self._ran(decision, token)
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()) -> Sequence[Any]:
        """Call a stored procedure, judged as ``CALL procname(...)`` by the policy."""
        mark = "%s" if self._connection._guard.dialect_name == "postgres" else "?"
        marks = ", ".join(mark for _ in parameters)
        token = self._start(f"CALL {procname}({marks})", parameters)
        decision = self._decision
        assert decision is not None  # set by _start
        if not hasattr(self._raw, "callproc"):
            name = self._connection._driver.name
            unsupported = NotSupportedError(f"the {name} driver has no callproc()")
            self._finished(self._session, token, -1, unsupported)
            raise unsupported
        try:
            result = self._raw.callproc(procname, parameters)
        except self._connection._driver_error as error:
            raise self._failed(token, error) from error
        self._ran(decision, token)
        return result if result is not None else parameters

    def _start(self, operation: str, parameters: Any) -> object:
        """Decide (into ``_decision``); refuse (denied, paused, over quota) or record the
        start. Returns the observer's token."""
        if self._pending:  # _finish, inline: a statement usually follows a finished result
            self._pending = False
            returned = self._returned
            self._fetched(
                self._session,
                self._token,
                returned,
                self._truncated or returned == self._filled_at,
            )
        if self._closed:
            raise InterfaceError("cursor is closed")
        if type(operation) is not str and not isinstance(operation, str):
            raise ProgrammingError(
                f"the SQL operation must be a str, not {type(operation).__name__}"
            )
        connection = self._connection
        if connection._cancel_requested:  # a cancel() for no statement: not this one's
            connection._cancel_requested = False
        if operation is self._decided:  # the statement again: its decision and cut point
            decision = self._decision
            assert decision is not None
        else:
            decision = self._decision = self._decide(operation)
            self._decided = operation if type(operation) is str else None
            rows = decision.max_rows
            self._filled_at = (
                rows if decision.rewritten and rows is not None and not self._cut_raises else -1
            )
        if not decision.allowed:
            connection._deny(operation, decision)
        if connection._gate is not None:
            connection._gate(decision)
        token = self._started(self._session, operation, decision, parameters)
        if self._before is not None:
            self._before(decision)
        return token

    def _failed(self, token: object, error: BaseException) -> Exception:
        """Record the driver's error; the sqlfence error to raise in its place."""
        self._finished(self._session, token, -1, error)
        return self._connection._translate(error)

    def _bad_value(self, token: object, error: Exception) -> DataError | ProgrammingError:
        """Record a parameter the driver could not send; the DataError to raise instead."""
        self._finished(self._session, token, -1, error)
        if isinstance(error, TypeError):  # psycopg: a mapping for %s, a sequence for %(x)s
            return ProgrammingError(f"the parameters do not fit the statement: {error}")
        what = "cannot be encoded" if isinstance(error, UnicodeError) else "is out of range"
        return DataError(f"a parameter value {what} for the database: {error}")

    def _ran(self, decision: Decision, token: object) -> None:
        """Record success; the result set (if any) is now open for fetching."""
        self._finished(self._session, token, self._raw.rowcount, None)
        self._token = token
        self._cap = decision.max_rows
        self._returned = 0
        self._truncated = False
        self._pending = True

    # -- results ---------------------------------------------------------------------

    def fetchone(self) -> Any:
        """The next row, or None when the result (or the row cap) is exhausted."""
        try:
            row = self._raw.fetchone()
        except self._connection._driver_error as error:
            raise self._connection._translate(error) from error
        cap = self._cap
        if row is None or (cap is not None and self._returned >= cap):
            if row is not None:
                self._cut()
            if self._pending:
                self._finish()
            return None
        self._returned += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` rows (default ``arraysize``), never past the row cap."""
        if size is None:
            size = self._raw.arraysize
        elif type(size) is not int or size < 0:
            raise ProgrammingError(f"fetchmany() takes a row count >= 0, not {size!r}")
        cap = self._cap
        room = size if cap is None else min(size, cap - self._returned)
        rows = self._fetch(room) if room > 0 else []
        self._returned += len(rows)
        if len(rows) < size:  # the result or the row cap is exhausted
            if cap is not None and self._returned >= cap and self._fetch(1):
                self._cut()
            if self._pending:
                self._finish()
        return rows

    def fetchall(self) -> list[Any]:
        """Every remaining row, never past the row cap (``truncated`` says when it cut)."""
        cap = self._cap
        cut = False
        try:
            if cap is None:
                rows = list(self._raw.fetchall())
            else:
                room = cap - self._returned
                rows = list(self._raw.fetchmany(room)) if room > 0 else []
                cut = len(rows) == room and self._raw.fetchone() is not None
        except self._connection._driver_error as error:
            raise self._connection._translate(error) from error
        self._returned += len(rows)
        if cap is not None and cut:
            self._cut()
        if self._pending:
            self._finish()
        return rows

    def _cut(self) -> None:
        """More rows exist than the cap lets through: flag it, or raise under
        ``on_row_limit: error`` (the statement is recorded first)."""
        self._truncated = True
        if self._cut_raises:
            if self._pending:
                self._finish()
            raise RowLimitExceeded(
                f"the result has more than {self._cap} rows, the policy's max_rows "
                "(on_row_limit: error): narrow the query, or page it with LIMIT/OFFSET"
            )

    def _fetch(self, size: int) -> list[Any]:
        try:
            return list(self._raw.fetchmany(size))
        except self._connection._driver_error as error:
            raise self._connection._translate(error) from error

    def _finish(self) -> None:
        """The result set is done: report how many rows the caller got."""
        self._pending = False
        returned = self._returned
        self._fetched(
            self._session, self._token, returned, self._truncated or returned == self._filled_at
        )

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    # -- pass-through ------------------------------------------------------------------

    @property
    def description(self) -> Any:
        """Column descriptions of the last result (PEP 249)."""
        return self._raw.description

    @property
    def rowcount(self) -> int:
        """Rows affected or returned by the last statement; -1 when unknown."""
        return int(self._raw.rowcount)

    @property
    def lastrowid(self) -> Any:
        """The row id of the last inserted row, where the driver has it."""
        return getattr(self._raw, "lastrowid", None)

    @property
    def arraysize(self) -> int:
        """Rows ``fetchmany()`` returns by default."""
        return int(self._raw.arraysize)

    @arraysize.setter
    def arraysize(self, size: int) -> None:
        self._raw.arraysize = size

    def setinputsizes(self, sizes: Any) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def close(self) -> None:
        """Close the cursor; reports the pending result first. Safe to call twice."""
        if self._closed:
            return
        if self._pending:
            self._finish()
        self._closed = True
        try:
            self._raw.close()
        except self._connection._driver_error as error:
            raise self._connection._translate(error) from error

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def __enter__(self) -> GuardedCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<sqlfence.GuardedCursor {state} on {self._connection!r}>"
