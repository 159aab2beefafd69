"""Fixtures of the observe tests: a stand-in for ``Decision``, sessions, temporary audit dirs.

``FakeDecision`` has exactly the attributes the observers read from
``sqlfence.policies.engine.Decision``, so these tests do not depend on the policy engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sqlfence.observe.observer import Session


@dataclass(frozen=True)
class FakeViolation:
    """A broken rule, as ``sqlfence.policies.engine.Violation``."""

    rule: str
    message: str
    location: str | None = None

    def __str__(self) -> str:
        return f"{self.message} (policy {self.location})" if self.location else self.message


@dataclass(frozen=True)
class FakeFacts:
    """What the observers read of ``StatementFacts``."""

    operation: str = "select"
    tables: frozenset[str] = frozenset({"main.orders"})
    summary: str = "SELECT orders"
    fingerprint: str = "f" * 32
    is_ddl: bool = False
    writes: bool = False


@dataclass(frozen=True)
class FakeDecision:
    """What the observers read of ``Decision``."""

    allowed: bool = True
    sql: str = "SELECT * FROM orders WHERE id = ?"
    facts: FakeFacts = field(default_factory=FakeFacts)
    reasons: tuple[FakeViolation, ...] = ()
    detected: bool = False
    rewritten: bool = False


SELECT = FakeDecision()
INSERT = FakeDecision(
    sql="INSERT INTO orders (id) VALUES (?)",
    facts=FakeFacts(operation="insert", summary="INSERT orders", writes=True),
)
CREATE = FakeDecision(
    sql="CREATE TABLE t (id INT)",
    facts=FakeFacts(
        operation="create",
        tables=frozenset({"main.t"}),
        summary="CREATE t",
        is_ddl=True,
        writes=True,
    ),
)
DENIED = FakeDecision(
    allowed=False,
    sql="SELECT * FROM secrets",
    facts=FakeFacts(tables=frozenset({"main.secrets"}), summary="SELECT secrets"),
    reasons=(FakeViolation("deny_tables", "table main.secrets is on the deny list", "p.yaml:3"),),
)
DETECTED = FakeDecision(
    sql="SELECT * FROM secrets",
    facts=FakeFacts(tables=frozenset({"main.secrets"}), summary="SELECT secrets"),
    reasons=(FakeViolation("deny_tables", "table main.secrets is on the deny list"),),
    detected=True,
)


def make_session(agent_id: str = "agent-1", tenant: str | None = "acme", **kw: object) -> Session:
    """A sqlite session for ``agent_id``."""
    return Session(system="sqlite", agent_id=agent_id, tenant=tenant, namespace="main", **kw)  # type: ignore[arg-type]


@pytest.fixture
def session() -> Session:
    """A sqlite session of agent ``agent-1`` of tenant ``acme``."""
    return make_session()


@pytest.fixture
def audit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty audit directory; the key comes from the environment."""
    monkeypatch.setenv("SQLFENCE_AUDIT_KEY", "test-key")
    return tmp_path / "audit"


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
    decision: FakeDecision = SELECT,
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
