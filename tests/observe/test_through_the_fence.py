"""The observer behind a real guarded sqlite connection (sqlfence.connect): what an agent's
session leaves in the audit log and in get_metrics()."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import sqlfence
from sqlfence.observe.verify import verify
from tests.observe.conftest import audit_events, with_rows


@pytest.mark.filterwarnings("ignore::sqlfence.DefaultPolicyWarning")
def test_an_agent_session_is_audited_end_to_end(tmp_path: Path, audit_dir: Path) -> None:
    """Reads, a failing read and a denial through sqlfence.connect are each audited once."""
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as raw:
        raw.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        raw.executemany("INSERT INTO orders (total) VALUES (?)", [(n,) for n in range(5)])
    conn = sqlfence.connect(
        f"sqlite:///{database}",
        agent_id="assistant-123",
        tenant="acme-corp",
        audit=audit_dir,
        monitoring={"alert_on_slow_query_ms": 60_000},
    )
    cursor = conn.cursor()
    cursor.execute("SELECT id, total FROM orders WHERE total > ?", (1,))
    assert len(cursor.fetchall()) == 3
    with pytest.raises(sqlfence.OperationalError):
        cursor.execute("SELECT * FROM missing")
    with pytest.raises(sqlfence.PolicyViolation):
        cursor.execute("DROP TABLE orders")
    metrics = conn.get_metrics()
    conn.close()
    assert metrics["queries_executed"] == 2
    assert metrics["errors"] == 1
    assert metrics["denied"] == 1
    assert metrics["rows_returned"] == 3
    events = with_rows(audit_events(audit_dir))
    kinds = [e["event_type"] for e in events]
    assert kinds == [
        "audit.open",
        "connect",
        "query",
        "error",
        "denial",
        "disconnect",
        "audit.close",
    ]
    read, error, denial = events[2:5]
    assert read["agent_id"] == "assistant-123"
    assert read["tenant"] == "acme-corp"
    assert read["rows_returned"] == 3
    assert read["tables"] == ["main.orders"]
    assert error["error_type"] == "sqlite3.OperationalError"
    assert denial["status"] == "denied"
    assert denial["rule"]
    assert verify(audit_dir).ok


def test_the_audit_event_names_the_filters_and_masks_applied(
    tmp_path: Path, audit_dir: Path
) -> None:
    """A rewritten statement's event says which row filters and masks it ran with; the line
    still verifies; an event without either has neither field."""
    database = tmp_path / "crm.db"
    with sqlite3.connect(database) as raw:
        raw.execute("CREATE TABLE customers (id INTEGER, tenant_id TEXT, email TEXT)")
        raw.execute("INSERT INTO customers VALUES (1, 'acme', 'zoe@x.io'), (2, 'b', 'y@z.io')")
        raw.execute("CREATE TABLE notes (id INTEGER)")
    policy = {
        "row_filters": {"customers": "tenant_id = :tenant"},
        "masked_columns": {"customers.email": "redact"},
    }
    conn = sqlfence.connect(
        f"sqlite:///{database}", policy=policy, tenant="acme", audit=audit_dir, telemetry=False
    )
    assert conn.execute("SELECT email FROM customers").fetchall() == [("****",)]
    conn.execute("SELECT * FROM notes").fetchall()
    conn.close()
    queries = [e for e in audit_events(audit_dir) if e["event_type"] == "query"]
    assert queries[0]["row_filters"] == ["customers"]
    assert queries[0]["masks"] == ["customers.email"]
    assert "masks" not in queries[1]
    assert "row_filters" not in queries[1]
    assert verify(audit_dir).ok
