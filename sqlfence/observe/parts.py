"""The parts of the observer's pipeline: the audit log, the monitor, telemetry, a caller's
own ``Observer``, and a sandbox's ``on_event``. Each reads the events it cares about and
ignores the rest.

On the query's thread they only take timestamps, update counters and queue records; JSON,
HMAC, files, spans and webhooks happen on background threads.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlfence.errors import AuditError
from sqlfence.observe.alerts import Alert
from sqlfence.observe.events import (
    ALERT,
    CONNECT,
    DISCONNECT,
    SandboxEvent,
    plain_event,
    session_event,
)
from sqlfence.observe.records import DenialRecord, FetchRecord, StatementRecord, snapshot_params
from sqlfence.observe.steps import (
    ATTACHED,
    CLOSING,
    CONNECTED,
    DISCONNECTED,
    FETCHED,
    FINISHED,
    PHASES,
    REFUSED,
    STARTED,
    Closing,
    ConnectionEvent,
    Counted,
    Event,
    Tick,
)

if TYPE_CHECKING:
    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.monitor import Monitor
    from sqlfence.observe.observer import Observer
    from sqlfence.observe.telemetry import Telemetry


def _reads(record: StatementRecord) -> bool:
    """A statement that ran and returns rows (its result is read after it finished)."""
    facts = record.decision.facts
    return record.error is None and not facts.writes and not facts.is_ddl


def _rows_to_tell(record: StatementRecord) -> bool:
    """Rows that need a ``fetch`` event: some, a cut result, or a read's zero rows."""
    return bool(record.rows or record.truncated or _reads(record))


EventSink = Callable[[dict[str, Any]], None]
"""A sandbox's ``on_event``: called with each lifecycle event as a dict
(``SandboxEvent.as_dict()``: ``event``, ``at``, ``sandbox``, ``agent_id``, ``tenant``,
``backend``, the step's own fields)."""


class AuditPart:
    """Queues each statement's, denial's, connection's, alert's and sandbox step's audit
    event (a ``SandboxEvent`` as its ``sandbox.*`` line, ``audit_event()``).

    A statement's event is queued when the driver returns. Its rows, known when the result
    is done, go into that event when the writer has not taken it yet (usual in ``batched``
    durability), else into a ``fetch`` event with the same ``query_id`` (always in
    ``sync``).
    """

    name = "audit"
    handles: tuple[type[Event], ...] = (
        StatementRecord,
        DenialRecord,
        ConnectionEvent,
        Alert,
        SandboxEvent,
    )
    phases = PHASES
    records = True

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._keep_params = log.settings.log_params
        # Batched events usually wait in the queue longer than a result takes to read: rows
        # can then go into the statement's own event. A sync event is written before that.
        self._fold_rows = log.settings.durability == "batched"

    def handler_for(self, kind: type[Event], phase: int) -> Callable[[Event], None]:
        """Each phase of a statement's record has its own handler; the rest ``handle``."""
        if kind is StatementRecord:
            handlers = {STARTED: self._started, FINISHED: self._finished, FETCHED: self._fetched}
            return handlers[phase]  # type: ignore[return-value]
        return self.handle

    def _started(self, event: StatementRecord) -> None:
        if self.log.failure is not None:
            self.log.refuse()
        event.params = snapshot_params(event.params) if self._keep_params else None

    def _finished(self, event: StatementRecord) -> None:
        if self._fold_rows and _reads(event):
            event.await_rows()
        try:
            self.log.submit(event)
        except AuditError:
            event.forget_rows()  # no fetch follows a statement that raised
            raise

    def _fetched(self, event: StatementRecord) -> None:
        if not event.claim_rows() and _rows_to_tell(event):
            follow_up = FetchRecord(event, event.rows or 0, event.truncated)
            self.log.submit(follow_up, acknowledge=False)

    def handle(self, event: Event) -> None:
        """Queue the event's audit record; refuse (fail closed) while the files refuse."""
        log = self.log
        if type(event) is StatementRecord:
            if event.phase in self.phases:
                self.handler_for(StatementRecord, event.phase)(event)
        elif type(event) is DenialRecord:
            log.submit(event)
        elif type(event) is ConnectionEvent:
            if event.phase == CONNECTED:
                if log.failure is not None:
                    log.refuse()
                log.submit(session_event(event.link.session, CONNECT))
            elif event.phase == DISCONNECTED:
                record = session_event(event.link.session, DISCONNECT)
                stats = event.link.stats
                if stats is not None:
                    record["details"] = stats.to_metrics()
                log.submit(record)
        elif type(event) is Alert:
            log.submit(_alert_event(event))
        elif type(event) is SandboxEvent:
            log.submit(event.audit_event())

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the events queued so far are written."""
        self.log.flush(timeout)

    def close(self) -> None:
        """Nothing to do: the log is shared, and released by its owner."""


def _alert_event(alert: Alert) -> dict[str, object]:
    details = {
        "kind": alert.kind,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "connection_id": alert.connection_id,
        **alert.details,
    }
    return plain_event(
        ALERT,
        alert.severity,
        agent_id=alert.agent_id,
        tenant=alert.tenant,
        sandbox=alert.sandbox,
        details=details,
    )


class MonitorPart:
    """Counts and times statements per connection, agent and sandbox; raises alerts."""

    name = "monitor"
    handles: tuple[type[Event], ...] = (Counted, StatementRecord, DenialRecord, ConnectionEvent)
    phases = frozenset({FINISHED, FETCHED})  # nothing to count when a statement starts
    records = False

    def __init__(self, monitor: Monitor, notify: Callable[[Alert], None]) -> None:
        self.monitor = monitor
        self._notify = notify  # an alert raised becomes an event of the pipeline
        self._statement = monitor.statement

    def handler_for(self, kind: type[Event], phase: int) -> Callable[[Event], None]:
        """What handles ``kind`` at ``phase``: the counting of a statement (a Counted token,
        the default observer's hot path, or a record) on its own, else ``handle``."""
        if kind is Counted and phase == FINISHED:
            return self._count_finished  # type: ignore[return-value]
        if kind is Counted and phase == FETCHED:
            return self._count_fetched  # type: ignore[return-value]
        if kind is StatementRecord and phase == FINISHED:
            return self._record_finished  # type: ignore[return-value]
        if kind is StatementRecord and phase == FETCHED:
            return self._record_fetched  # type: ignore[return-value]
        return self.handle

    def _record_finished(self, event: StatementRecord) -> None:
        link = event.link
        if link is not None and link.stats is not None:
            self._statement(
                link.stats,
                event.duration,
                event.error,
                event.decision,
                event.sql,
                event.rowcount,
                self._notify,
            )

    def _record_fetched(self, event: StatementRecord) -> None:
        link = event.link
        if link is not None and link.stats is not None:
            self.monitor.fetched(link.stats, event.rows or 0, event.truncated)

    def _count_finished(self, event: Counted) -> None:
        stats = event.link.stats
        if stats is not None:
            self._statement(
                stats,
                event.duration,
                event.error,
                event.decision,
                event.sql,
                event.rowcount,
                self._notify,
            )

    def _count_fetched(self, event: Counted) -> None:
        stats = event.link.stats
        if stats is not None:  # Monitor.fetched, inline
            stats.rows_returned += event.rows
            if event.truncated:
                stats.truncated += 1

    def handle(self, event: Event) -> None:
        """Count the event on its connection's counters."""
        if type(event) is Counted or type(event) is StatementRecord:
            link = event.link
            stats = None if link is None else link.stats
            if stats is None:
                return
            if event.phase == FINISHED:
                self._statement(
                    stats,
                    event.duration,
                    event.error,
                    event.decision,
                    event.sql,
                    event.rowcount,
                    self._notify,
                )
            else:  # FETCHED
                self.monitor.fetched(stats, event.rows or 0, event.truncated)
        elif type(event) is DenialRecord:
            if event.link is not None and event.link.stats is not None:
                self.monitor.denial(event.link.stats, event.decision, event.sql, self._notify)
        elif type(event) is ConnectionEvent:
            link = event.link
            if event.phase in (CONNECTED, ATTACHED):
                link.stats = self.monitor.attach(link.session)
            elif event.phase in (DISCONNECTED, REFUSED) and link.stats is not None:
                self.monitor.detach(link.stats)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued alerts were delivered."""
        self.monitor.flush(timeout)

    def close(self) -> None:
        """Nothing to do: the monitor is shared, and released by its owner."""


class TelemetryPart:
    """A CLIENT span per statement and the duration histogram, through ``Telemetry``.

    A span goes to the worker when its statement finishes. With returned rows recorded
    (opt-in), a read's span waits for its rows instead; if the caller never finishes the
    result, it is exported when the connection runs its next statement, closes, or the
    pipeline closes.
    """

    name = "telemetry"
    handles: tuple[type[Event], ...] = (
        StatementRecord,
        DenialRecord,
        ConnectionEvent,
        Tick,
        Closing,
    )

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.records = telemetry.active  # while an SDK is configured (looked up on each Tick)
        self._rows = telemetry.settings.returned_rows
        self.phases = PHASES if self._rows else frozenset({STARTED, FINISHED})
        # connection -> its read's record, waiting for the rows. Only the connection's own
        # thread puts its entry; closing takes whatever is left. Each step is one dict
        # operation (atomic), so no lock: a record is taken by exactly one side.
        self._waiting: dict[int, StatementRecord] = {}

    def handler_for(self, kind: type[Event], phase: int) -> Callable[[Event], None]:
        """Each phase of a statement's record has its own handler; the rest ``handle``."""
        if kind is StatementRecord:
            handlers = {STARTED: self._started, FINISHED: self._finished, FETCHED: self._fetched}
            return handlers[phase]  # type: ignore[return-value]
        return self.handle

    def _started(self, event: StatementRecord) -> None:
        if self._waiting:
            self._export_waiting(event.session.connection_id)
        event.context = self.telemetry.capture(event.t0)

    def _finished(self, event: StatementRecord) -> None:
        telemetry = self.telemetry
        if not telemetry.active:
            return
        if self._rows and _reads(event):  # its span waits for the rows
            connection = event.session.connection_id
            earlier = self._waiting.pop(connection, None)
            self._waiting[connection] = event
            if earlier is not None:  # two cursors interleaved: a span without rows
                telemetry.submit(earlier)
        else:
            telemetry.submit(event)

    def _fetched(self, event: StatementRecord) -> None:
        telemetry = self.telemetry
        if not telemetry.active:  # returned rows are recorded (else not on this route)
            return
        connection = event.session.connection_id
        if self._waiting.get(connection) is event:
            if self._waiting.pop(connection, None) is event:
                telemetry.submit(event)
            # else closing took it, and exports it (its rows were set before)
        elif event.rows or event.truncated:  # the span went without rows
            telemetry.submit(FetchRecord(event, event.rows or 0, event.truncated))

    def handle(self, event: Event) -> None:
        """Capture the parent context at the start; export spans when they are complete."""
        telemetry = self.telemetry
        if type(event) is StatementRecord:
            if event.phase in self.phases:
                self.handler_for(StatementRecord, event.phase)(event)
        elif type(event) is Tick:  # notice an SDK configured later
            self.records = telemetry.poll(event.now)
        elif type(event) is DenialRecord:
            if self._waiting:
                self._export_waiting(event.session.connection_id)
            event.context = telemetry.capture(perf_counter())
            if telemetry.active:
                telemetry.submit(event)
        elif type(event) is ConnectionEvent:
            if event.phase == DISCONNECTED:
                self._export_waiting(event.link.session.connection_id)
        elif event is CLOSING:
            for connection in list(self._waiting):
                self._export_waiting(connection)

    def _export_waiting(self, connection: int) -> None:
        record = self._waiting.pop(connection, None)
        if record is not None:
            self.telemetry.submit(record)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the records handed on so far were exported."""
        self.telemetry.flush(timeout)

    def close(self) -> None:
        """Export what the worker holds (the telemetry itself is shared)."""
        self.telemetry.flush(10.0)


class ObserverPart:
    """A caller's own ``Observer`` (its six hooks) as a part of the pipeline."""

    handles: tuple[type[Event], ...] = (StatementRecord, DenialRecord, ConnectionEvent)
    phases = PHASES
    records = True

    def __init__(self, observer: Observer, name: str = "caller") -> None:
        self.observer = observer
        self.name = name

    def handle(self, event: Event) -> None:
        """Call the hook the event stands for."""
        observer = self.observer
        if type(event) is StatementRecord:
            session = event.session
            if event.phase == STARTED:
                event.caller_token = observer.started(
                    session, event.sql, event.decision, event.params
                )
            elif event.phase == FINISHED:
                observer.finished(session, event.caller_token, event.rowcount, event.error)
            elif event.phase == FETCHED:
                observer.fetched(session, event.caller_token, event.rows or 0, event.truncated)
        elif type(event) is DenialRecord:
            observer.denied(event.session, event.sql, event.decision)
        elif type(event) is ConnectionEvent:
            if event.phase == CONNECTED:
                observer.connected(event.link.session)
            elif event.phase == DISCONNECTED:
                observer.disconnected(event.link.session)

    def flush(self, timeout: float | None = None) -> None:
        """The observer's own flush."""
        self.observer.flush(timeout)

    def close(self) -> None:
        """The observer's own close."""
        self.observer.close()


class CallbackPart:
    """A sandbox's ``on_event`` as a part: called with each ``SandboxEvent`` as a dict
    (``as_dict()``), on the thread of the step. It records no statements."""

    handles: tuple[type[Event], ...] = (SandboxEvent,)
    phases: frozenset[int] = frozenset()  # no phase of a statement reaches it
    records = False

    def __init__(self, function: EventSink, name: str = "on_event") -> None:
        self.function = function
        self.name = name

    def handle(self, event: Event) -> None:
        """Call the function with the event's dict."""
        if type(event) is SandboxEvent:
            self.function(event.as_dict())

    def flush(self, timeout: float | None = None) -> None:
        """Nothing held back."""

    def close(self) -> None:
        """Nothing to close: the callable is the caller's."""
