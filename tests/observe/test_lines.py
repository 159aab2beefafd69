"""Audit lines (sqlfence/observe/lines.py, schema.py): every kind of event is written byte
for byte as before the one-schema writer, so logs written earlier still read and verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from sqlfence.observe import events, records
from sqlfence.observe.events import COLUMNS, AuditEvent, encode_event, plain_event, session_event
from sqlfence.observe.lines import LineWriter
from sqlfence.observe.observer import Session
from sqlfence.observe.records import DenialRecord, FetchRecord, StatementRecord
from sqlfence.observe.schema import FIELD_NAMES, LAYOUTS
from sqlfence.observe.settings import AuditSettings
from sqlfence.policies.engine import Decision
from tests.observe.conftest import CREATE, DENIED, DETECTED, INSERT, SELECT, make_decision
from tests.observe.test_records import DESIGN_REPORT_KEYS

GOLDEN: dict[str, str] = json.loads(
    (Path(__file__).parent / "data" / "golden_lines.json").read_text(encoding="utf-8")
)
TS = 1_700_000_000_123_456_789
PREV = "a" * 64
TAG = "0badcafe"  # the process tag the golden lines were written with
CONTEXT = trace.set_span_in_context(
    NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(1)))
)
PLAIN = Session(
    "sqlite", agent_id="agent-1", tenant="acme", namespace="/tmp/x.db", connection_id=41
)
RICH = Session(
    "postgresql",
    agent_id='agént"2',
    namespace="shop",
    server_address="db.local",
    server_port=5432,
    sandbox="sb-1",
    privileges=("superuser", "pg_read_server_files"),
    client_name="claude",
    connection_id=42,
)


def _statement(
    decision: Decision,
    session: Session = PLAIN,
    settings: AuditSettings | None = None,
    sql: str | None = None,
    **fields: Any,
) -> bytes:
    record = StatementRecord(session, sql or decision.sql, decision, 0.0, TS, 7)
    record.duration = fields.pop("duration", 0.0042)
    rows = fields.pop("rows", None)
    if rows is not None:
        record.await_rows()
        record.add_rows(rows, fields.pop("truncated", False))
    for name, value in fields.items():
        setattr(record, name, value)
    return LineWriter(settings or AuditSettings()).record(record, 5, PREV, record.kind())


def _denial(session: Session, context: Any) -> bytes:
    record = DenialRecord(session, DENIED.sql, DENIED, context)
    record.ts_ns = TS
    return LineWriter(AuditSettings()).record(record, 5, PREV, record.kind())


def _fetch() -> bytes:
    statement = StatementRecord(RICH, SELECT.sql, SELECT, 0.0, TS, 9)
    statement.context = CONTEXT
    record = FetchRecord(statement, 12, True)
    record.ts_ns = TS
    return LineWriter(AuditSettings()).record(record, 5, PREV, record.kind())


def _dict(event: dict[str, Any], **more: Any) -> bytes:
    event["timestamp"] = events.iso_timestamp(TS)
    event.update(more)
    return encode_event(event, 5, PREV)


RICH_SELECT = make_decision(sql='SELECT "naïve" FROM t LIMIT 100', rewritten=True)
MASKED = make_decision(sql="SELECT * FROM orders WHERE name = 'bob' AND id = 12345678901")
CASES: dict[str, Callable[[], bytes]] = {
    "query": lambda: _statement(SELECT, rows=2),
    "query_no_rows": lambda: _statement(SELECT),
    "query_rich": lambda: _statement(
        RICH_SELECT,
        RICH,
        AuditSettings(log_params=True),
        'SELECT "naïve" FROM t',
        params=["ünïcode", 3, None],
        context=CONTEXT,
        rows=1000,
        truncated=True,
        parameterised=True,
    ),
    "slow_query": lambda: _statement(SELECT, slow=True, duration=2.5),
    "schema_change": lambda: _statement(CREATE, rowcount=-1),
    "insert": lambda: _statement(INSERT, rowcount=3),
    "error": lambda: _statement(CREATE, error=KeyError('clé "x"\n')),
    "detected": lambda: _statement(DETECTED),
    "masked": lambda: _statement(
        MASKED, settings=AuditSettings(mask_literals=True, max_query_chars=30)
    ),
    "denial": lambda: _denial(PLAIN, None),
    "denial_rich": lambda: _denial(RICH, CONTEXT),
    "fetch": _fetch,
    "connect": lambda: _dict(session_event(RICH, events.CONNECT)),
    "disconnect": lambda: _dict(
        session_event(PLAIN, events.DISCONNECT), details={"queries_executed": 3, "p99_ms": 1.5}
    ),
    "sandbox": lambda: _dict(
        plain_event(
            "sandbox.created",
            agent_id="a",
            tenant="t",
            sandbox="sb-1",
            details={"backend": "sqlite", "expires_at": 1.5},
        )
    ),
    "audit_open": lambda: _dict(plain_event("audit.open", details={"pid": 1, "chain": "c"})),
    "mcp_call": lambda: _dict(
        plain_event("mcp.call", "denied", agent_id="a", details={"tool": "q", "reason": "r"}),
        client_name="cli",
    ),
    "audit_recovered": lambda: _dict(
        plain_event("audit.recovered", "error", error="disk full"), details={"dropped_total": 0}
    ),
}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_each_kind_of_event_is_written_as_the_golden_line(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line the writer makes equals the one the hand-written encoders made."""
    monkeypatch.setattr(records, "PROCESS_TAG", TAG)
    assert CASES[case]().decode("ascii") == GOLDEN[case]


def test_every_golden_case_is_checked() -> None:
    """No case is written without a golden line, nor the reverse."""
    assert set(CASES) == set(GOLDEN)


def test_a_golden_line_reads_back_with_every_field_known() -> None:
    """The reader knows every key the layouts write (nothing sqlfence writes lands in extra)."""
    for case, line in GOLDEN.items():
        event = AuditEvent.from_dict(json.loads(line))
        assert case == "mcp_call" or not event.extra, case  # client_name there is an extra
    assert set(COLUMNS) == set(FIELD_NAMES)


def test_layouts_start_with_the_design_report_fields() -> None:
    """Every layout starts with seq and the design report's nine fields, in that order."""
    for layout in LAYOUTS:
        names = [field.name for field in layout.fields[:10]]
        assert names[0] == "seq"
        assert names[1:] == DESIGN_REPORT_KEYS


def test_a_connection_whose_number_is_reused_is_not_mistaken() -> None:
    """The writer's per-connection fragment is checked to be the same session, not just the
    same connection number."""
    writer = LineWriter(AuditSettings())
    first = StatementRecord(PLAIN, SELECT.sql, SELECT, 0.0, TS, 1)
    other = Session("sqlite", agent_id="other", connection_id=PLAIN.connection_id)
    second = StatementRecord(other, SELECT.sql, SELECT, 0.0, TS, 2)
    writer.record(first, 1, PREV, first.kind())
    line = json.loads(writer.record(second, 2, PREV, second.kind()))
    assert line["agent_id"] == "other"
