"""``Pipeline``: the one observer the cursor calls. Each step of a connection's life becomes
an event, handed to every part in order by one loop (``_handle``), structlog's way.

The parts (``parts.py``: audit, monitor, telemetry, a caller's ``Observer``) each have one
small interface: ``handle(event)``, ``flush()``, ``close()``. A part that raises is counted
(``metrics()["observer"]["failures"]``) and logged, never raised into the query, with one
exception: an audit log that fails closed raises ``AuditError``, which the loop raises once
every part has seen the event (from ``connected``, ``denied``, ``started`` and ``finished``).

The events: a ``ConnectionEvent`` (connected, attached, refused, disconnected), the
statement's ``StatementRecord`` at each ``phase`` (started, finished, fetched), a
``DenialRecord``, an ``Alert`` the monitor raised, ``CLOSING``, a sandbox's
``SandboxEvent`` (``record``: its ``on_event`` and its audit log's ``sandbox.*`` line); and,
when no part records statements (no audit log, no telemetry SDK), the connection's
``Counted``, which costs no allocation on the query's thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from time import perf_counter, time_ns
from typing import TYPE_CHECKING, Any

from sqlfence.errors import AuditError
from sqlfence.observe import lifecycle
from sqlfence.observe.observer import Observer, Session
from sqlfence.observe.parts import AuditPart, MonitorPart, TelemetryPart
from sqlfence.observe.records import DenialRecord, StatementRecord
from sqlfence.observe.settings import MonitorSettings
from sqlfence.observe.steps import (
    ATTACHED,
    CLOSING,
    CONNECTED,
    DISCONNECTED,
    EVENT_TYPES,
    FETCHED,
    FINISHED,
    REFUSED,
    STARTED,
    ConnectionEvent,
    Counted,
    Event,
    Link,
    Part,
    Tick,
    Token,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlfence.observe.alerts import Alert
    from sqlfence.observe.audit import AuditLog
    from sqlfence.observe.events import SandboxEvent
    from sqlfence.observe.monitor import Monitor
    from sqlfence.observe.telemetry import Telemetry
    from sqlfence.policies.engine import Decision

logger = logging.getLogger("sqlfence.observe")
Handler = tuple[Callable[[Event], None], str]  # a part's handler and the part's name
_TICK_S = 1.0


class Pipeline(Observer):
    """The parts behind the ``Observer`` hooks. Build with ``build_observer``.

    ``monitor``, ``telemetry``, then ``parts`` (a caller's ``ObserverPart``...), then
    ``audit`` are the parts, in that order; the three are kept as attributes for
    ``metrics()``, ``health()`` and ``report_resource()``.
    ``release`` are called once by ``close()`` (they hand back shared audit logs, monitors
    and telemetry).
    """

    def __init__(
        self,
        *,
        audit: AuditLog | None = None,
        monitor: Monitor | None = None,
        telemetry: Telemetry | None = None,
        parts: Iterable[Part] = (),
        release: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self.audit = audit
        self.monitor = monitor
        self.telemetry = telemetry
        # The monitor first (an alert it raises is recorded), the audit log last (the
        # denial's event carries the trace the telemetry part captured; a caller's part
        # sees the parameters before the audit log keeps or drops them).
        parts = tuple(parts)
        built: list[Part] = []
        if monitor is not None:
            built.append(MonitorPart(monitor, self._notify))
        if telemetry is not None:
            built.append(TelemetryPart(telemetry))
        built.extend(parts)
        if audit is not None:
            built.append(AuditPart(audit))
        self.parts: tuple[Part, ...] = tuple(built)
        # Each kind of event goes to the parts that act on it, in order; a statement's
        # phases each have their own route (a part that only counts finished statements is
        # not called when one starts).
        self._routes = {
            kind: tuple(part for part in built if kind in part.handles) for kind in EVENT_TYPES
        }
        # A statement's phases go to (handler, name) pairs, bound once: each part's handler
        # for that kind and phase (``handler_for``), so no part tells phases apart per event.
        self._started_route = self._handlers(StatementRecord, STARTED)
        self._finished_route = self._handlers(StatementRecord, FINISHED)
        self._fetched_route = self._handlers(StatementRecord, FETCHED)
        self._counted_finished = self._handlers(Counted, FINISHED)
        self._counted_fetched = self._handlers(Counted, FETCHED)
        self._recording = self._records()
        self._release = release
        self._links: dict[int, Link] = {}
        self._ids = itertools.count(1)
        slow_ms = (monitor.settings if monitor else MonitorSettings()).slow_threshold_ms
        self._slow_s = slow_ms / 1000
        names = ("audit", "monitor", "telemetry", *(part.name for part in parts), "observer")
        self.failures = dict.fromkeys(names, 0)
        self._next_tick = 0.0
        self._closed = False
        lifecycle.register(self, lifecycle.OBSERVERS)

    def _handlers(self, kind: type[Event], phase: int) -> tuple[Handler, ...]:
        """The (handler, name) of each part acting on ``kind`` at ``phase``, in order: its
        ``handler_for(kind, phase)`` where it has one, else its ``handle``."""
        found = []
        for part in self._routes[kind]:
            if phase in part.phases:
                handler_for = getattr(part, "handler_for", None)
                handler = part.handle if handler_for is None else handler_for(kind, phase)
                found.append((handler, part.name))
        return tuple(found)

    def _records(self) -> bool:
        """Whether some part records statements now (else they go as ``Counted``)."""
        return any(part.records for part in self.parts)

    # -- the loop -------------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        """Hand ``event`` to every part that acts on its kind."""
        refusal = None
        for part in self._routes[type(event)]:
            try:
                part.handle(event)
            except AuditError as error:
                refusal = error
            except Exception as error:
                self._failed(part.name, error)
        if refusal is not None:
            raise refusal

    def _deliver(self, handlers: tuple[Handler, ...], event: Event) -> None:
        """The loop of a statement's phase: ``event`` to each handler, one ``try`` each; a
        fail-closed refusal is raised after the last."""
        refusal = None
        for handle, name in handlers:
            try:
                handle(event)
            except AuditError as error:
                refusal = error
            except Exception as error:
                self._failed(name, error)
        if refusal is not None:
            raise refusal

    def _tick(self, now: float) -> None:
        """About once a second: parts look things up again (telemetry, an SDK set up since),
        and whether a part records statements is asked again."""
        self._next_tick = now + _TICK_S
        try:
            self._handle(Tick(now))
        finally:
            self._recording = self._records()

    # -- connections ----------------------------------------------------------------------

    def connected(self, session: Session) -> None:
        """Record the connection. Raises AuditError when it cannot be audited and the audit
        log fails closed."""
        try:
            link = self._links[session.connection_id] = Link(session)
            try:
                self._handle(ConnectionEvent(CONNECTED, link))
            except AuditError:
                self._links.pop(session.connection_id, None)
                self._handle(ConnectionEvent(REFUSED, link))
                raise
        except AuditError:
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def _attach(self, session: Session) -> Link:
        """A session first seen in a statement (given to the observer directly)."""
        link = self._links[session.connection_id] = Link(session)
        self._handle(ConnectionEvent(ATTACHED, link))
        return link

    def disconnected(self, session: Session) -> None:
        """Record the disconnection. Never raises: an audit failure here is counted (the
        connection is closed either way)."""
        try:
            link = self._links.pop(session.connection_id, None)
            if link is not None:
                self._handle(ConnectionEvent(DISCONNECTED, link))
        except AuditError as error:
            self._failed("audit", error)
        except Exception as error:  # never into the query
            self._failed("observer", error)

    # -- statements (the hot path) --------------------------------------------------------

    def denied(self, session: Session, sql: str, decision: Decision) -> None:
        """Count, record and trace the denial. Raises AuditError when it cannot be audited
        and the audit log fails closed."""
        try:
            record = DenialRecord(session, sql, decision, None)
            record.link = self._links.get(session.connection_id) or self._attach(session)
            self._handle(record)
        except AuditError as error:
            error.ran = False  # a denied statement never reaches the database
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def started(self, session: Session, sql: str, decision: Decision, params: Any) -> Token:
        """Take the start time. The token is the statement's record, or a ``Counted`` when
        no part records statements. Raises AuditError, before anything reaches the
        database, while the audit log refuses writes and fails closed."""
        try:
            t0 = perf_counter()
            link = self._links.get(session.connection_id) or self._attach(session)
            if t0 >= self._next_tick:
                self._tick(t0)
            if not self._recording:
                token = link.counted
                token.t0 = t0
                token.decision = decision
                token.sql = sql
                return token
            record = StatementRecord(session, sql, decision, t0, time_ns(), next(self._ids))
            record.link = link
            record.phase = STARTED
            if params is not None and not (isinstance(params, (tuple, list, dict)) and not params):
                record.parameterised = True
                record.params = params
            self._deliver(self._started_route, record)
            return record
        except AuditError:
            raise
        except Exception as error:  # never into the query
            self._failed("observer", error)
            return None

    def finished(
        self, session: Session, token: object, rowcount: int, error: BaseException | None
    ) -> None:
        """Time the statement, count it, and record it (in ``sync`` durability, return once
        its audit event is on disk). Raises AuditError when the event cannot be recorded and
        the audit log fails closed; the statement has run then (``error.ran``)."""
        try:
            end = perf_counter()
            if type(token) is Counted:  # first: the default observer's hot path
                token.duration = end - token.t0
                token.error = error
                token.rowcount = rowcount
                token.phase = FINISHED
                # The loop of _deliver, inline. No part that counts raises AuditError (the
                # audit part is never on a Counted route).
                for handle, name in self._counted_finished:
                    try:
                        handle(token)
                    except Exception as failure:
                        self._failed(name, failure)
            elif type(token) is StatementRecord:
                token.duration = duration = end - token.t0
                token.rowcount = rowcount
                token.error = error
                token.slow = duration >= self._slow_s
                token.phase = FINISHED
                self._deliver(self._finished_route, token)
        except AuditError:
            raise
        except Exception as failure:  # never into the query
            self._failed("observer", failure)

    def fetched(self, session: Session, token: object, rows: int, truncated: bool) -> None:
        """The statement's result is done: count and record its rows. Never raises."""
        try:
            if type(token) is Counted:
                token.rows = rows
                token.truncated = truncated
                token.phase = FETCHED
                for handle, name in self._counted_fetched:  # as in finished
                    try:
                        handle(token)
                    except Exception as failure:
                        self._failed(name, failure)
            elif type(token) is StatementRecord:
                token.rows = rows
                token.truncated = truncated
                token.phase = FETCHED
                self._deliver(self._fetched_route, token)
        except AuditError as error:
            self._failed("audit", error)
        except Exception as error:  # never into the query
            self._failed("observer", error)

    def _notify(self, alert: Alert) -> None:
        """An alert the monitor raised: an event for the other parts (the audit log records
        it). A failure is the audit log's, never the statement's."""
        try:
            self._handle(alert)
        except AuditError as error:
            self._failed("audit", error)

    # -- sandboxes ------------------------------------------------------------------------

    def record(self, event: SandboxEvent) -> None:
        """A step of a sandbox's life, to each part that acts on it (its ``on_event``, then
        the audit log). Never raises into the sandbox: a failing part, a fail-closed audit
        log too, is counted and logged (the step has happened either way)."""
        for part in self._routes[type(event)]:
            try:
                part.handle(event)
            except Exception as error:  # AuditError included
                self._failed(part.name, error, event)

    # -- reading and the rest -------------------------------------------------------------

    def metrics(self, session: Session) -> dict[str, Any]:
        """The connection's metrics, its agent's under ``agent``, health under ``observer``."""
        result: dict[str, Any] = {}
        link = self._links.get(session.connection_id)
        monitor = self.monitor
        try:
            if monitor is not None and link is not None and link.stats is not None:
                result.update(monitor.metrics(link.stats))
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
        for part in self.parts:
            part.flush(timeout)

    def close(self) -> None:
        """Record what is held back, close the parts and hand back the shared ones.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.at_exit()
        for part in self.parts:
            try:
                part.close()
            except Exception:
                logger.exception("closing the %s part failed", part.name)
        for release in self._release:
            try:
                release()
            except Exception:
                logger.exception("releasing %r failed", release)
        lifecycle.unregister(self, lifecycle.OBSERVERS)

    def at_exit(self) -> None:
        """Record every statement still waiting for its rows."""
        try:
            self._handle(CLOSING)
        except AuditError as error:
            self._failed("audit", error)

    def _failed(self, part: str, error: BaseException, event: SandboxEvent | None = None) -> None:
        count = self.failures[part] = self.failures.get(part, 0) + 1
        if count == 1 or count % 1000 == 0:
            if event is None:
                logger.error(
                    "sqlfence %s failed (%d times): %r", part, count, error, exc_info=error
                )
            else:
                logger.error(
                    "sandbox %s: the %s part failed (%d times) on %s: %r",
                    event.sandbox, part, count, event.event_type, error, exc_info=error,
                )  # fmt: skip


FanoutObserver = Pipeline
"""The name this observer had before it was a pipeline of parts."""
