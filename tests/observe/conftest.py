"""Fixtures of the observe tests: decisions as the guard makes them, sessions, audit dirs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.filesink import chain_files
from sqlfence.observe.observer import Session
from sqlfence.policies.engine import Decision
from sqlfence.policies.rules import Violation
from sqlfence.sql.analysis import StatementFacts


def make_facts(**overrides: Any) -> StatementFacts:
    """Real ``StatementFacts`` for a statement on ``main.orders``, with a known fingerprint."""
    fields: dict[str, Any] = {
        "operation": "select",
        "tables": frozenset({"main.orders"}),
        "summary": "SELECT orders",
        **overrides,
    }
    fields.setdefault("operations", (fields["operation"],))
    facts = StatementFacts(**fields)
    object.__setattr__(facts, "_fingerprint", "f" * 32)  # as if computed from its tokens
    return facts


def make_decision(
    allowed: bool = True,
    sql: str = "SELECT * FROM orders WHERE id = ?",
    facts: StatementFacts | None = None,
    reasons: tuple[Violation, ...] = (),
    detected: bool = False,
    rewritten: bool = False,
) -> Decision:
    """A real ``Decision`` as the guard would make it."""
    return Decision(
        allowed=allowed,
        sql=sql,
        facts=facts if facts is not None else make_facts(),
        reasons=reasons,
        detected=detected,
        rewritten=rewritten,
        max_rows=100,
    )


SELECT = make_decision()
INSERT = make_decision(
    sql="INSERT INTO orders (id) VALUES (?)",
    facts=make_facts(operation="insert", summary="INSERT orders", writes=True),
)
CREATE = make_decision(
    sql="CREATE TABLE t (id INT)",
    facts=make_facts(
        operation="create",
        tables=frozenset({"main.t"}),
        summary="CREATE t",
        is_ddl=True,
        writes=True,
    ),
)
DENIED = make_decision(
    allowed=False,
    sql="SELECT * FROM secrets",
    facts=make_facts(tables=frozenset({"main.secrets"}), summary="SELECT secrets"),
    reasons=(Violation("deny_tables", "table main.secrets is on the deny list", "p.yaml:3"),),
)
DETECTED = make_decision(
    sql="SELECT * FROM secrets",
    facts=make_facts(tables=frozenset({"main.secrets"}), summary="SELECT secrets"),
    reasons=(Violation("deny_tables", "table main.secrets is on the deny list"),),
    detected=True,
)


# The design report's ``audit_log`` keys, as it gives them.
DESIGN_REPORT_AUDIT_LOG: dict[str, Any] = {
    "enabled": True,
    "log_queries": True,
    "log_connections": True,
    "log_schema_changes": True,
    "export_format": "json",
    "retention_days": 90,
}


def make_session(agent_id: str = "agent-1", tenant: str | None = "acme", **kw: object) -> Session:
    """A sqlite session for ``agent_id``."""
    return Session(system="sqlite", agent_id=agent_id, tenant=tenant, namespace="main", **kw)  # type: ignore[arg-type]


@pytest.fixture
def session() -> Session:
    """A sqlite session of agent ``agent-1`` of tenant ``acme``."""
    return make_session()


@pytest.fixture
def audit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty audit directory; the key comes from the environment."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "test-key-of-the-audit-chain")
    return tmp_path / "audit"


def audit_events(directory: Path, prefix: str = "audit") -> list[dict[str, Any]]:
    """Every event of chain ``prefix`` in ``directory``, decoded, in log order."""
    return [
        json.loads(line)
        for path in chain_files(directory, prefix)
        for line in path.read_text().splitlines()
    ]


def with_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` without ``fetch`` events, their rows put into the statement they follow.

    A statement's rows are in its own event when they were known before the writer took it,
    else in a ``fetch`` event with its ``query_id``: which one is a matter of timing.
    """
    by_id = {e["query_id"]: e for e in events if e.get("query_id") and e["event_type"] != "fetch"}
    merged = []
    for event in events:
        if event["event_type"] != "fetch":
            merged.append(event)
            continue
        statement = by_id[event["query_id"]]
        assert "rows_returned" not in statement, "rows recorded twice"
        statement["rows_returned"] = event["rows_returned"]
        statement["truncated"] = event["truncated"]
    return merged


@dataclass
class OTel:
    """SDK providers with in-memory exporters, handed to Telemetry explicitly."""

    spans: Any
    reader: Any
    tracer_provider: Any
    meter_provider: Any

    def metric_points(self) -> dict[str, list[Any]]:
        """Every data point collected now, by metric name."""
        found: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[OTel]:
    """A TracerProvider (simple processor, in-memory exporter) and a MeterProvider
    (in-memory reader), not installed globally."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield OTel(spans, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def execute(
    observer: Any,
    session: Session,
    decision: Decision = SELECT,
    *,
    sql: str | None = None,
    params: Any = (1,),
    rowcount: int = -1,
    rows: int | None = 1,
    truncated: bool = False,
    error: BaseException | None = None,
) -> Any:
    """Drive ``observer`` the way the guarded cursor does for one statement."""
    text = decision.sql if sql is None else sql
    if not decision.allowed:
        observer.denied(session, text, decision)
        return None
    token = observer.started(session, text, decision, params)
    observer.finished(session, token, rowcount, error)
    if error is None and rows is not None:
        observer.fetched(session, token, rows, truncated)
    return token
