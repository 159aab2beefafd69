"""What is recorded: the audit log, live metrics and alerts, OpenTelemetry, and the one
observer the guarded cursor calls, a pipeline handing each event to the three."""

from __future__ import annotations

from sqlfence.observe.alerts import Alert
from sqlfence.observe.audit import AuditLog
from sqlfence.observe.events import AuditEvent
from sqlfence.observe.fanout import build_observer
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.observer import Observer, Session
from sqlfence.observe.parts import ObserverPart
from sqlfence.observe.pipeline import FanoutObserver, Pipeline
from sqlfence.observe.query import export_events, query_events
from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
from sqlfence.observe.telemetry import Telemetry
from sqlfence.observe.verify import VerifyResult, verify

__all__ = [
    "Alert",
    "AuditEvent",
    "AuditLog",
    "AuditSettings",
    "FanoutObserver",
    "Monitor",
    "MonitorSettings",
    "Observer",
    "ObserverPart",
    "Pipeline",
    "Session",
    "Telemetry",
    "TelemetrySettings",
    "VerifyResult",
    "build_observer",
    "export_events",
    "query_events",
    "verify",
]
