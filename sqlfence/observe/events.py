"""Audit events: the event types, the events that are not statements (``SandboxEvent``, the
one shape of a sandbox's lifecycle), and ``AuditEvent``, an event read back from a log.

What each kind of event holds, in which order, is declared once in ``schema.py``; the
writer (``lines.py``) renders by it and ``AuditEvent`` knows its fields from it.
"""

from __future__ import annotations

import datetime
import decimal
import importlib.metadata
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sqlfence.observe.lines import encode_event, json_text, session_fields
from sqlfence.observe.schema import (
    ALERT,
    CONNECT,
    DENIAL,
    DENIED,
    DETECTED,
    DISCONNECT,
    ERROR,
    FAILED,
    FETCH,
    FIELD_NAMES,
    OK,
    QUERY,
    SCHEMA_CHANGE,
    SESSION,
    SLOW_QUERY,
    STATEMENT_TYPES,
)

if TYPE_CHECKING:
    from sqlfence.observe.observer import Session
    from sqlfence.observe.settings import AuditSettings

__all__ = [  # the event types and statuses are read from here by the CLI and integrations
    "ALERT",
    "CONNECT",
    "DENIAL",
    "DENIED",
    "DETECTED",
    "DISCONNECT",
    "ERROR",
    "FAILED",
    "FETCH",
    "OK",
    "QUERY",
    "SCHEMA_CHANGE",
    "SLOW_QUERY",
    "STATEMENT_TYPES",
    "COLUMNS",
    "PROCESS_TAG",
    "SANDBOX_FAILURES",
    "VERSION",
    "AuditEvent",
    "SandboxEvent",
    "encode_event",
    "iso_timestamp",
    "json_text",
    "jsonable",
    "parse_timestamp",
    "plain_event",
    "session_event",
    "unwanted_kinds",
    "wanted",
]

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
    row_filters: tuple[str, ...] | None = None
    masks: tuple[str, ...] | None = None
    rows_returned: int | None = None
    truncated: bool | None = None
    final_query: str | None = None
    params: Any = None
    error_type: str | None = None
    privileges: tuple[str, ...] | None = None
    client_name: str | None = None
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
        for name in ("tables", "privileges", "row_filters", "masks"):
            if isinstance(known.get(name), list):
                known[name] = tuple(known[name])
        extra = {key: value for key, value in data.items() if key not in _FIELD_NAMES}
        return cls(**known, extra=extra)

    @property
    def when(self) -> datetime.datetime:
        """``timestamp`` as an aware datetime (UTC)."""
        return parse_timestamp(self.timestamp)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent) if f.name != "extra")
"""AuditEvent's fields: every key of ``schema.py``'s layouts, in a reading order."""
_FIELD_NAMES = frozenset(COLUMNS)
if frozenset(FIELD_NAMES) != _FIELD_NAMES:  # the schema is the declaration; keep in step
    raise ImportError(f"AuditEvent and the schema differ: {_FIELD_NAMES ^ set(FIELD_NAMES)}")

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
    event = _head(event_type, status, session.agent_id, session.tenant)
    values = session_fields(session)
    for entry in SESSION:
        value = values[entry.name]
        if value is not None or not entry.optional:
            event[entry.name] = value
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
    event = _head(event_type, status, agent_id, tenant)
    event["error"] = error
    if sandbox is not None:
        event["sandbox"] = sandbox
    if details:
        event["details"] = details
    return event


SANDBOX_FAILURES = frozenset(
    {"quota_exceeded", "connection_refused", "snapshot_refused", "container_failed"}
)
"""The sandbox steps that record a refusal or a failure (status ``error``), not a step that
went well."""


@dataclass(frozen=True)
class SandboxEvent:
    """One step of a sandbox's life (created, connected, paused, snapshot_created,
    quota_exceeded, destroyed ...): the one event the sandbox hands to every destination.

    ``details`` are the step's own fields (``location``, ``snapshot``, ``size_bytes`` ...).
    A destination reads it as it needs it: ``as_dict()`` is what a caller's ``on_event``
    gets, ``audit_event()`` the ``sandbox.*`` line the audit log writes.
    """

    kind: str
    sandbox: str
    agent_id: str | None
    tenant: str | None
    backend: str
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    at: float = field(default_factory=time.time)  # epoch seconds

    @property
    def event_type(self) -> str:
        """``sandbox.<kind>``, the event's name in the audit log and in ``as_dict()``."""
        return f"sandbox.{self.kind}"

    @property
    def status(self) -> str:
        """``error`` for a refusal or failure (``SANDBOX_FAILURES``), else ``ok``."""
        return ERROR if self.kind in SANDBOX_FAILURES else OK

    def as_dict(self) -> dict[str, Any]:
        """``{"event": "sandbox.<kind>", "at": ..., "sandbox", "agent_id", "tenant",
        "backend", **details}`` and ``error`` when there is one: ``on_event``'s argument."""
        event = {
            "event": self.event_type,
            "at": self.at,
            "sandbox": self.sandbox,
            "agent_id": self.agent_id,
            "tenant": self.tenant,
            "backend": self.backend,
            **self.details,
        }
        if self.error is not None:
            event["error"] = self.error
        return event

    def audit_event(self) -> dict[str, Any]:
        """The audit log's event, stamped now: a plain event whose ``details`` are the
        backend and the step's own fields."""
        return plain_event(
            self.event_type,
            self.status,
            agent_id=self.agent_id,
            tenant=self.tenant,
            sandbox=self.sandbox,
            error=self.error,
            details={"backend": self.backend, **self.details},
        )


def _head(event_type: str, status: str, agent_id: str | None, tenant: str | None) -> dict[str, Any]:
    """The design report's fields of an event stamped now (``seq`` is the writer's)."""
    return {
        "seq": None,
        "timestamp": iso_timestamp(time.time_ns()),
        "agent_id": agent_id,
        "tenant": tenant,
        "event_type": event_type,
        "query": None,
        "status": status,
        "duration_ms": None,
        "rows_affected": None,
        "error": None,
    }


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
