"""OpenTelemetry: a CLIENT span per statement and the database client metrics, per the
semantic conventions (REFERENCE.md), through whatever providers the application set up.

With no SDK configured the query's thread pays one comparison (the providers are looked up
again at most once a second, so an SDK configured later is picked up). With an SDK, the
query's thread only takes the parent context; spans are created on a worker thread with the
statement's own start and end timestamps (``TelemetrySettings.background``).

``error.type`` is the exception's qualified class name (``sqlite3.OperationalError``);
``PolicyViolation`` for a denial, whose span has error status and no database call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from sqlfence.observe import lifecycle
from sqlfence.observe.events import VERSION
from sqlfence.observe.masking import mask_literals
from sqlfence.observe.records import DenialRecord, FetchRecord, StatementRecord, qualified_name
from sqlfence.observe.settings import TelemetrySettings
from sqlfence.observe.worker import BatchWorker

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from sqlfence.observe.observer import Session
    from sqlfence.policies.engine import Decision

logger = logging.getLogger("sqlfence.observe")
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_SCOPE = "sqlfence"
_RECHECK_S = 1.0
_SUMMARY_MAX = 255
_CACHE_LIMIT = 4096
# The context metrics are recorded in when exemplars are off: no span, so the SDK's
# trace-based exemplar filter takes none (an exemplar costs about 6 us per measurement).
# (Not an empty Context: the SDK treats a falsy context as "use the current one".)
_NO_EXEMPLARS = otel_context.set_value("sqlfence.exemplars", False, otel_context.Context())


class Telemetry:
    """Turns statement records into spans and metrics. Thread-safe; one per settings."""

    def __init__(self, settings: TelemetrySettings | None = None) -> None:
        self.settings = settings = settings if settings is not None else TelemetrySettings()
        self._tracer: trace.Tracer | None = None
        self._instruments: tuple[Any, Any, Any] | None = None
        self._next_check = 0.0
        self.active = False
        # Keyed by connection and SQL text, checked to be the same decision and session.
        self._span_attrs: dict[
            tuple[int, str, bool], tuple[Decision, Session, str, dict[str, Any]]
        ] = {}
        self._metric_attrs: dict[tuple[int, str], tuple[Decision, Session, dict[str, Any]]] = {}
        self.failures = 0
        self._decisions: dict[tuple[str, str, str | None], int] = {}
        self._worker: BatchWorker | None = None
        if settings.background:
            self._worker = BatchWorker(
                "sqlfence-telemetry",
                self._export_batch,
                capacity=settings.queue_size,
                batch_size=512,
                interval=0.05,
                block=True,
            )
        self.refresh()

    # -- the query's thread ---------------------------------------------------------------

    def capture(self, now: float) -> Context | None:
        """The parent context for a statement starting ``now`` (perf_counter), or None when
        there is nothing to export to."""
        if now >= self._next_check:
            self.refresh(now)
        if self.active:
            return otel_context.get_current()
        return None

    def poll(self, now: float) -> bool:
        """Whether there is something to export, looking the providers up again when it is
        time (``now`` is perf_counter)."""
        if now >= self._next_check:
            self.refresh(now)
        return self.active

    def submit(self, record: StatementRecord | DenialRecord | FetchRecord) -> None:
        """Export ``record`` (on the worker thread unless ``background`` is off)."""
        if self._worker is None:
            self._export_batch([record])
        else:
            self._worker.submit(record)  # waits when the worker is a full queue behind

    @property
    def queued(self) -> int:
        """Records waiting for the worker."""
        return 0 if self._worker is None else self._worker.pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted record was exported to the providers."""
        return True if self._worker is None else self._worker.flush(timeout)

    def close(self) -> None:
        """Export what is queued and stop the worker."""
        if self._worker is not None:
            self._worker.close()
        lifecycle.unregister(self, lifecycle.TELEMETRY)

    def at_exit(self) -> None:
        """Interpreter exit: export what is queued."""
        self.close()

    # -- providers ------------------------------------------------------------------------

    def refresh(self, now: float | None = None) -> None:
        """Look up the providers again (done by ``capture`` at most once a second)."""
        self._next_check = (time.perf_counter() if now is None else now) + _RECHECK_S
        settings = self.settings
        if not settings.enabled:
            return
        if settings.spans and self._tracer is None:
            provider = settings.tracer_provider or trace.get_tracer_provider()
            if _is_real(provider):
                self._tracer = provider.get_tracer(_SCOPE, VERSION)
        if settings.metrics and self._instruments is None:
            meter_provider = settings.meter_provider or metrics.get_meter_provider()
            if _is_real(meter_provider):
                meter = meter_provider.get_meter(_SCOPE, VERSION)
                self._instruments = _instruments(meter, self._observe_decisions)
        active = self._tracer is not None or self._instruments is not None
        if active and not self.active and self._worker is not None:
            lifecycle.register(self, lifecycle.TELEMETRY)  # after the SDK's own exit handler
        self.active = active

    # -- the worker thread ----------------------------------------------------------------

    def _export_batch(self, records: list[Any]) -> None:
        for record in records:
            try:
                if type(record) is StatementRecord:
                    self._statement(record)
                elif type(record) is DenialRecord:
                    self._denial(record)
                elif type(record) is FetchRecord:
                    self._fetch(record)
            except Exception:  # telemetry never breaks anything; count and go on
                self.failures += 1
                if self.failures == 1 or self.failures % 1000 == 0:
                    logger.exception("telemetry export failed (%d times)", self.failures)

    def _statement(self, record: StatementRecord) -> None:
        decision = record.decision
        session = record.session
        error = record.error
        error_type = None if error is None else qualified_name(error)
        metric_context = _NO_EXEMPLARS
        tracer = self._tracer
        returned_rows = self.settings.returned_rows and record.rows is not None
        if tracer is not None:
            name, attributes = self._span_attributes(session, decision, record.parameterised)
            span = _start_span(tracer, name, record, attributes)
            if span.is_recording():  # the application's sampler kept it: finish its attributes
                # One by one: the SDK checks a single value directly, a mapping through the
                # abstract Mapping and Sequence types first (microseconds per span).
                set_attribute = span.set_attribute
                set_attribute("sqlfence.query_id", record.query_id)
                if returned_rows:
                    set_attribute("db.response.returned_rows", record.rows)
                    if record.truncated:
                        set_attribute("sqlfence.truncated", True)
                if error is not None:
                    set_attribute("error.type", error_type)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end(end_time=record.ts_ns + int(record.duration * 1e9))
            if self.settings.exemplars:
                metric_context = trace.set_span_in_context(span, record.context)
        if self._instruments is not None:
            duration, rows, _ = self._instruments
            attributes = self._metric_attributes(session, decision)
            if error_type is not None:
                attributes = {**attributes, "error.type": error_type}
            duration.record(record.duration, attributes, context=metric_context)
            if returned_rows:
                rows.record(record.rows, attributes, context=metric_context)
            self._count_decision(session, decision)

    def _denial(self, record: DenialRecord) -> None:
        decision = record.decision
        session = record.session
        if self._tracer is not None:
            name, attributes = self._span_attributes(session, decision, False)
            span = _start_span(self._tracer, name, record, attributes)
            if span.is_recording():
                span.set_attribute("error.type", "PolicyViolation")
                reasons = "; ".join(str(reason) for reason in decision.reasons)
                span.set_status(
                    Status(StatusCode.ERROR, f"denied: {reasons}" if reasons else "denied")
                )
            span.end(end_time=record.ts_ns)
        if self._instruments is not None:
            self._count_decision(session, decision)

    def _fetch(self, record: FetchRecord) -> None:
        if self._instruments is not None and self.settings.returned_rows:
            statement = record.statement
            attributes = self._metric_attributes(statement.session, statement.decision)
            self._instruments[1].record(record.rows, attributes, context=_NO_EXEMPLARS)

    def _count_decision(self, session: Session, decision: Decision) -> None:
        key = (
            _outcome(decision),
            session.system,
            decision.reasons[0].rule if decision.reasons else None,
        )
        counts = self._decisions
        counts[key] = counts.get(key, 0) + 1

    def _observe_decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        for (outcome, system, rule), count in list(self._decisions.items()):
            attributes = {"sqlfence.decision": outcome, "db.system.name": system}
            if rule is not None:
                attributes["sqlfence.rule"] = rule
            yield Observation(count, attributes)

    # -- attributes, cached per connection and decision -----------------------------------

    def _span_attributes(
        self, session: Session, decision: Decision, parameterised: bool
    ) -> tuple[str, dict[str, Any]]:
        """The span's name and the attributes known when it starts (what a sampler may
        look at), built once per connection and decision. Never modified once built: the
        SDK copies what it keeps."""
        key = (session.connection_id, decision.sql, parameterised)
        entry = self._span_attrs.get(key)
        if entry is not None and entry[0] is decision and entry[1] is session:
            return entry[2], entry[3]
        attributes = _common_attributes(session, decision)
        text = _query_text(decision.sql, parameterised, self.settings.query_text)
        if text is not None:
            attributes["db.query.text"] = text
        attributes["sqlfence.decision"] = _outcome(decision)
        if decision.reasons:
            attributes["sqlfence.rule"] = ",".join(dict.fromkeys(r.rule for r in decision.reasons))
            attributes["sqlfence.reason"] = "; ".join(str(r) for r in decision.reasons)
        if decision.rewritten:
            attributes["sqlfence.rewritten"] = True
        for name, value in (
            ("sqlfence.agent_id", session.agent_id),
            ("sqlfence.tenant", session.tenant),
            ("sqlfence.sandbox", session.sandbox),
        ):
            if value is not None:
                attributes[name] = value
        name = _span_name(session, decision)
        _remember(self._span_attrs, key, (decision, session, name, attributes))
        return name, attributes

    def _metric_attributes(self, session: Session, decision: Decision) -> dict[str, Any]:
        key = (session.connection_id, decision.sql)
        entry = self._metric_attrs.get(key)
        if entry is not None and entry[0] is decision and entry[1] is session:
            return entry[2]
        attributes = _common_attributes(session, decision)
        _remember(self._metric_attrs, key, (decision, session, attributes))
        return attributes


def _start_span(
    tracer: trace.Tracer,
    name: str,
    record: StatementRecord | DenialRecord,
    attributes: dict[str, Any],
) -> trace.Span:
    """The statement's CLIENT span, started at the statement's own time."""
    return tracer.start_span(
        name,
        context=record.context,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        start_time=record.ts_ns,
        record_exception=False,
        set_status_on_exception=False,
    )


def _is_real(provider: Any) -> bool:
    """A provider that records: not the API's proxy (nothing set yet) nor a no-op one."""
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return False
    if isinstance(provider, metrics.NoOpMeterProvider):
        return False
    # The metrics API's proxy provider is private; recognise it by name.
    return type(provider).__name__ != "_ProxyMeterProvider"


def _instruments(
    meter: metrics.Meter, observe_decisions: Callable[[CallbackOptions], Iterable[Observation]]
) -> tuple[Any, Any, Any]:
    duration = meter.create_histogram(
        "db.client.operation.duration",
        unit="s",
        description="Duration of database client operations.",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )
    rows = meter.create_histogram(
        "db.client.response.returned_rows",
        unit="{row}",
        description="The actual number of records returned by the database operation.",
        explicit_bucket_boundaries_advisory=[float(b) for b in ROWS_BUCKETS],
    )
    # Asynchronous: the counts are kept here and read at collection time, which saves an
    # SDK measurement (several microseconds) per statement.
    decisions = meter.create_observable_counter(
        "sqlfence.decisions",
        callbacks=[observe_decisions],
        unit="{decision}",
        description="Statements judged by the fence, by outcome (allowed, detected, denied).",
    )
    return duration, rows, decisions


def _common_attributes(session: Session, decision: Decision) -> dict[str, Any]:
    facts = decision.facts
    attributes: dict[str, Any] = {"db.system.name": session.system}
    if session.namespace is not None:
        attributes["db.namespace"] = session.namespace
    collection = collection_name(decision)
    if collection is not None:
        attributes["db.collection.name"] = collection
    if facts.operation:
        attributes["db.operation.name"] = facts.operation.upper()
    if facts.summary:
        attributes["db.query.summary"] = facts.summary[:_SUMMARY_MAX]
    if session.server_address is not None:
        attributes["server.address"] = session.server_address
        if session.server_port is not None:
            attributes["server.port"] = session.server_port
    return attributes


def collection_name(decision: Decision) -> str | None:
    """``db.collection.name``: the statement's one table as the query wrote it (its case,
    and its schema only when the query named one); None for no table or several.

    The facts hold the name normalised and qualified by the default schema; the summary
    holds it as written, without a schema.
    """
    facts = decision.facts
    if len(facts.tables) != 1:
        return None
    qualified = next(iter(facts.tables))
    schema, _, table = qualified.rpartition(".")
    written = next((w for w in facts.summary.split() if w.lower() == table.lower()), table)
    if schema:
        text = decision.sql
        lowered = text.lower()
        at = lowered.find(f"{schema}.{written}".lower())
        if at >= 0 and len(lowered) == len(text):
            return text[at : at + len(schema) + 1 + len(written)]
    return written


def _outcome(decision: Decision) -> str:
    if not decision.allowed:
        return "denied"
    return "detected" if decision.detected else "allowed"


def _span_name(session: Session, decision: Decision) -> str:
    facts = decision.facts
    if facts.summary:
        return facts.summary[:_SUMMARY_MAX]
    if facts.operation:
        target = next(iter(facts.tables)) if len(facts.tables) == 1 else session.namespace
        return f"{facts.operation.upper()} {target}" if target else facts.operation.upper()
    return session.system


def _query_text(sql: str, parameterised: bool, mode: str) -> str | None:
    if mode == "off":
        return None
    if mode == "raw" or (mode == "auto" and parameterised):
        return sql
    return mask_literals(sql)


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
