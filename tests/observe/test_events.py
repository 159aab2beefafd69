"""Audit events (sqlfence/observe/events.py): the schema, timestamps, the envelope, and
what parameter values become in JSON."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from pathlib import Path

import pytest

from sqlfence.observe.events import (
    COLUMNS,
    SANDBOX_FAILURES,
    AuditEvent,
    SandboxEvent,
    encode_event,
    iso_timestamp,
    jsonable,
    parse_timestamp,
    plain_event,
)


def test_events_read_back_as_audit_events() -> None:
    """AuditEvent.from_dict keeps known fields typed and unknown ones in extra."""
    line = {
        "seq": 5,
        "timestamp": "2023-11-14T22:13:20.123456Z",
        "event_type": "query",
        "tables": ["main.orders"],
        "custom": 1,
    }
    event = AuditEvent.from_dict(line)
    assert event.seq == 5
    assert event.tables == ("main.orders",)
    assert event.extra == {"custom": 1}
    assert event.when == datetime.datetime(
        2023, 11, 14, 22, 13, 20, 123456, tzinfo=datetime.timezone.utc
    )
    assert "mac" in COLUMNS


def test_plain_events_encode_with_seq_first_and_prev_last() -> None:
    """Events that are not statements use the same envelope."""
    event = plain_event("sandbox.create", agent_id="a", sandbox="sb", details={"ttl": 5})
    decoded = json.loads(encode_event(event, 3, "c" * 64))
    assert next(iter(decoded)) == "seq"
    assert list(decoded)[-1] == "prev"
    assert decoded["sandbox"] == "sb"


def test_timestamps_round_trip() -> None:
    """iso_timestamp and parse_timestamp agree to the microsecond."""
    now = 1_732_600_000_654_321_000
    text = iso_timestamp(now)
    assert text == "2024-11-26T05:46:40.654321Z"
    assert parse_timestamp(text).timestamp() == pytest.approx(now / 1e9)
    assert parse_timestamp("2024-11-26T05:46:40").tzinfo is datetime.timezone.utc


def test_any_parameter_becomes_json() -> None:
    """Bytes, dates, decimals, UUIDs and nested rows become JSON values."""
    when = datetime.date(2025, 1, 2)
    ident = uuid.UUID(int=1)
    assert jsonable([(b"\x01", when), {"d": decimal.Decimal("1.5"), 2: ident}, object]) == [
        ["0x01", "2025-01-02"],
        {"d": "1.5", "2": str(ident)},
        repr(object),
    ]


def test_sandbox_event_writes_the_golden_sandbox_line() -> None:
    """A SandboxEvent's audit event is the sandbox.* line logs have always held (the golden
    line test_lines checks), so existing logs and new ones read and verify alike."""
    golden = json.loads(
        (Path(__file__).parent / "data" / "golden_lines.json").read_text(encoding="utf-8")
    )["sandbox"]
    event = SandboxEvent("created", "sb-1", "a", "t", "sqlite", {"expires_at": 1.5}, at=7.0)
    written = event.audit_event()
    written["timestamp"] = iso_timestamp(1_700_000_000_123_456_789)
    assert encode_event(written, 5, "a" * 64).decode("ascii") == golden


def test_sandbox_event_as_dict_is_what_on_event_gets() -> None:
    """on_event's dict: the event's name, when, who, the backend, the step's own fields and
    the error when there is one; refusals and failures are errors in the log."""
    refused = SandboxEvent(
        "snapshot_refused", "sb-1", "a", None, "postgres", {"snapshot": "s"}, "corrupt", at=7.0
    )
    assert refused.as_dict() == {
        "event": "sandbox.snapshot_refused", "at": 7.0, "sandbox": "sb-1", "agent_id": "a",
        "tenant": None, "backend": "postgres", "snapshot": "s", "error": "corrupt",
    }  # fmt: skip
    line = refused.audit_event()
    assert (line["event_type"], line["status"], line["error"]) == (
        "sandbox.snapshot_refused",
        "error",
        "corrupt",
    )
    assert line["details"] == {"backend": "postgres", "snapshot": "s"}
    assert {"quota_exceeded", "container_failed"} <= SANDBOX_FAILURES
    created = SandboxEvent("created", "sb-1", "a", None, "sqlite")
    assert created.status == "ok"
    assert "error" not in created.as_dict()
