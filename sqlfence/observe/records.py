"""Records: what the hooks build on the query path, turned into event JSON by the writer.

A record is a few attribute stores on the query's thread. The audit writer asks it for its
``kind()`` and its ``json_body()``; the statement record, the hot one, assembles its JSON from
fragments cached per session, decision and SQL text rather than encoding a fresh dict.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.trace import get_current_span

from sqlfence.observe.events import (
    DENIAL,
    DENIED,
    DETECTED,
    ERROR,
    FAILED,
    FETCH,
    OK,
    PROCESS_TAG,
    QUERY,
    SCHEMA_CHANGE,
    SLOW_QUERY,
    add_session,
    encode_event,
    event_head,
    iso_timestamp,
    json_text,
    jsonable,
)
from sqlfence.observe.masking import mask_literals

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from sqlfence.observe.observer import Session
    from sqlfence.observe.settings import AuditSettings
    from sqlfence.policies.engine import Decision

_MAX_ERROR_CHARS = 2000


class AuditRecord(Protocol):
    """What ``AuditLog.submit`` accepts besides a plain event dict."""

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``, to decide whether the settings want the event."""

    def json_body(
        self, seq: int, prev: str, settings: AuditSettings, kind: tuple[str, str]
    ) -> bytes:
        """The event's JSON with ``seq`` and ``prev`` inside, without its MAC; ``kind`` is
        what ``kind()`` returned."""


# Statements whose audit event was queued before their rows were known, until the audit
# writer takes the event or the rows arrive, whichever comes first (``add_rows``).
_awaiting_rows: dict[StatementRecord, None] = {}
_GONE = object()


class StatementRecord:
    """A statement sent to the driver: the token of ``started``/``finished``/``fetched``.

    Filled in on the query's thread and queued for the audit log when the driver returns;
    its rows, known later, reach the audit event through ``await_rows`` and ``add_rows``.
    """

    __slots__ = (
        "_awaiting",
        "_rows_out",
        "_truncated_out",
        "context",
        "decision",
        "duration",
        "error",
        "parameterised",
        "params",
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
        self.params: Any = None  # kept only when the audit settings record parameters
        self.parameterised = False
        self.context: Context | None = None
        self.duration = 0.0
        self.rowcount = -1
        self.error: BaseException | None = None
        self.rows: int | None = None  # for telemetry and the monitor
        self.truncated = False
        self.slow = False
        self._awaiting = False
        self._rows_out: int | None = None  # the rows the audit event carries
        self._truncated_out = False

    def await_rows(self) -> None:
        """Before queueing the event: its rows may still go into it (see ``add_rows``)."""
        self._awaiting = True
        _awaiting_rows[self] = None

    def add_rows(self, rows: int, truncated: bool) -> bool:
        """The result is done: True when the rows will be in the statement's own audit event,
        False when they need a ``fetch`` event (the writer took the event first, or it was
        queued without ``await_rows``).

        The query's thread and the audit writer race to remove the record from
        ``_awaiting_rows`` (``dict.pop`` is atomic): the rows are stored before the attempt,
        and the writer reads them only when it lost, so they land in exactly one event.
        No allocation: this runs for every statement that returns rows.
        """
        self.rows = rows
        self.truncated = truncated
        if not self._awaiting:
            return False
        self._rows_out = rows
        self._truncated_out = truncated
        return _awaiting_rows.pop(self, _GONE) is not _GONE

    def forget_rows(self) -> None:
        """The event will not wait for rows after all (it could not be queued)."""
        _awaiting_rows.pop(self, None)

    def _rows_for_event(self) -> int | None:
        """The writer's side of ``add_rows``: the rows when they came first, else None."""
        if _awaiting_rows.pop(self, _GONE) is not _GONE:
            return None  # taken before the rows were known
        return self._rows_out

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)`` of this statement."""
        if self.error is not None:
            return ERROR, FAILED
        status = DETECTED if self.decision.detected else OK
        if self.decision.facts.is_ddl:
            return SCHEMA_CHANGE, status
        return (SLOW_QUERY if self.slow else QUERY), status

    def json_body(
        self, seq: int, prev: str, settings: AuditSettings, kind: tuple[str, str]
    ) -> bytes:
        """The event as signed JSON bytes (no MAC yet), built on the writer thread.

        The hot event of every audit log, so it is assembled from fragments cached per
        session, decision and SQL text instead of encoding a fresh dict each time.
        """
        decision = self.decision
        event_type, status = kind
        head, tail = _session_fragments(self.session)
        rowcount = self.rowcount
        affected = rowcount if decision.facts.writes and rowcount >= 0 else None
        error = self.error
        parts = [
            f'{{"seq":{seq},"timestamp":"{iso_timestamp(self.ts_ns)}",{head},'
            f'"event_type":"{event_type}","query":{_queryjson_text(self.sql, settings)},'
            f'"status":"{status}","duration_ms":{round(self.duration * 1000, 3)!r},'
            f'"rows_affected":{"null" if affected is None else affected},'
            f'"error":{"null" if error is None else json_text(_error_text(error))}',
            _decision_fragment(decision),
        ]
        rows = self._rows_for_event()
        if rows is not None:
            truncated = "true" if self._truncated_out else "false"
            parts.append(f',"rows_returned":{rows},"truncated":{truncated}')
        if decision.sql != self.sql:
            parts.append(',"final_query":' + _queryjson_text(decision.sql, settings))
        if self.params is not None:
            parts.append(',"params":' + json_text(jsonable(self.params)))
        if error is not None:
            parts.append(',"error_type":' + json_text(qualified_name(error)))
        parts.append(f',{tail},"query_id":"{PROCESS_TAG}-{self.query_id}"')
        if self.context is not None:
            parts.append(_trace_fragment(self.context))
        parts.append(f',"prev":"{prev}"}}')
        return "".join(parts).encode("ascii")


class DenialRecord:
    """A statement the fence refused; nothing reached the driver."""

    __slots__ = ("context", "decision", "session", "sql", "ts_ns")

    def __init__(
        self, session: Session, sql: str, decision: Decision, context: Context | None
    ) -> None:
        self.session = session
        self.sql = sql
        self.decision = decision
        self.context = context
        self.ts_ns = time.time_ns()

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``: always a denial."""
        return DENIAL, DENIED

    def json_body(
        self, seq: int, prev: str, settings: AuditSettings, kind: tuple[str, str]
    ) -> bytes:
        """The event as signed JSON bytes (no MAC yet)."""
        session = self.session
        event = event_head(
            self.ts_ns,
            session.agent_id,
            session.tenant,
            DENIAL,
            _query_text(self.sql, settings),
            DENIED,
        )
        event["duration_ms"] = 0.0
        event["rows_affected"] = 0
        event["error"] = "; ".join(str(reason) for reason in self.decision.reasons) or "denied"
        _add_facts(event, self.decision)
        add_session(event, session)
        _add_trace(event, self.context)
        return encode_event(event, seq, prev)


class FetchRecord:
    """Rows returned by a statement whose event was already written (a write with RETURNING,
    or a result read after the connection had moved on)."""

    __slots__ = ("rows", "statement", "truncated", "ts_ns")

    def __init__(self, statement: StatementRecord, rows: int, truncated: bool) -> None:
        self.statement = statement
        self.rows = rows
        self.truncated = truncated
        self.ts_ns = time.time_ns()

    def kind(self) -> tuple[str, str]:
        """``(event_type, status)``: rows of an earlier statement."""
        return FETCH, OK

    def json_body(
        self, seq: int, prev: str, settings: AuditSettings, kind: tuple[str, str]
    ) -> bytes:
        """The event as signed JSON bytes (no MAC yet)."""
        statement = self.statement
        session = statement.session
        event = event_head(self.ts_ns, session.agent_id, session.tenant, FETCH, None, OK)
        event["rows_returned"] = self.rows
        event["truncated"] = self.truncated
        event["operation"] = statement.decision.facts.operation
        add_session(event, session)
        event["query_id"] = f"{PROCESS_TAG}-{statement.query_id}"
        _add_trace(event, statement.context)
        return encode_event(event, seq, prev)


def _query_text(sql: str, settings: AuditSettings) -> str:
    text = mask_literals(sql) if settings.mask_literals else sql
    limit = settings.max_query_chars
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more chars]"
    return text


def _add_facts(event: dict[str, Any], decision: Decision) -> None:
    facts = decision.facts
    event["operation"] = facts.operation
    event["tables"] = sorted(facts.tables)
    if facts.summary:
        event["summary"] = facts.summary
    if facts.fingerprint:
        event["fingerprint"] = facts.fingerprint
    reasons = decision.reasons
    if reasons:
        event["rule"] = ",".join(dict.fromkeys(reason.rule for reason in reasons))
        event["reason"] = "; ".join(str(reason) for reason in reasons)


def _trace_ids(context: Context | None) -> tuple[str, str] | None:
    """Trace and span id of the span that was current when the statement ran (sqlfence's
    own span for the statement is its child)."""
    if context is None:
        return None
    span_context = get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def _add_trace(event: dict[str, Any], context: Context | None) -> None:
    ids = _trace_ids(context)
    if ids is not None:
        event["trace_id"], event["span_id"] = ids


_CACHE_LIMIT = 4096
_session_cache: dict[int, tuple[Session, tuple[str, str]]] = {}
_decision_cache: dict[int, tuple[Decision, str]] = {}
_query_cache: dict[tuple[str, bool, int | None], str] = {}


def _session_fragments(session: Session) -> tuple[str, str]:
    """JSON of the session's fields: (agent and tenant, the rest). Cached per session."""
    entry = _session_cache.get(id(session))
    if entry is not None and entry[0] is session:
        return entry[1]
    head = f'"agent_id":{json_text(session.agent_id)},"tenant":{json_text(session.tenant)}'
    rest: dict[str, Any] = {}
    add_session(rest, session)
    fragments = head, json_text(rest)[1:-1]
    _remember(_session_cache, id(session), (session, fragments))
    return fragments


def _decision_fragment(decision: Decision) -> str:
    """``,"operation":...`` through ``"reason"``: the decision's fields as JSON. Cached."""
    entry = _decision_cache.get(id(decision))
    if entry is not None and entry[0] is decision:
        return entry[1]
    fields: dict[str, Any] = {}
    _add_facts(fields, decision)
    fragment = "," + json_text(fields)[1:-1]
    _remember(_decision_cache, id(decision), (decision, fragment))
    return fragment


def _queryjson_text(sql: str, settings: AuditSettings) -> str:
    key = (sql, settings.mask_literals, settings.max_query_chars)
    text = _query_cache.get(key)
    if text is None:
        text = json_text(_query_text(sql, settings))
        _remember(_query_cache, key, text)
    return text


def _trace_fragment(context: Context) -> str:
    ids = _trace_ids(context)
    return "" if ids is None else f',"trace_id":"{ids[0]}","span_id":"{ids[1]}"'


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # cheaper than LRU bookkeeping; agents repeat a few statements
    cache[key] = value


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
