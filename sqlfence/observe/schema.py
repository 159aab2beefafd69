"""What an audit line holds: the event types and statuses, and for each kind of event the
fields it carries, in the order they are written.

This is the one declaration of the line format. The writer (``lines.py``) renders events
by these layouts and the reader (``AuditEvent`` in ``events.py``) takes its field names from
them, so adding a field means adding it here (and giving it a value where it is known).
The key order is fixed: ``seq`` first, then the design report's fields (``timestamp``,
``agent_id``, ``tenant``, ``event_type``, ``query``, ``status``, ``duration_ms``,
``rows_affected``, ``error``), then what the kind carries, then ``prev`` and ``mac`` (added by
the chain). Optional fields (``?``) that do not apply are left out rather than written as
null. Pure declarations: no I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

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


class Source(Enum):
    """Where a record's field value comes from, so that the writer can cache what repeats."""

    EVENT = "event"  # differs per event
    SESSION = "session"  # the same for every event of a connection
    DECISION = "decision"  # the same for every run of one cached decision
    TEXT = "text"  # SQL text: masked and cut per the audit settings, cached per text


class Field(NamedTuple):
    """One key of an audit line."""

    name: str
    optional: bool  # left out when None; a required field is written as null
    source: Source
    plain: bool  # a record's value is ASCII text with nothing to escape (written as is)


_SOURCES = {
    **dict.fromkeys(
        (
            "agent_id",
            "tenant",
            "privileges",
            "client_name",
            "namespace",
            "sandbox",
            "db_system",
            "server",
            "connection_id",
        ),
        Source.SESSION,
    ),
    **dict.fromkeys(
        ("operation", "tables", "summary", "fingerprint", "rule", "reason", "row_filters", "masks"),
        Source.DECISION,
    ),
    "query": Source.TEXT,
    "final_query": Source.TEXT,
}


# Values sqlfence makes itself: timestamps, its own event types and statuses, hex ids.
_PLAIN = frozenset({"timestamp", "event_type", "status", "query_id", "trace_id", "span_id"})


def _fields(*specs: str) -> tuple[Field, ...]:
    names = [(spec.rstrip("?"), spec.endswith("?")) for spec in specs]
    return tuple(
        Field(name, optional, _SOURCES.get(name, Source.EVENT), name in _PLAIN)
        for name, optional in names
    )


HEAD = _fields(
    "seq",
    "timestamp",
    "agent_id",
    "tenant",
    "event_type",
    "query",
    "status",
    "duration_ms",
    "rows_affected",
    "error",
)
FACTS = _fields(
    "operation",
    "tables",
    "summary?",
    "fingerprint?",
    "rule?",
    "reason?",
    "row_filters?",
    "masks?",
)
SESSION = _fields(
    "privileges?",
    "client_name?",
    "namespace?",
    "sandbox?",
    "db_system",
    "server?",
    "connection_id",
)
TRACE = _fields("trace_id?", "span_id?")
CHAIN = ("prev", "mac")  # written by the chain: ``prev`` last in the body, then the MAC


class Layout(NamedTuple):
    """The fields of one kind of event, in line order."""

    kind: str
    fields: tuple[Field, ...]
    names: frozenset[str]


def _layout(kind: str, fields: tuple[Field, ...]) -> Layout:
    return Layout(kind, fields, frozenset(field.name for field in fields))


# One layout per kind of event.
STATEMENT_LAYOUT = _layout(
    "statement",
    HEAD
    + FACTS
    + _fields("rows_returned?", "truncated?", "final_query?", "params?", "error_type?")
    + SESSION
    + _fields("query_id")
    + TRACE,
)
DENIAL_LAYOUT = _layout("denial", HEAD + FACTS + SESSION + TRACE)
FETCH_LAYOUT = _layout(
    "fetch",
    HEAD
    + _fields("rows_returned", "truncated", "operation")
    + SESSION
    + _fields("query_id")
    + TRACE,
)
CONNECTION_LAYOUT = _layout("connection", HEAD + SESSION + _fields("details?"))
# Sandbox lifecycle, alerts, MCP calls and the log's own events.
PLAIN_LAYOUT = _layout("plain", HEAD + _fields("sandbox?", "details?"))
LAYOUTS = (STATEMENT_LAYOUT, DENIAL_LAYOUT, FETCH_LAYOUT, CONNECTION_LAYOUT, PLAIN_LAYOUT)

_BY_TYPE = {
    QUERY: STATEMENT_LAYOUT,
    SLOW_QUERY: STATEMENT_LAYOUT,
    SCHEMA_CHANGE: STATEMENT_LAYOUT,
    ERROR: STATEMENT_LAYOUT,
    DENIAL: DENIAL_LAYOUT,
    FETCH: FETCH_LAYOUT,
    CONNECT: CONNECTION_LAYOUT,
    DISCONNECT: CONNECTION_LAYOUT,
}


def layout_of(event_type: str) -> Layout:
    """The layout of an ``event_type`` (anything not sqlfence's own is a plain event)."""
    return _BY_TYPE.get(event_type, PLAIN_LAYOUT)


FIELD_NAMES: tuple[str, ...] = (
    tuple(dict.fromkeys(field.name for layout in LAYOUTS for field in layout.fields)) + CHAIN
)
"""Every key sqlfence writes, in first-seen order (what the reader knows by name)."""
