"""OpenTelemetry spans and metrics (sqlfence/observe/telemetry.py), checked with the SDK's
in-memory exporters and once end to end over OTLP/HTTP."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, StatusCode

from sqlfence.exits import Stage
from sqlfence.observe import lifecycle
from sqlfence.observe.fanout import FanoutObserver, build_observer
from sqlfence.observe.filesink import chain_files
from sqlfence.observe.settings import TelemetrySettings
from sqlfence.observe.steps import Counted
from sqlfence.observe.telemetry import DURATION_BUCKETS, Telemetry, collection_name
from tests.observe.conftest import (
    DENIED,
    DETECTED,
    INSERT,
    SELECT,
    OTel,
    execute,
    make_decision,
    make_facts,
    make_session,
)


def _observer(otel: OTel, background: bool = False, **settings: Any) -> FanoutObserver:
    telemetry = TelemetrySettings(
        tracer_provider=otel.tracer_provider,
        meter_provider=otel.meter_provider,
        background=background,
        **settings,
    )
    observer = build_observer(monitoring=False, telemetry=telemetry)
    assert isinstance(observer, FanoutObserver)
    return observer


def test_a_statement_is_a_client_span_per_the_conventions(otel: OTel) -> None:
    """A statement is a CLIENT span named by its summary, with db.* and sqlfence.* attributes."""
    observer = _observer(otel, returned_rows=True)
    session = make_session(server_address="db.internal", server_port=5433)
    token = execute(observer, session, SELECT, rows=3)
    observer.close()
    (span,) = otel.spans.get_finished_spans()
    assert span.name == "SELECT orders"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "db.system.name": "sqlite",
        "db.namespace": "main",
        "db.collection.name": "orders",
        "db.operation.name": "SELECT",
        "db.query.summary": "SELECT orders",
        "db.query.text": "SELECT * FROM orders WHERE id = ?",
        "server.address": "db.internal",
        "server.port": 5433,
        "sqlfence.decision": "allowed",
        "sqlfence.agent_id": "agent-1",
        "sqlfence.tenant": "acme",
        "sqlfence.query_id": token.query_id,
        "db.response.returned_rows": 3,
    }
    assert span.start_time == token.ts_ns
    assert span.end_time - span.start_time == int(token.duration * 1e9)


def test_literal_text_is_masked_and_parameterised_text_kept(otel: OTel) -> None:
    """db.query.text: parameterised SQL as sent; SQL with inline literals masked."""
    observer = _observer(otel)
    inline = make_decision(sql="SELECT * FROM orders WHERE card = '4111-1111'")
    execute(observer, make_session(), inline, params=None)
    execute(observer, make_session(), SELECT, params=(1,))
    observer.close()
    texts = [s.attributes["db.query.text"] for s in otel.spans.get_finished_spans()]
    assert texts == ["SELECT * FROM orders WHERE card = ?", "SELECT * FROM orders WHERE id = ?"]


@pytest.mark.parametrize(
    ("mode", "expected"), [("raw", "x = 'a'"), ("masked", "x = ?"), ("off", None)]
)
def test_query_text_modes(otel: OTel, mode: str, expected: str | None) -> None:
    """query_text raw/masked/off is honoured whatever the parameters."""
    observer = _observer(otel, query_text=mode)
    execute(observer, make_session(), make_decision(sql="x = 'a'"), params=None)
    observer.close()
    (span,) = otel.spans.get_finished_spans()
    assert span.attributes.get("db.query.text") == expected


def test_a_failed_statement_has_error_status_and_type(otel: OTel) -> None:
    """A driver error sets error.type to the exception's qualified name and status ERROR."""
    import sqlite3

    observer = _observer(otel)
    execute(observer, make_session(), SELECT, error=sqlite3.OperationalError("no such table"))
    observer.close()
    (span,) = otel.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert "no such table" in (span.status.description or "")


def test_a_denied_statement_has_an_error_span_and_no_duration(otel: OTel) -> None:
    """A denial is a span with error status and the rule, and no database call metric."""
    observer = _observer(otel)
    execute(observer, make_session(), DENIED)
    observer.close()
    (span,) = otel.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "PolicyViolation"
    assert span.attributes["sqlfence.decision"] == "denied"
    assert span.attributes["sqlfence.rule"] == "deny_tables"
    assert span.name == "SELECT secrets"
    assert "db.client.operation.duration" not in otel.metric_points()


def test_metrics_follow_the_conventions(otel: OTel) -> None:
    """Duration (advisory buckets), returned rows (opted in) and decisions by outcome."""
    observer = _observer(otel, returned_rows=True)
    session = make_session()
    for _ in range(3):
        execute(observer, session, SELECT, rows=4)
    execute(observer, session, INSERT, rows=None)
    execute(observer, session, DENIED)
    execute(observer, session, DETECTED, rows=0)
    observer.close()
    points = otel.metric_points()
    durations = points["db.client.operation.duration"]
    assert sum(p.count for p in durations) == 5
    assert tuple(durations[0].explicit_bounds) == DURATION_BUCKETS
    select = next(p for p in durations if p.attributes.get("db.query.summary") == "SELECT orders")
    assert select.count == 3
    assert dict(select.attributes) == {
        "db.system.name": "sqlite",
        "db.namespace": "main",
        "db.collection.name": "orders",
        "db.operation.name": "SELECT",
        "db.query.summary": "SELECT orders",
    }
    rows = points["db.client.response.returned_rows"]
    assert sum(p.sum for p in rows) == 12
    decisions = {
        (p.attributes["sqlfence.decision"], p.attributes.get("sqlfence.rule")): p.value
        for p in points["sqlfence.decisions"]
    }
    assert decisions == {
        ("allowed", None): 4,
        ("denied", "deny_tables"): 1,
        ("detected", "deny_tables"): 1,
    }


def test_spans_are_children_of_the_callers_span_and_audit_shares_the_trace(
    otel: OTel, audit_dir: Path
) -> None:
    """The span's parent is the caller's span, whose ids the audit event carries."""
    telemetry = TelemetrySettings(tracer_provider=otel.tracer_provider, metrics=False)
    observer = build_observer(audit=audit_dir, monitoring=False, telemetry=telemetry)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent step") as parent:
        execute(observer, make_session(), SELECT)
    observer.close()
    db_span = next(s for s in otel.spans.get_finished_spans() if s.name == "SELECT orders")
    assert db_span.parent is not None
    assert db_span.parent.span_id == parent.get_span_context().span_id
    (path,) = chain_files(audit_dir, "audit")
    event = next(
        json.loads(line) for line in path.read_text().splitlines() if '"event_type":"query"' in line
    )
    assert event["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert event["span_id"] == format(parent.get_span_context().span_id, "016x")
    assert db_span.attributes["sqlfence.query_id"] == int(event["query_id"].split("-")[1])


def test_background_export_reaches_the_providers_on_flush(otel: OTel) -> None:
    """With the default background worker, spans arrive once the observer is flushed."""
    observer = _observer(otel, background=True)
    for _ in range(50):
        execute(observer, make_session(), SELECT)
    observer.flush()
    assert len(otel.spans.get_finished_spans()) == 50
    observer.close()


def test_spans_and_metrics_can_be_switched_off(otel: OTel) -> None:
    """spans=False exports metrics only; metrics=False spans only."""
    observer = _observer(otel, spans=False)
    execute(observer, make_session(), SELECT)
    observer.close()
    assert otel.spans.get_finished_spans() == ()
    assert "db.client.operation.duration" in otel.metric_points()


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The global providers are the API's defaults (nothing configured)."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(metrics, "get_meter_provider", metrics.NoOpMeterProvider)


@pytest.mark.usefixtures("no_sdk")
def test_without_an_sdk_nothing_is_built() -> None:
    """With no SDK configured telemetry is inactive and the cursor gets a light token."""
    observer = build_observer(monitoring=False)
    assert isinstance(observer, FanoutObserver)
    assert observer.telemetry is not None
    assert not observer.telemetry.active
    token = observer.started(make_session(), SELECT.sql, SELECT, None)
    assert type(token) is Counted
    observer.close()


def test_an_sdk_configured_later_is_picked_up(otel: OTel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers set after the connection opened are found at the next check."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(metrics, "get_meter_provider", metrics.NoOpMeterProvider)
    telemetry = Telemetry(TelemetrySettings(background=False))
    assert telemetry.capture(0.0) is None
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
    assert telemetry.capture(0.5) is None  # checked at most once a second
    assert telemetry.capture(10**9) is not None
    assert telemetry.active


def test_slow_or_odd_decisions_still_get_a_span_name(otel: OTel) -> None:
    """Without a summary the span is named '{operation} {table}', else the system."""
    observer = _observer(otel)
    no_summary = make_decision(facts=make_facts(summary=""))
    nothing = make_decision(facts=make_facts(summary="", operation="", tables=frozenset()))
    execute(observer, make_session(), no_summary)
    execute(observer, make_session(), nothing)
    observer.close()
    assert [s.name for s in otel.spans.get_finished_spans()] == ["SELECT main.orders", "sqlite"]


# -- end to end over OTLP/HTTP ----------------------------------------------------------


class _Collector(http.server.BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP trace exports and keeps the decoded requests."""

    received: list[Any]

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append(request)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[tuple[str, list[Any]]]:
    """An OTLP/HTTP receiver on 127.0.0.1; yields its traces URL and what it received."""
    received: list[Any] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()
    server.server_close()


def test_spans_reach_an_otlp_http_collector(collector: tuple[str, list[Any]]) -> None:
    """Spans exported over OTLP/HTTP decode, in protobuf, to the expected names and attributes."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url, received = collector
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url, timeout=10)))
    telemetry = TelemetrySettings(tracer_provider=provider, metrics=False, returned_rows=True)
    observer = build_observer(monitoring=False, telemetry=telemetry)
    session = make_session()
    execute(observer, session, SELECT, rows=2)
    execute(observer, session, DENIED)
    observer.close()
    assert provider.force_flush(10_000)
    provider.shutdown()
    spans = [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    by_name = {span.name: span for span in spans}
    assert set(by_name) == {"SELECT orders", "SELECT secrets"}
    allowed = {a.key: a.value for a in by_name["SELECT orders"].attributes}
    assert allowed["db.system.name"].string_value == "sqlite"
    assert allowed["db.response.returned_rows"].int_value == 2
    assert by_name["SELECT orders"].kind == 3  # SPAN_KIND_CLIENT
    denied = {a.key: a.value for a in by_name["SELECT secrets"].attributes}
    assert denied["sqlfence.decision"].string_value == "denied"
    assert by_name["SELECT secrets"].status.code == 2  # STATUS_CODE_ERROR
    scope_names = {
        s.scope.name for r in received for rs in r.resource_spans for s in rs.scope_spans
    }
    assert scope_names == {"sqlfence"}


def test_the_background_worker_registers_for_exit(
    otel: OTel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telemetry flushes at interpreter exit only once it has something to export: it hands
    itself to the exit registry (in the telemetry stage) and takes itself back on close."""
    calls: list[tuple[str, lifecycle.Flushable, int]] = []
    register, unregister = lifecycle.register, lifecycle.unregister

    def recording_register(thing: lifecycle.Flushable, stage: Stage) -> None:
        calls.append(("register", thing, stage))
        register(thing, stage)

    def recording_unregister(thing: lifecycle.Flushable, stage: Stage) -> None:
        calls.append(("unregister", thing, stage))
        unregister(thing, stage)

    monkeypatch.setattr(lifecycle, "register", recording_register)
    monkeypatch.setattr(lifecycle, "unregister", recording_unregister)
    telemetry = Telemetry(TelemetrySettings(tracer_provider=otel.tracer_provider))
    assert calls == [("register", telemetry, lifecycle.TELEMETRY)]
    telemetry.close()
    assert calls[1:] == [("unregister", telemetry, lifecycle.TELEMETRY)]
    assert otel_context.get_current() is not None


@pytest.mark.parametrize("exemplars", [False, True])
def test_exemplars_link_metrics_to_the_span_only_when_asked(otel: OTel, exemplars: bool) -> None:
    """With exemplars=True the duration histogram points at the statement's span."""
    observer = _observer(otel, exemplars=exemplars)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent step"):
        execute(observer, make_session(), SELECT)
    observer.close()
    (point,) = otel.metric_points()["db.client.operation.duration"]
    db_span = next(s for s in otel.spans.get_finished_spans() if s.name == "SELECT orders")
    span_ids = {e.span_id for e in point.exemplars}
    assert span_ids == ({db_span.context.span_id} if exemplars else set())


def test_returned_rows_are_opt_in(otel: OTel) -> None:
    """By default neither the span nor a histogram carries the rows (semantic conventions:
    opt-in); the duration histogram is still recorded."""
    observer = _observer(otel)
    execute(observer, make_session(), SELECT, rows=3)
    observer.close()
    (span,) = otel.spans.get_finished_spans()
    assert "db.response.returned_rows" not in span.attributes
    points = otel.metric_points()
    assert "db.client.response.returned_rows" not in points
    assert sum(p.count for p in points["db.client.operation.duration"]) == 1


@pytest.mark.parametrize(
    ("sql", "tables", "summary", "expected"),
    [
        ("SELECT * FROM Orders", {"main.orders"}, "SELECT Orders", "Orders"),
        ("SELECT * FROM main.orders", {"main.orders"}, "SELECT orders", "main.orders"),
        ('SELECT * FROM "Shop".Orders', {"Shop.Orders"}, "SELECT Orders", "Orders"),
        ("SELECT * FROM a JOIN b ON 1", {"main.a", "main.b"}, "SELECT a b", None),
        ("SELECT 1", set(), "SELECT", None),
    ],
)
def test_the_collection_is_named_as_the_query_wrote_it(
    sql: str, tables: set[str], summary: str, expected: str | None
) -> None:
    """db.collection.name is the one table as written (its case; its schema only when the
    query named it), not qualified with the default schema; none for several tables."""
    decision = make_decision(sql=sql, facts=make_facts(tables=frozenset(tables), summary=summary))
    assert collection_name(decision) == expected


def test_spans_the_sampler_drops_get_no_attributes_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a sampler that records nothing, no span is exported and the per-statement
    attributes are never set (the span does not record); the histogram still counts."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from opentelemetry.trace import NonRecordingSpan

    exported = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exported))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    set_calls: list[object] = []
    monkeypatch.setattr(
        NonRecordingSpan, "set_attributes", lambda self, attributes: set_calls.append(attributes)
    )
    monkeypatch.setattr(
        NonRecordingSpan, "set_attribute", lambda self, key, value: set_calls.append(key)
    )
    otel = OTel(exported, reader, tracer_provider, meter_provider)
    observer = _observer(otel)
    execute(observer, make_session(), SELECT, rows=3)
    execute(observer, make_session(), DENIED)
    observer.close()
    assert exported.get_finished_spans() == ()
    assert set_calls == []
    assert sum(p.count for p in otel.metric_points()["db.client.operation.duration"]) == 1
    tracer_provider.shutdown()
    meter_provider.shutdown()
