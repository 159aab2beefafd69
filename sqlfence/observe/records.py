"""Records: what the hooks build on the query path, turned into audit lines by the writer.

A record is a few attribute stores on the query's thread. The audit writer asks it for its
``kind()`` and its ``values()`` and renders them by the record's layout (``lines.py``); the
record's session and decision fields are rendered once per connection and decision there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import get_current_span

from sqlfence.observe.events import PROCESS_TAG, iso_timestamp, jsonable
from sqlfence.observe.schema import (
    DENIAL,
    DENIAL_LAYOUT,
    DENIED,
    DETECTED,
    ERROR,
    FAILED,
    FETCH,
    FETCH_LAYOUT,
    OK,
    QUERY,
    SCHEMA_CHANGE,
    SLOW_QUERY,
    STATEMENT_LAYOUT,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from sqlfence.observe.observer import Session
    from sqlfence.observe.steps import Link
    from sqlfence.policies.engine import Decision

_MAX_ERROR_CHARS = 2000


class StatementRecord:
    """A statement sent to the driver: the token of ``started``/``finished``/``fetched``.

    Filled in on the query's thread and queued for the audit log when the driver returns;
    its rows, known later, reach the audit event through ``await_rows`` and ``add_rows``.
    """

    layout = STATEMENT_LAYOUT
    __slots__ = (
        "_claim",
        "_rows_out",
        "_truncated_out",
        "caller_token",
        "context",
        "decision",
        "duration",
        "error",
        "link",
        "parameterised",
        "params",
        "phase",
        "query_id",
        "rowcount",
        "rows",
        "session",
        "slow",
        "sql",
        "t0",
        "truncated",
        "ts_ns",
    )

    def __init__(
        self, session: Session, sql: str, decision: Decision, t0: float, ts_ns: int, query_id: int
    ) -> None:
        self.session = session
        self.sql = sql
        self.decision = decision
        self.t0 = t0
        self.ts_ns = ts_ns
        self.query_id = query_id
        self.phase = 0  # the step of the statement the pipeline is at (pipeline.STARTED...)
        self.link: Link | None = None  # the pipeline's per-connection state
        self.caller_token: object = None  # what a caller's Observer returned from started
        self.params: Any = None  # kept only when the audit settings record parameters
        self.parameterised = False
        self.context: Context | None = None
        self.duration = 0.0
        self.rowcount = -1
        self.error: BaseException | None = None
        self.rows: int | None = None  # for telemetry and the monitor
        self.truncated = False
        self.slow = False
        # While the event may still take its rows: one token, taken by whichever of the
        # query's thread (the rows came first) and the writer (it came first) pops it.
        self._claim: list[None] | None = None
        self._rows_out: int | None = None  # the rows the audit event carries
        self._truncated_out = False

    def await_rows(self) -> None:
        """Before queueing the event: its rows may still go into it (see ``add_rows``)."""
        self._claim = [None]

    def add_rows(self, rows: int, truncated: bool) -> bool:
        """The result is done: store the rows and ``claim_rows``."""
        self.rows = rows
        self.truncated = truncated
        return self.claim_rows()

    def claim_rows(self) -> bool:
        """True when ``rows`` will be in the statement's own audit event, False when they
        need a ``fetch`` event (the writer took the event first, or it was queued without
        ``await_rows``).

        The query's thread and the audit writer race to pop the one token (``list.pop`` is
        atomic): the rows are stored before the attempt, and the writer reads them only when
        it lost, so they land in exactly one event. No allocation: this runs for every
        statement that returns rows.
        """
        rows = self.rows
        truncated = self.truncated
        claim = self._claim
        if claim is None:
            return False
        self._rows_out = rows
        self._truncated_out = truncated
        try:
            claim.pop()
        except IndexError:
            return False
        return True

    def forget_rows(self) -> None:
        """The event will not wait for rows after all (it could not be queued)."""
        self._claim = None

    def _rows_for_event(self) -> int | None:
        """The writer's side of ``add_rows``: the rows when they came first, else None."""
        claim = self._claim
        if claim is None:
            return None
        try:
            claim.pop()
        except IndexError:
            return self._rows_out  # the query's thread took the token: the rows are in
        return None  # taken before the rows were known

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)`` of this statement."""
        if self.error is not None:
            return ERROR, FAILED
        status = DETECTED if self.decision.detected else OK
        if self.decision.facts.is_ddl:
            return SCHEMA_CHANGE, status
        return (SLOW_QUERY if self.slow else QUERY), status

    def values(self, kind: tuple[str, str]) -> dict[str, Any]:
        """The event's own values (built on the writer thread)."""
        decision = self.decision
        rowcount = self.rowcount
        error = self.error
        rows = self._rows_for_event()
        trace_id, span_id = _trace_ids(self.context)
        return {
            "timestamp": iso_timestamp(self.ts_ns),
            "event_type": kind[0],
            "query": self.sql,
            "status": kind[1],
            "duration_ms": round(self.duration * 1000, 3),
            "rows_affected": rowcount if decision.facts.writes and rowcount >= 0 else None,
            "error": None if error is None else _error_text(error),
            "rows_returned": rows,
            "truncated": None if rows is None else self._truncated_out,
            "final_query": None if decision.sql == self.sql else decision.sql,
            "params": None if self.params is None else jsonable(self.params),
            "error_type": None if error is None else qualified_name(error),
            "query_id": f"{PROCESS_TAG}-{self.query_id}",
            "trace_id": trace_id,
            "span_id": span_id,
        }


class DenialRecord:
    """A statement the fence refused; nothing reached the driver."""

    layout = DENIAL_LAYOUT
    __slots__ = ("context", "decision", "link", "session", "sql", "ts_ns")

    def __init__(
        self, session: Session, sql: str, decision: Decision, context: Context | None
    ) -> None:
        self.link: Link | None = None  # the pipeline's per-connection state
        self.session = session
        self.sql = sql
        self.decision = decision
        self.context = context
        self.ts_ns = time.time_ns()

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``: always a denial."""
        return DENIAL, DENIED

    def values(self, kind: tuple[str, str]) -> dict[str, Any]:
        """The event's own values."""
        trace_id, span_id = _trace_ids(self.context)
        reasons = "; ".join(str(reason) for reason in self.decision.reasons)
        return {
            "timestamp": iso_timestamp(self.ts_ns),
            "event_type": DENIAL,
            "query": self.sql,
            "status": DENIED,
            "duration_ms": 0.0,
            "rows_affected": 0,
            "error": reasons or "denied",
            "trace_id": trace_id,
            "span_id": span_id,
        }


class FetchRecord:
    """Rows returned by a statement whose event was already written (a write with RETURNING,
    or a result read after the connection had moved on)."""

    layout = FETCH_LAYOUT
    __slots__ = ("rows", "statement", "truncated", "ts_ns")

    def __init__(self, statement: StatementRecord, rows: int, truncated: bool) -> None:
        self.statement = statement
        self.rows = rows
        self.truncated = truncated
        self.ts_ns = time.time_ns()

    @property
    def session(self) -> Session:
        """The statement's connection."""
        return self.statement.session

    @property
    def decision(self) -> Decision:
        """The statement's decision."""
        return self.statement.decision

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``: rows of an earlier statement."""
        return FETCH, OK

    def values(self, kind: tuple[str, str]) -> dict[str, Any]:
        """The event's own values."""
        statement = self.statement
        trace_id, span_id = _trace_ids(statement.context)
        return {
            "timestamp": iso_timestamp(self.ts_ns),
            "event_type": FETCH,
            "query": None,
            "status": OK,
            "duration_ms": None,
            "rows_affected": None,
            "error": None,
            "rows_returned": self.rows,
            "truncated": self.truncated,
            "query_id": f"{PROCESS_TAG}-{statement.query_id}",
            "trace_id": trace_id,
            "span_id": span_id,
        }


_NO_IDS: tuple[str | None, str | None] = (None, None)
# The last context read and its ids: the statements of a request (or of a program with no
# span at all) share one context object, read again for each event. One entry, replaced
# whole, so a writer thread never sees another's half (a torn read only reads again).
_last_ids: tuple[object, tuple[str | None, str | None]] = (None, _NO_IDS)


def _trace_ids(context: Context | None) -> tuple[str | None, str | None]:
    """Trace and span id of the span that was current when the statement ran (sqlfence's
    own span for the statement is its child)."""
    global _last_ids  # noqa: PLW0603 - a one-entry cache, as iso_timestamp's
    if context is None:
        return _NO_IDS
    last, ids = _last_ids
    if last is context:
        return ids
    span_context = get_current_span(context).get_span_context()
    if span_context.is_valid:
        ids = f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
    else:
        ids = _NO_IDS
    _last_ids = (context, ids)
    return ids


def qualified_name(error: BaseException) -> str:
    """``module.QualName`` of an exception's class (builtins without the module)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "..."


def snapshot_params(params: Any) -> Any:
    """A copy of statement parameters that later mutation by the caller cannot change.

    Iterators (``executemany`` may get a generator) are never consumed here.
    """
    if params is None or isinstance(params, (tuple, str, bytes)):
        return params
    if isinstance(params, list):
        return list(params)
    if isinstance(params, dict):
        return dict(params)
    return f"<{type(params).__name__}>"
