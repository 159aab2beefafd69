"""What is recorded: the audit log, live metrics and alerts, OpenTelemetry, and the one
observer the guarded cursor calls, a pipeline handing each event to the three."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlfence.lazy import exports

# ``verify`` is a module of this package and the function it exports: imported here, so that
# the name is the function (a submodule imported later would otherwise shadow a lazy name).
from sqlfence.observe.verify import VerifyResult, verify

if TYPE_CHECKING:  # imported on first use: sqlfence.observe.events alone stays cheap
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

_LATER = {
    "Alert": "sqlfence.observe.alerts",
    "AuditLog": "sqlfence.observe.audit",
    "AuditEvent": "sqlfence.observe.events",
    "build_observer": "sqlfence.observe.fanout",
    "Monitor": "sqlfence.observe.monitor",
    "Observer": "sqlfence.observe.observer",
    "Session": "sqlfence.observe.observer",
    "ObserverPart": "sqlfence.observe.parts",
    "FanoutObserver": "sqlfence.observe.pipeline",
    "Pipeline": "sqlfence.observe.pipeline",
    "export_events": "sqlfence.observe.query",
    "query_events": "sqlfence.observe.query",
    "AuditSettings": "sqlfence.observe.settings",
    "MonitorSettings": "sqlfence.observe.settings",
    "TelemetrySettings": "sqlfence.observe.settings",
    "Telemetry": "sqlfence.observe.telemetry",
}
__getattr__, __dir__ = exports(__name__, globals(), _LATER)

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
