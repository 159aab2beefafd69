"""``FanoutObserver``: the one observer the cursor calls, feeding audit, monitor and telemetry.

Each part may be off. A part that raises is counted (``metrics()["observer"]``) and logged,
never raised into the query, with one exception: an audit log that fails closed raises
``AuditError`` from ``connected``, ``denied``, ``started`` and ``finished`` when it cannot
record them. The hooks only take timestamps, update the connection's counters and queue a
record; JSON, HMAC, files, spans and webhooks happen on background threads.

A statement's audit event is queued when the driver returns (``finished``). Its rows, known
at ``fetched``, go into that event when the writer has not taken it yet (usual in
``batched`` durability), else into a ``fetch`` event with the same ``query_id`` (always in
``sync``). A span waits for the rows; if the caller never finishes the result, it is
exported when the connection runs its next statement, closes, or the interpreter exits.
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path
from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from sqlfence.errors import AuditError
from sqlfence.observe import lifecycle
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.events import CONNECT, DISCONNECT, plain_event, session_event
from sqlfence.observe.monitor import ConnectionStats, Monitor
from sqlfence.observe.observer import NULL_OBSERVER, Observer, Session
from sqlfence.observe.records import DenialRecord, FetchRecord, StatementRecord, snapshot_params
from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
from sqlfence.observe.telemetry import Telemetry

if TYPE_CHECKING:
    from sqlfence.observe.alerts import Alert
    from sqlfence.policies.engine import Decision

logger = logging.getLogger("sqlfence.observe")
_PARTS = ("audit", "monitor", "telemetry", "observer")


class _Connection:
    """What the observer keeps per open connection."""

    __slots__ = ("lock", "pending", "session", "stats")

    def __init__(self, session: Session, stats: ConnectionStats | None) -> None:
        self.session = session
        self.stats = stats
        self.pending: StatementRecord | None = None  # a result whose rows are not known yet
        self.lock = threading.Lock()


class FanoutObserver(Observer):
    """Audit + monitor + telemetry behind the ``Observer`` hooks. Build with ``build_observer``.

    ``release`` are called once by ``close()`` (they hand back shared audit logs, monitors
    and telemetry).
    """

    def __init__(
        self,
        *,
        audit: AuditLog | None = None,
        monitor: Monitor | None = None,
        telemetry: Telemetry | None = None,
        release: tuple[Any, ...] = (),
    ) -> None:
        self.audit = audit
        self.monitor = monitor
        self.telemetry = telemetry
        self._release = release
        self._connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._keep_params = audit is not None and audit.settings.log_params
        # Batched events usually wait in the queue longer than a result takes to read: rows
        # can then go into the statement's own event. A sync event is written before that.
        self._fold_rows = audit is not None and audit.settings.durability == "batched"
        slow_ms = (monitor.settings if monitor else MonitorSettings()).slow_threshold_ms
        self._slow_s = slow_ms / 1000
        self.failures = dict.fromkeys(_PARTS, 0)
        self._closed = False
        lifecycle.register(self, lifecycle.OBSERVERS)

    # -- connections ----------------------------------------------------------------------

    def connected(self, session: Session) -> None:
        """Start counting for ``session`` and record the connection. Raises AuditError when
        the connection cannot be audited and the audit log fails closed."""
        try:
            self._attach(session)
            if self.audit is not None:
                try:
                    if self.audit.failure is not None:
                        self.audit.refuse()
                    self.audit.submit(session_event(session, CONNECT))
                except AuditError:
                    self._detach(session)
                    raise
                except Exception as error:
                    self._failed("audit", error)
        except AuditError:
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def _attach(self, session: Session) -> _Connection:
        stats = None
        if self.monitor is not None:
            try:
                stats = self.monitor.attach(session)
            except Exception as error:
                self._failed("monitor", error)
        connection = _Connection(session, stats)
        self._connections[session.connection_id] = connection
        return connection

    def _detach(self, session: Session) -> _Connection | None:
        connection = self._connections.pop(session.connection_id, None)
        if connection is not None and self.monitor is not None and connection.stats is not None:
            try:
                self.monitor.detach(connection.stats)
            except Exception as error:
                self._failed("monitor", error)
        return connection

    def disconnected(self, session: Session) -> None:
        """Record what is pending, the disconnection, and stop counting. Never raises: an
        audit failure here is counted (the connection is closed either way)."""
        try:
            connection = self._detach(session)
            if connection is None:
                return
            self._flush_pending(connection)
            stats = connection.stats
            if self.audit is not None:
                try:
                    event = session_event(session, DISCONNECT)
                    if stats is not None:
                        event["details"] = stats.to_metrics()
                    self.audit.submit(event)
                except Exception as error:
                    self._failed("audit", error)
        except Exception as error:  # never into the query
            self._failed("observer", error)

    # -- statements (the hot path) --------------------------------------------------------

    def denied(self, session: Session, sql: str, decision: Decision) -> None:
        """Count the denial, record it, and give it an error span. Raises AuditError when
        the denial cannot be audited and the audit log fails closed."""
        try:
            connection = self._connections.get(session.connection_id) or self._attach(session)
            if connection.pending is not None:
                self._flush_pending(connection)
            if self.monitor is not None and connection.stats is not None:
                try:
                    self.monitor.denial(connection.stats, decision, sql, self._notify)
                except Exception as error:
                    self._failed("monitor", error)
            context = None
            if self.telemetry is not None:
                try:
                    context = self.telemetry.capture(perf_counter())
                except Exception as error:
                    self._failed("telemetry", error)
            record = DenialRecord(session, sql, decision, context)
            self._telemetry(record)
            self._audit(record)
        except AuditError as error:
            error.ran = False  # a denied statement never reaches the database
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def started(self, session: Session, sql: str, decision: Decision, params: Any) -> Any:
        """Take the start time (and the parent span). The token is the statement's record,
        or, when nothing will be written or exported, a light tuple for the monitor.

        Raises AuditError, before anything reaches the database, while the audit log
        refuses writes and fails closed.
        """
        try:
            t0 = perf_counter()
            connection = self._connections.get(session.connection_id) or self._attach(session)
            if connection.pending is not None:
                self._flush_pending(connection)
            context = None
            telemetry = self.telemetry
            if telemetry is not None:
                try:
                    context = telemetry.capture(t0)
                except Exception as error:
                    self._failed("telemetry", error)
            audit = self.audit
            if audit is None:
                if context is None:
                    return (t0, decision, sql, connection.stats)
            elif audit.failure is not None:
                audit.refuse()
            record = StatementRecord(session, sql, decision, t0, time_ns(), next(self._ids))
            record.context = context
            if params is not None and not (isinstance(params, (tuple, list, dict)) and not params):
                record.parameterised = True
                if self._keep_params:
                    record.params = snapshot_params(params)
            return record
        except AuditError:
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)
            return None

    def finished(
        self, session: Session, token: Any, rowcount: int, error: BaseException | None
    ) -> None:
        """Time the statement, count it, and queue its audit event (in ``sync`` durability,
        return once it is on disk). Raises AuditError when the event cannot be recorded
        and the audit log fails closed; the statement has run then (``error.ran``)."""
        try:
            end = perf_counter()
            if type(token) is tuple:  # nothing to record: only count
                t0, decision, sql, stats = token
                if stats is not None:
                    try:
                        self.monitor.statement(  # type: ignore[union-attr] # stats imply a monitor
                            stats, end - t0, error, decision, sql, rowcount, self._notify
                        )
                    except Exception as failure:
                        self._failed("monitor", failure)
                return
            if type(token) is not StatementRecord:
                return
            record = token
            duration = record.duration = end - record.t0
            record.rowcount = rowcount
            record.error = error
            connection = self._connections.get(session.connection_id)
            stats = connection.stats if connection is not None else None
            if stats is not None:
                try:
                    record.slow = self.monitor.statement(  # type: ignore[union-attr]
                        stats, duration, error, record.decision, record.sql, rowcount, self._notify
                    )
                except Exception as failure:
                    self._failed("monitor", failure)
            else:
                record.slow = duration >= self._slow_s
            facts = record.decision.facts
            reads = error is None and not facts.writes and not facts.is_ddl
            telemetry = self.telemetry
            if telemetry is not None and telemetry.active:
                if reads and connection is not None:  # its span waits for the rows
                    with connection.lock:
                        earlier, connection.pending = connection.pending, record
                    if earlier is not None:  # two cursors interleaved: a span without rows
                        self._telemetry(earlier)
                else:
                    self._telemetry(record)
            if reads and self._fold_rows:
                record.await_rows()
            self._audit(record)
        except AuditError:
            raise
        except Exception as failure:  # never into the query
            self._failed("observer", failure)

    def fetched(self, session: Session, token: Any, rows: int, truncated: bool) -> None:
        """Count the rows and record them: in the statement's event when the audit writer
        has not taken it yet, else in a ``fetch`` event with its ``query_id``."""
        # The union-attr ignores below: stats exist only when there is a monitor.
        try:
            if type(token) is tuple:
                stats = token[3]
                if stats is not None:
                    self.monitor.fetched(stats, rows, truncated)  # type: ignore[union-attr]
                return
            if type(token) is not StatementRecord:
                return
            connection = self._connections.get(session.connection_id)
            if connection is None:
                return
            if connection.stats is not None:
                self.monitor.fetched(connection.stats, rows, truncated)  # type: ignore[union-attr]
            follow_up = None
            if not token.add_rows(rows, truncated) and self.audit is not None:
                facts = token.decision.facts
                reads = token.error is None and not facts.writes and not facts.is_ddl
                if rows or truncated or reads:
                    follow_up = FetchRecord(token, rows, truncated)
                    try:
                        self.audit.submit(follow_up, acknowledge=False)
                    except Exception as error:
                        self._failed("audit", error)
            telemetry = self.telemetry
            if telemetry is None or not telemetry.active:
                return
            mine = False
            if connection.pending is token:
                with connection.lock:
                    mine = connection.pending is token
                    if mine:
                        connection.pending = None
            if mine:
                self._telemetry(token)
            elif rows or truncated:  # the span went without rows; the histogram gets them
                self._telemetry(follow_up or FetchRecord(token, rows, truncated))
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def _flush_pending(self, connection: _Connection) -> None:
        with connection.lock:
            record, connection.pending = connection.pending, None
        if record is not None:
            self._telemetry(record)

    def _audit(self, record: StatementRecord | DenialRecord) -> None:
        if self.audit is not None:
            try:
                self.audit.submit(record)
            except AuditError:
                if type(record) is StatementRecord:
                    record.forget_rows()  # no fetch follows a statement that raised
                raise
            except Exception as error:
                self._failed("audit", error)

    def _telemetry(self, record: StatementRecord | DenialRecord | FetchRecord) -> None:
        telemetry = self.telemetry
        if telemetry is not None and telemetry.active:
            try:
                telemetry.submit(record)
            except Exception as error:
                self._failed("telemetry", error)

    def _notify(self, alert: Alert) -> None:
        """An alert raised by a hook: record it in the audit log as well."""
        if self.audit is not None:
            details = {
                "kind": alert.kind,
                "message": alert.message,
                "value": alert.value,
                "threshold": alert.threshold,
                "connection_id": alert.connection_id,
                **alert.details,
            }
            self.audit.submit(
                plain_event(
                    "alert",
                    alert.severity,
                    agent_id=alert.agent_id,
                    tenant=alert.tenant,
                    sandbox=alert.sandbox,
                    details=details,
                )
            )

    # -- reading and the rest -------------------------------------------------------------

    def metrics(self, session: Session) -> dict[str, Any]:
        """The connection's metrics, its agent's under ``agent``, health under ``observer``."""
        result: dict[str, Any] = {}
        connection = self._connections.get(session.connection_id)
        monitor = self.monitor
        try:
            if monitor is not None and connection is not None and connection.stats is not None:
                result.update(monitor.metrics(connection.stats))
                if session.agent_id is not None:
                    result["agent"] = monitor.agent_metrics(session.agent_id)
        except Exception as error:
            self._failed("monitor", error)
        result["observer"] = self.health()
        return result

    def health(self) -> dict[str, Any]:
        """Failures per part, audit queue and drops, telemetry drops, alert deliveries."""
        health: dict[str, Any] = {"failures": dict(self.failures)}
        if self.audit is not None:
            health["audit"] = self.audit.stats()
        if self.telemetry is not None:
            health["telemetry"] = {
                "active": self.telemetry.active,
                "queued": self.telemetry.queued,
                "failures": self.telemetry.failures,
            }
        if self.monitor is not None:
            dispatcher = self.monitor.dispatcher
            health["alerts"] = {
                "delivered": dispatcher.delivered,
                "failures": dispatcher.failures,
                "dropped": dispatcher.dropped,
            }
        return health

    def report_resource(
        self, kind: str, value: float, session: Session | None = None, **where: Any
    ) -> None:
        """A resource reading from the sandbox layer (see ``Monitor.report_resource``)."""
        if self.monitor is not None:
            self.monitor.report_resource(kind, value, session=session, notify=self._notify, **where)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until what was recorded so far reached the files, providers and webhooks."""
        for part in (self.telemetry, self.audit, self.monitor):
            if part is not None:
                part.flush(timeout)

    def close(self) -> None:
        """Record pending statements and hand back the shared parts. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.at_exit()
        if self.telemetry is not None:
            self.telemetry.flush(10.0)
        for release in self._release:
            try:
                release()
            except Exception:
                logger.exception("releasing %r failed", release)
        lifecycle.unregister(self, lifecycle.OBSERVERS)

    def at_exit(self) -> None:
        """Record every statement still waiting for its rows."""
        for connection in list(self._connections.values()):
            self._flush_pending(connection)

    def _failed(self, part: str, error: BaseException) -> None:
        count = self.failures[part] = self.failures[part] + 1
        if count == 1 or count % 1000 == 0:
            logger.error("sqlfence %s failed (%d times): %r", part, count, error, exc_info=error)


# -- building ---------------------------------------------------------------------------

_S = TypeVar("_S", bound=BaseModel)
_shared_lock = threading.Lock()
_monitors: dict[MonitorSettings, list[Any]] = {}
_telemetries: dict[TelemetrySettings, list[Any]] = {}


def build_observer(audit: Any = None, monitoring: Any = None, telemetry: Any = True) -> Observer:
    """The observer for one connection, from ``connect()``'s keyword arguments.

    ``audit``: None/False (off), True (default settings), a directory (str or Path), an
    ``AuditSettings``, a dict of its keys, or an ``AuditLog`` (used as is, not closed).
    ``monitoring``: None (metrics, no alert rules but the denial burst), False (off), a dict of
    ``MonitorSettings`` keys, a ``MonitorSettings`` or a ``Monitor``. ``telemetry``: True, False,
    a dict, a ``TelemetrySettings`` or a ``Telemetry``. Connections with equal settings share
    one audit log, one monitor (so agent metrics span connections) and one telemetry worker.
    Raises pydantic's ValidationError (a ValueError) for unknown or invalid keys.
    """
    releases: list[Any] = []
    audit_log = _audit(audit, releases)
    try:
        monitor = _shared_part(monitoring, MonitorSettings, Monitor, _monitors, releases)
        tel = _shared_part(telemetry, TelemetrySettings, Telemetry, _telemetries, releases)
    except BaseException:
        for release in releases:
            release()
        raise
    if audit_log is None and monitor is None and tel is None:
        return NULL_OBSERVER
    return FanoutObserver(audit=audit_log, monitor=monitor, telemetry=tel, release=tuple(releases))


def _audit(value: Any, releases: list[Any]) -> AuditLog | None:
    if value is None or value is False:
        return None
    if isinstance(value, AuditLog):
        return value
    if isinstance(value, (str, Path)):
        value = AuditSettings(directory=Path(value))
    settings = _settings(value, AuditSettings)
    if settings is None:
        raise TypeError(
            f"audit= takes a bool, a directory, a dict or AuditSettings, not {type(value).__name__}"
        )
    if not settings.enabled:
        return None
    log = AuditLog.shared(settings)
    releases.append(log.release)
    return log


def _settings(value: Any, settings_type: type[_S]) -> _S | None:
    """``value`` as ``settings_type``: True for the defaults, a dict of its keys, or the
    settings themselves. None for anything else (the caller names what it accepts)."""
    if value is True:
        return settings_type()
    if isinstance(value, dict):
        return settings_type.model_validate(value)
    if isinstance(value, settings_type):
        return value
    return None


def _shared_part(
    value: Any,
    settings_type: Any,
    part_type: Any,
    registry: dict[Any, list[Any]],
    releases: list[Any],
) -> Any:
    if value is False:
        return None
    if isinstance(value, part_type):
        return value
    settings = _settings(True if value is None else value, settings_type)
    if settings is None:
        raise TypeError(
            f"expected a bool, a dict or {settings_type.__name__}, not {type(value).__name__}"
        )
    if not settings.enabled:
        return None
    with _shared_lock:
        entry = registry.get(settings)
        if entry is None:
            entry = registry[settings] = [part_type(settings), 0]
        entry[1] += 1
    part = entry[0]

    def release() -> None:
        with _shared_lock:
            entry[1] -= 1
            if entry[1] > 0 or registry.get(settings) is not entry:
                return
            del registry[settings]
        part.close()

    releases.append(release)
    return part
