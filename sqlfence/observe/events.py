"""Audit events: the design report's schema plus the correlation and integrity fields.

Records (``records.py``) become events on the writer thread. Key order of an event is
fixed: ``seq`` first, then the design report's fields (``timestamp``, ``agent_id``, ``tenant``,
``event_type``, ``query``, ``status``, ``duration_ms``, ``rows_affected``, ``error``), then what
the event carries, then ``prev`` and ``mac`` (added by the chain). Optional fields that do
not apply are left out rather than written as null.
"""

from __future__ import annotations

import datetime
import decimal
import importlib.metadata
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlfence.observe.observer import Session
    from sqlfence.observe.settings import AuditSettings

# event_type values written by sqlfence itself (the sandbox layer adds "sandbox.*").
CONNECT = "connect"
DISCONNECT = "disconnect"
QUERY = "query"
DENIAL = "denial"
ERROR = "error"
SLOW_QUERY = "slow_query"
SCHEMA_CHANGE = "schema_change"
FETCH = "fetch"
ALERT = "alert"
STATEMENT_TYPES = frozenset({QUERY, DENIAL, ERROR, SLOW_QUERY, SCHEMA_CHANGE})

# status values.
OK = "ok"
DENIED = "denied"
DETECTED = "detected"
FAILED = "error"

PROCESS_TAG = secrets.token_hex(4)  # query ids are unique across processes and restarts


def _version() -> str:
    try:
        return importlib.metadata.version("sqlfence")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


VERSION = _version()
"""sqlfence's version, written into the log's own events and the telemetry scope."""


@dataclass(frozen=True)
class AuditEvent:
    """One event read back from an audit log. Fields absent from the line are None."""

    seq: int
    timestamp: str
    event_type: str
    status: str | None = None
    agent_id: str | None = None
    tenant: str | None = None
    query: str | None = None
    duration_ms: float | None = None
    rows_affected: int | None = None
    error: str | None = None
    operation: str | None = None
    tables: tuple[str, ...] | None = None
    summary: str | None = None
    fingerprint: str | None = None
    rule: str | None = None
    reason: str | None = None
    rows_returned: int | None = None
    truncated: bool | None = None
    final_query: str | None = None
    params: Any = None
    error_type: str | None = None
    namespace: str | None = None
    sandbox: str | None = None
    db_system: str | None = None
    server: str | None = None
    connection_id: int | None = None
    query_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    details: dict[str, Any] | None = None
    prev: str | None = None
    mac: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        """Build from a decoded JSON line; keys this class does not know go to ``extra``."""
        known = {name: data[name] for name in _FIELD_NAMES if name in data}
        if isinstance(known.get("tables"), list):
            known["tables"] = tuple(known["tables"])
        extra = {key: value for key, value in data.items() if key not in _FIELD_NAMES}
        return cls(**known, extra=extra)

    @property
    def when(self) -> datetime.datetime:
        """``timestamp`` as an aware datetime (UTC)."""
        return parse_timestamp(self.timestamp)


_FIELD_NAMES = frozenset(f.name for f in fields(AuditEvent)) - {"extra"}
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent) if f.name != "extra")

_second_cache: tuple[int, str] = (-1, "")


def iso_timestamp(ts_ns: int) -> str:
    """``2025-11-23T14:30:00.123456Z`` for a ``time.time_ns()`` value."""
    global _second_cache  # noqa: PLW0603 - a one-entry cache; a torn read only recomputes
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    cached_second, prefix = _second_cache
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, prefix)
    return f"{prefix}.{nanos // 1000:06d}Z"


def parse_timestamp(text: str) -> datetime.datetime:
    """The inverse of ``iso_timestamp`` (also accepts any ISO 8601 text with an offset)."""
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def wanted(event_type: str, status: str, settings: AuditSettings) -> bool:
    """Whether ``settings`` record an event. Denials, errors, detections and slow queries
    are always recorded; ``log_*`` switch off routine queries, connections and DDL."""
    if status not in (OK, DETECTED):
        return True
    if event_type in (QUERY, FETCH):
        return settings.log_queries or status == DETECTED
    if event_type == SCHEMA_CHANGE:
        return settings.log_schema_changes or status == DETECTED
    if event_type in (CONNECT, DISCONNECT):
        return settings.log_connections
    return True


def unwanted_kinds(settings: AuditSettings) -> frozenset[tuple[str, str]]:
    """The ``(event_type, status)`` pairs of sqlfence's own events that ``settings`` skip."""
    types = (QUERY, FETCH, SCHEMA_CHANGE, CONNECT, DISCONNECT)
    return frozenset(
        (event_type, status)
        for event_type in types
        for status in (OK, DETECTED)
        if not wanted(event_type, status, settings)
    )


def session_event(session: Session, event_type: str, status: str = OK) -> dict[str, Any]:
    """An event about a connection as a whole (connect, disconnect), stamped now."""
    event = event_head(time.time_ns(), session.agent_id, session.tenant, event_type, None, status)
    add_session(event, session)
    return event


def plain_event(
    event_type: str,
    status: str = OK,
    *,
    agent_id: str | None = None,
    tenant: str | None = None,
    sandbox: str | None = None,
    details: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """An event that is not about a statement: sandbox lifecycle, alerts, the log itself."""
    event = event_head(time.time_ns(), agent_id, tenant, event_type, None, status)
    event["error"] = error
    if sandbox is not None:
        event["sandbox"] = sandbox
    if details:
        event["details"] = details
    return event


def encode_event(event: dict[str, Any], seq: int, prev: str) -> bytes:
    """``event`` with ``seq`` first and ``prev`` last, as compact ASCII JSON."""
    event["seq"] = seq  # every event dict starts with a "seq" key (see event_head)
    event.pop("prev", None)
    event.pop("mac", None)
    event["prev"] = prev
    return json_text(event).encode("ascii")


def event_head(
    ts_ns: int,
    agent_id: str | None,
    tenant: str | None,
    event_type: str,
    query: str | None,
    status: str,
) -> dict[str, Any]:
    return {
        "seq": None,
        "timestamp": iso_timestamp(ts_ns),
        "agent_id": agent_id,
        "tenant": tenant,
        "event_type": event_type,
        "query": query,
        "status": status,
        "duration_ms": None,
        "rows_affected": None,
        "error": None,
    }


def add_session(event: dict[str, Any], session: Session) -> None:
    if session.privileges:
        event["privileges"] = list(session.privileges)
    if session.client_name is not None:
        event["client_name"] = session.client_name
    if session.namespace is not None:
        event["namespace"] = session.namespace
    if session.sandbox is not None:
        event["sandbox"] = session.sandbox
    event["db_system"] = session.system
    if session.server_address is not None:
        port = session.server_port
        event["server"] = session.server_address + ("" if port is None else f":{port}")
    event["connection_id"] = session.connection_id


_encoder = json.JSONEncoder(separators=(",", ":"), check_circular=False, default=repr)
json_text = _encoder.encode
"""Compact ASCII JSON text of a value (the encoder every event uses)."""


def jsonable(value: Any) -> Any:
    """``value`` as something ``json.dumps`` accepts, without losing what it was."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return repr(value)
