"""Records built on the query path (sqlfence/observe/records.py): their event kinds and the
JSON the writer (sqlfence/observe/lines.py) makes of them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sqlfence.observe.lines import LineWriter
from sqlfence.observe.records import DenialRecord, FetchRecord, StatementRecord, snapshot_params
from sqlfence.observe.settings import AuditSettings
from sqlfence.policies.engine import Decision
from tests.observe.conftest import CREATE, DENIED, DETECTED, SELECT, make_decision, make_session

DESIGN_REPORT_KEYS = [
    "timestamp",
    "agent_id",
    "tenant",
    "event_type",
    "query",
    "status",
    "duration_ms",
    "rows_affected",
    "error",
]


def _record(decision: Decision = SELECT, **fields: object) -> StatementRecord:
    record = StatementRecord(
        make_session(), decision.sql, decision, 0.0, 1_700_000_000_123_456_789, 7
    )
    record.duration = 0.0042
    rows = fields.pop("rows", None)
    if rows is not None:
        record.await_rows()
        record.add_rows(rows, False)  # type: ignore[arg-type]
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def _decode(
    record: StatementRecord | DenialRecord | FetchRecord, **settings: object
) -> dict[str, Any]:
    body = LineWriter(AuditSettings(**settings)).record(record, 5, "a" * 64, record.kind())
    event: dict[str, Any] = json.loads(body)
    return event


def test_statement_events_start_with_the_design_report_schema() -> None:
    """seq first, then the design report's nine fields in its order; prev last."""
    event = _decode(_record(rows=2))
    assert list(event)[:10] == ["seq", *DESIGN_REPORT_KEYS]
    assert list(event)[-1] == "prev"
    assert event["timestamp"] == "2023-11-14T22:13:20.123456Z"
    assert event["duration_ms"] == 4.2
    assert event["tables"] == ["main.orders"]
    assert event["rows_returned"] == 2
    assert event["query_id"].endswith("-7")
    assert event["db_system"] == "sqlite"


@pytest.mark.parametrize(
    ("fields", "decision", "kind"),
    [
        ({}, SELECT, ("query", "ok")),
        ({"slow": True}, SELECT, ("slow_query", "ok")),
        ({}, CREATE, ("schema_change", "ok")),
        ({}, DETECTED, ("query", "detected")),
        ({"error": ValueError("x")}, CREATE, ("error", "error")),
    ],
)
def test_statement_kinds(
    fields: dict[str, object], decision: Decision, kind: tuple[str, str]
) -> None:
    """Errors first, then DDL, then slow queries decide a statement's event type."""
    record = _record(decision, **fields)
    assert record.kind() == kind
    event = _decode(record)
    assert (event["event_type"], event["status"]) == kind


def test_the_fast_json_is_valid_for_every_field() -> None:
    """Errors, params, rewritten SQL, quotes and non-ASCII text all give valid JSON."""
    decision = make_decision(sql='SELECT "naïve" FROM t LIMIT 100', rewritten=True)
    record = _record(decision, error=KeyError('clé "x"\n'), params=["ünïcode", b"\xff"], rowcount=3)
    record.sql = 'SELECT "naïve" FROM t'
    event = _decode(record, log_params=True)
    assert event["error"] == "KeyError: 'clé \"x\"\\n'"
    assert event["error_type"] == "KeyError"
    assert event["params"] == ["ünïcode", "0xff"]
    assert event["final_query"] == 'SELECT "naïve" FROM t LIMIT 100'
    body = LineWriter(AuditSettings()).record(record, 1, "b" * 64, record.kind())
    assert body.isascii()


def test_denials_and_fetches() -> None:
    """A denial carries the rule and the reasons; a fetch names its statement's query_id."""
    denial = _decode(DenialRecord(make_session(), DENIED.sql, DENIED, None))
    assert denial["status"] == "denied"
    assert denial["rows_affected"] == 0
    assert denial["rule"] == "deny_tables"
    assert denial["reason"] == "table main.secrets is on the deny list (policy p.yaml:3)"
    fetch = _decode(FetchRecord(_record(), 9, True))
    assert (fetch["event_type"], fetch["rows_returned"], fetch["truncated"]) == ("fetch", 9, True)
    assert fetch["query_id"].endswith("-7")


def test_parameters_are_snapshotted_without_consuming_iterators() -> None:
    """Lists and dicts are copied; a generator (executemany) is named, never consumed."""
    values = [1, 2]
    snapshot = snapshot_params(values)
    values.append(3)
    assert snapshot == [1, 2]
    generator = (row for row in [(1,), (2,)])
    assert snapshot_params(generator) == "<generator>"
    assert next(generator) == (1,)
