"""Live metrics per connection, agent and sandbox, and the alert rules.

A connection's counters are updated on its own thread without a lock (a PEP 249 connection
is used by one thread at a time); agent and sandbox metrics are summed from their
connections when read. Latency percentiles come from a fixed-size log histogram, so memory
stays bounded whatever the number of statements. Alerts go to an ``AlertDispatcher``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlfence.observe.alerts import (
    DENIAL_BURST,
    ERROR_RATE,
    RESOURCE,
    SLOW_QUERY,
    Alert,
    AlertDispatcher,
    query_logger,
)
from sqlfence.observe.latency import DEFERRED, LatencyHistogram
from sqlfence.observe.masking import mask_literals
from sqlfence.observe.settings import MonitorSettings

if TYPE_CHECKING:
    from sqlfence.observe.observer import Session
    from sqlfence.policies.engine import Decision

Notify = Callable[[Alert], None]

# report_resource kind -> (metric name, MonitorSettings threshold field)
RESOURCES: dict[str, tuple[str, str]] = {
    "cpu_percent": ("cpu_percent", "alert_on_cpu_percent"),
    "memory_mb": ("memory_used_mb", "alert_on_memory_mb"),
    "memory_used_mb": ("memory_used_mb", "alert_on_memory_mb"),
    "memory_percent": ("memory_percent", "alert_on_memory_percent"),
    "disk_mb": ("disk_used_mb", "alert_on_disk_mb"),
    "disk_used_mb": ("disk_used_mb", "alert_on_disk_mb"),
    "disk_percent": ("disk_percent", "alert_on_disk_percent"),
}


class ConnectionStats:
    """The counters of one connection (or the sum of several)."""

    __slots__ = (
        "denied",
        "errors",
        "latency",
        "rows_affected",
        "rows_returned",
        "session",
        "slow",
        "truncated",
        "window",
        "window_errors",
        "window_position",
    )

    def __init__(self, session: Session | None = None, window: int = 0) -> None:
        self.session = session
        self.denied = 0
        self.errors = 0
        self.slow = 0
        self.rows_returned = 0
        self.rows_affected = 0
        self.truncated = 0
        self.latency = LatencyHistogram()
        self.window = bytearray(window)  # 1 per failed statement among the last ``window``
        self.window_errors = 0
        self.window_position = 0

    def add(self, other: ConnectionStats) -> None:
        """Add ``other``'s counts to these."""
        self.denied += other.denied
        self.errors += other.errors
        self.slow += other.slow
        self.rows_returned += other.rows_returned
        self.rows_affected += other.rows_affected
        self.truncated += other.truncated
        self.latency.merge(other.latency)

    def to_metrics(self) -> dict[str, Any]:
        """The design report's metric keys and a few more."""
        latency = self.latency.settled()
        return {
            "queries_executed": latency.count,
            "denied": self.denied,
            "errors": self.errors,
            "slow_queries": self.slow,
            "rows_returned": self.rows_returned,
            "rows_affected": self.rows_affected,
            "truncated_results": self.truncated,
            "avg_query_time_ms": round(latency.mean() * 1000, 3),
            "p50_ms": round(latency.percentile(50) * 1000, 3),
            "p95_ms": round(latency.percentile(95) * 1000, 3),
            "p99_ms": round(latency.percentile(99) * 1000, 3),
            "max_query_time_ms": round(latency.maximum * 1000, 3),
        }


class _Scope:
    """An agent or a sandbox: its live connections, the totals of closed ones, resources."""

    __slots__ = ("closed", "live", "resources")

    def __init__(self) -> None:
        self.live: set[ConnectionStats] = set()
        self.closed = ConnectionStats()
        self.resources: dict[str, float] = {}

    def total(self) -> ConnectionStats:
        total = ConnectionStats()
        total.add(self.closed)
        for stats in list(self.live):
            total.add(stats)
        return total


class Monitor:
    """Counts, times and judges statements; raises alerts. Thread-safe across connections."""

    def __init__(self, settings: MonitorSettings | None = None) -> None:
        self.settings = settings = settings if settings is not None else MonitorSettings()
        self.dispatcher = AlertDispatcher(
            settings.callbacks,
            settings.webhook_urls,
            headers=settings.webhook_headers,
            timeout=settings.webhook_timeout_s,
            retries=settings.webhook_retries,
            backoff=settings.webhook_backoff_s,
            capacity=settings.queue_size,
        )
        self._slow_s = settings.slow_threshold_ms / 1000
        alert_ms = settings.alert_on_slow_query_ms
        self._alert_slow_s = None if alert_ms is None else alert_ms / 1000
        self._error_window = settings.error_rate_window if settings.alert_on_error_rate else 0
        self._log_all = settings.log_all_queries
        self._watch = bool(self._error_window or self._log_all)  # every statement is judged
        self._lock = threading.Lock()
        self._agents: dict[str, _Scope] = {}
        self._sandboxes: dict[str, _Scope] = {}
        self._denials: dict[tuple[str, Any], deque[float]] = {}
        self._last_alert: dict[tuple[str, Any], float] = {}
        self._users = 0

    # -- connections ----------------------------------------------------------------------

    def attach(self, session: Session) -> ConnectionStats:
        """Start counting for a new connection."""
        stats = ConnectionStats(session, self._error_window)
        with self._lock:
            for scope in self._scopes(session, create=True):
                scope.live.add(stats)
        return stats

    def detach(self, stats: ConnectionStats) -> None:
        """The connection closed: its counts stay in its agent's and sandbox's totals."""
        assert stats.session is not None
        with self._lock:
            for scope in self._scopes(stats.session, create=True):
                if stats in scope.live:
                    scope.live.discard(stats)
                    scope.closed.add(stats)
            # Forget the connection's own alert state (agents' and sandboxes' stays).
            connection = ("connection", stats.session.connection_id)
            self._denials.pop(connection, None)
            for kind in (SLOW_QUERY, ERROR_RATE, DENIAL_BURST):
                self._last_alert.pop((kind, connection), None)

    def _scopes(self, session: Session, *, create: bool) -> list[_Scope]:
        """The agent's and the sandbox's scope of ``session``, in that order."""
        found = []
        for table, name in ((self._agents, session.agent_id), (self._sandboxes, session.sandbox)):
            if name is None:
                continue
            scope = table.get(name)
            if scope is None and create:
                scope = table[name] = _Scope()
            if scope is not None:
                found.append(scope)
        return found

    # -- events (the query's thread) ------------------------------------------------------

    def statement(
        self,
        stats: ConnectionStats,
        duration: float,
        error: BaseException | None,
        decision: Decision,
        sql: str,
        rowcount: int = -1,
        notify: Notify | None = None,
    ) -> bool:
        """Count a statement the driver ran. Returns True when it was slow.

        ``notify`` is called with each alert raised (the observer records it in its audit log).
        """
        # LatencyHistogram.defer, inline: a duration costs an append here; the histogram
        # buckets DEFERRED of them at once.
        deferred = stats.latency.deferred
        deferred.append(duration)
        if len(deferred) >= DEFERRED:
            stats.latency.settle()
        if error is not None:
            stats.errors += 1
        elif rowcount > 0 and decision.facts.writes:
            stats.rows_affected += rowcount
        if duration < self._slow_s and not self._watch:
            return False
        return self._judge(stats, duration, error, decision, sql, notify)

    def _judge(
        self,
        stats: ConnectionStats,
        duration: float,
        error: BaseException | None,
        decision: Decision,
        sql: str,
        notify: Notify | None,
    ) -> bool:
        """A slow statement, or a statement while the error rate or the query log watch."""
        slow = duration >= self._slow_s
        if slow:
            stats.slow += 1
            if self._alert_slow_s is not None and duration >= self._alert_slow_s:
                self._slow_alert(stats, duration, decision, sql, notify)
        if self._error_window:
            self._error_rate(stats, error is not None, notify)
        if self._log_all and query_logger.isEnabledFor(logging.INFO):
            # Checked here, as logging itself would: a line nobody logs is never formatted
            # nor queued.
            self._log_query(stats, duration, error, decision)
        return slow

    def fetched(self, stats: ConnectionStats, rows: int, truncated: bool) -> None:
        """Count rows handed to the caller."""
        stats.rows_returned += rows
        if truncated:
            stats.truncated += 1

    def denial(
        self, stats: ConnectionStats, decision: Decision, sql: str, notify: Notify | None = None
    ) -> None:
        """Count a denied statement; a burst of them raises an alert."""
        stats.denied += 1
        threshold = self.settings.alert_on_denials
        if threshold is None:
            return
        session = stats.session
        assert session is not None
        key = (
            ("agent", session.agent_id)
            if session.agent_id
            else ("connection", session.connection_id)
        )
        now = time.monotonic()
        horizon = now - self.settings.denial_window_s
        with self._lock:
            times = self._denials.setdefault(key, deque())
            times.append(now)
            while times and times[0] < horizon:
                times.popleft()
            count = len(times)
        if count >= threshold:
            self.raise_alert(
                Alert(
                    DENIAL_BURST,
                    f"{count} statements denied within {self.settings.denial_window_s:g} s"
                    f"; the last: {_last_reason(decision)}",
                    value=count,
                    threshold=threshold,
                    details=_statement_details(decision, sql),
                    **_who(session),
                ),
                key,
                notify,
            )

    # -- resources (fed by the sandbox layer) ---------------------------------------------

    def report_resource(
        self,
        kind: str,
        value: float,
        *,
        session: Session | None = None,
        agent_id: str | None = None,
        sandbox: str | None = None,
        notify: Notify | None = None,
    ) -> None:
        """Record a resource reading (``cpu_percent``, ``memory_mb``, ``memory_percent``,
        ``disk_mb``, ``disk_percent``) for a sandbox or agent; alert over the threshold.

        Raises ValueError for an unknown kind.
        """
        if kind not in RESOURCES:
            raise ValueError(f"unknown resource {kind!r}; use one of {', '.join(RESOURCES)}")
        metric, threshold_field = RESOURCES[kind]
        if session is not None:
            agent_id = agent_id or session.agent_id
            sandbox = sandbox or session.sandbox
        with self._lock:
            table, name = (self._sandboxes, sandbox) if sandbox else (self._agents, agent_id)
            if name is not None:
                table.setdefault(name, _Scope()).resources[metric] = value
        threshold = getattr(self.settings, threshold_field)
        if threshold is not None and value >= threshold:
            self.raise_alert(
                Alert(
                    RESOURCE,
                    f"{metric} is {value:g}, over the limit of {threshold:g}",
                    severity="critical" if value >= threshold * 1.2 else "warning",
                    value=value,
                    threshold=threshold,
                    agent_id=agent_id,
                    sandbox=sandbox,
                    tenant=session.tenant if session is not None else None,
                    details={"resource": metric},
                ),
                (metric, sandbox or agent_id),
                notify,
            )

    # -- reading --------------------------------------------------------------------------

    def metrics(self, stats: ConnectionStats) -> dict[str, Any]:
        """A connection's metrics plus the latest resource readings of its sandbox/agent."""
        result = stats.to_metrics()
        if stats.session is not None:
            with self._lock:
                for scope in reversed(self._scopes(stats.session, create=False)):
                    result.update(scope.resources)
        return result

    def agent_metrics(self, agent_id: str) -> dict[str, Any]:
        """Metrics summed over every connection (open or closed) of ``agent_id``."""
        return self._scope_metrics(self._agents, agent_id)

    def sandbox_metrics(self, sandbox: str) -> dict[str, Any]:
        """Metrics summed over every connection of ``sandbox``, with its resource readings."""
        return self._scope_metrics(self._sandboxes, sandbox)

    def _scope_metrics(self, table: dict[str, _Scope], name: str) -> dict[str, Any]:
        with self._lock:
            scope = table.get(name)
            if scope is None:
                return ConnectionStats().to_metrics()
            result = scope.total().to_metrics()
            result.update(scope.resources)
        return result

    # -- alerts ---------------------------------------------------------------------------

    def raise_alert(self, alert: Alert, key: Any = None, notify: Notify | None = None) -> bool:
        """Deliver ``alert`` unless the same one fired within the cooldown. True if sent."""
        now = time.monotonic()
        cooldown_key = (alert.kind, key)
        with self._lock:
            last = self._last_alert.get(cooldown_key)
            if last is not None and now - last < self.settings.alert_cooldown_s:
                return False
            self._last_alert[cooldown_key] = now
        if notify is not None:
            notify(alert)
        self.dispatcher.dispatch(alert)
        return True

    def _slow_alert(
        self,
        stats: ConnectionStats,
        duration: float,
        decision: Decision,
        sql: str,
        notify: Notify | None,
    ) -> None:
        session = stats.session
        assert session is not None
        assert self._alert_slow_s is not None
        ms = duration * 1000
        self.raise_alert(
            Alert(
                SLOW_QUERY,
                f"{decision.facts.summary or decision.facts.operation} took {ms:.1f} ms",
                value=round(ms, 3),
                threshold=self._alert_slow_s * 1000,
                details=_statement_details(decision, sql),
                **_who(session),
            ),
            ("connection", session.connection_id),
            notify,
        )

    def _error_rate(self, stats: ConnectionStats, failed: bool, notify: Notify | None) -> None:
        window = stats.window
        position = stats.window_position
        stats.window_errors += failed - window[position]
        window[position] = failed
        stats.window_position = (position + 1) % len(window)
        rate = self.settings.alert_on_error_rate
        if stats.latency.recorded >= len(window) and rate is not None:
            observed = stats.window_errors / len(window)
            if observed >= rate:
                session = stats.session
                assert session is not None
                self.raise_alert(
                    Alert(
                        ERROR_RATE,
                        f"{observed:.0%} of the last {len(window)} statements failed",
                        value=observed,
                        threshold=rate,
                        **_who(session),
                    ),
                    ("connection", session.connection_id),
                    notify,
                )

    def _log_query(
        self,
        stats: ConnectionStats,
        duration: float,
        error: BaseException | None,
        decision: Decision,
    ) -> None:
        session = stats.session
        assert session is not None
        outcome = "error" if error is not None else "ok"
        self.dispatcher.log_query(
            f"agent={session.agent_id} conn={session.connection_id} {outcome} "
            f"{duration * 1000:.3f}ms {decision.facts.summary or decision.facts.operation}"
        )

    # -- lifetime -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued alerts were delivered."""
        return self.dispatcher.flush(timeout)

    def close(self) -> None:
        """Deliver queued alerts and stop the dispatcher."""
        self.dispatcher.close()


def _who(session: Session) -> dict[str, Any]:
    return {
        "agent_id": session.agent_id,
        "tenant": session.tenant,
        "sandbox": session.sandbox,
        "connection_id": session.connection_id,
    }


def _statement_details(decision: Decision, sql: str) -> dict[str, Any]:
    """What an alert says about a statement: never its literals (webhooks leave the host)."""
    facts = decision.facts
    details: dict[str, Any] = {
        "operation": facts.operation,
        "summary": facts.summary,
        "fingerprint": facts.fingerprint,
        "query": mask_literals(sql),
    }
    if decision.rule is not None:
        details["rule"] = decision.rule
    return details


def _last_reason(decision: Decision) -> str:
    """Why the last statement of a burst was denied, as a person reads it (its rule)."""
    if not decision.reasons:
        return "denied"
    reason = decision.reasons[0]
    return f"{reason.message} ({reason.rule})"
