"""Reading audit logs back (sqlfence/observe/query.py): filters and exports."""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.query import export_events, query_events, read_events
from sqlfence.observe.records import DenialRecord, StatementRecord
from sqlfence.observe.settings import AuditSettings
from tests.observe.conftest import DENIED, SELECT, make_session


@pytest.fixture
def log(audit_dir: Path) -> Iterator[AuditLog]:
    """A log with statements and denials of two agents in two tenants."""
    audit = AuditLog(AuditSettings(directory=audit_dir, export_format="csv"))
    for agent, tenant in (("a1", "acme"), ("a2", "globex")):
        session = make_session(agent_id=agent, tenant=tenant)
        for i in range(3):
            audit.submit(StatementRecord(session, SELECT.sql, SELECT, 0.0, 10**18 + i * 1000, i))
        audit.submit(DenialRecord(session, DENIED.sql, DENIED, None))
    audit.flush()
    yield audit
    audit.close()


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        ({}, 9),
        ({"agent_id": "a1"}, 4),
        ({"tenant": "globex"}, 4),
        ({"status": "denied"}, 2),
        ({"event_type": "query"}, 6),
        ({"event_type": ("query", "denial"), "agent_id": "a2"}, 4),
        ({"since": "2001-09-09T01:46:40Z", "until": "2001-09-09T01:46:40.000001Z"}, 2),
        ({"until": datetime.datetime(2001, 9, 9)}, 0),
        ({"limit": 3}, 3),
    ],
)
def test_query_filters(log: AuditLog, filters: dict[str, Any], count: int) -> None:
    """Events can be selected by agent, tenant, status, type, time range, with a limit."""
    assert len(log.query(**filters)) == count


def test_read_events_from_a_file_or_a_directory(log: AuditLog) -> None:
    """read_events reads one file or every chain of a directory; events carry their MAC."""
    events = list(read_events(log.directory))
    assert [e.seq for e in events] == list(range(1, 10))
    assert all(e.mac for e in events)
    (path,) = log.directory.glob("*.jsonl")
    assert len(list(read_events(path))) == 9
    assert query_events(log.directory, agent_id="a1", status="ok")[0].agent_id == "a1"


@pytest.mark.parametrize("format", ["json", "jsonl", "csv"])
def test_exports(log: AuditLog, tmp_path: Path, format: str) -> None:
    """Matching events export as a JSON array, JSON Lines or CSV with one column per field."""
    destination = tmp_path / f"out.{format}"
    assert log.export(destination, format, agent_id="a1") == 4
    text = destination.read_text()
    if format == "json":
        rows = json.loads(text)
    elif format == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
        assert json.loads(rows[0]["tables"]) == ["main.orders"]
    assert [row["agent_id"] for row in rows] == ["a1"] * 4
    assert {row["event_type"] for row in rows} == {"query", "denial"}


def test_export_defaults_to_the_settings_format(log: AuditLog, tmp_path: Path) -> None:
    """Without a format, export uses AuditSettings.export_format; unknown formats fail."""
    assert log.export(tmp_path / "out") == 9
    assert (tmp_path / "out").read_text().startswith("seq,")
    with pytest.raises(ValueError, match="unknown export format"):
        export_events(log.directory, tmp_path / "x", "xml")


def test_damaged_lines_are_skipped_when_reading(log: AuditLog) -> None:
    """A torn or garbage line does not stop reading (verify is what reports it)."""
    (path,) = log.directory.glob("*.jsonl")
    with path.open("ab") as handle:
        handle.write(b'garbage\n{"half": ')
    assert len(list(read_events(path))) == 9
