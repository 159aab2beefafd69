"""Building the observer the cursor calls (``build_observer``) from ``connect()``'s
keyword arguments: the pipeline of audit, monitor and telemetry parts (``pipeline.py``).

Connections with equal settings share one audit log, one monitor and one telemetry worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.observer import NULL_OBSERVER, Observer
from sqlfence.observe.pipeline import FanoutObserver, Pipeline
from sqlfence.observe.settings import (
    AuditOption,
    AuditSettings,
    MonitoringOption,
    MonitorSettings,
    TelemetryOption,
    TelemetrySettings,
    resolve_audit,
    resolve_monitoring,
    resolve_telemetry,
)
from sqlfence.observe.steps import Part
from sqlfence.observe.telemetry import Telemetry

__all__ = ["FanoutObserver", "Pipeline", "build_observer"]


_P = TypeVar("_P", Monitor, Telemetry)
_shared_lock = threading.Lock()
_monitors: dict[MonitorSettings, list[Any]] = {}
_telemetries: dict[TelemetrySettings, list[Any]] = {}


def build_observer(
    audit: AuditOption = None,
    monitoring: MonitoringOption = None,
    telemetry: TelemetryOption = True,
    parts: Iterable[Part] = (),
) -> Observer:
    """The observer for one connection (or one sandbox), from ``connect()``'s keyword
    arguments, with ``parts`` of the caller's own (a sandbox's ``CallbackPart``...) before
    the audit log's.

    Each option takes what ``sqlfence.observe.settings`` declares for it (``resolve_audit``,
    ``resolve_monitoring``, ``resolve_telemetry`` say how it is read): ``audit`` is off by
    default, monitoring and telemetry on. An ``AuditLog``, ``Monitor`` or ``Telemetry`` is
    used as is and not closed. Connections with equal settings share one audit log, one
    monitor (so agent metrics span connections) and one telemetry worker. All three are
    resolved before anything is opened: TypeError for a shape an option does not take,
    pydantic's ValidationError (a ValueError) for unknown or invalid keys. With no part
    at all, the null observer (``NULL_OBSERVER``).
    """
    extra = tuple(parts)
    wanted_audit = resolve_audit(audit)
    wanted_monitor = resolve_monitoring(monitoring)
    wanted_telemetry = resolve_telemetry(telemetry)
    releases: list[Callable[[], None]] = []
    audit_log = _audit(wanted_audit, releases)
    try:
        monitor = _shared_part(wanted_monitor, Monitor, _monitors, releases)
        tel = _shared_part(wanted_telemetry, Telemetry, _telemetries, releases)
    except BaseException:
        for release in releases:
            release()
        raise
    if audit_log is None and monitor is None and tel is None and not extra:
        return NULL_OBSERVER
    return Pipeline(
        audit=audit_log, monitor=monitor, telemetry=tel, parts=extra, release=tuple(releases)
    )


def _audit(wanted: AuditSettings | AuditLog, releases: list[Callable[[], None]]) -> AuditLog | None:
    if isinstance(wanted, AuditLog):
        return wanted
    if not wanted.enabled:
        return None
    log = AuditLog.shared(wanted)
    releases.append(log.release)
    return log


def _shared_part(
    wanted: MonitorSettings | TelemetrySettings | _P,
    part_type: type[_P],
    registry: dict[Any, list[Any]],
    releases: list[Callable[[], None]],
) -> _P | None:
    """The part given, or the one shared by every connection with these settings."""
    if isinstance(wanted, part_type):
        return wanted
    settings: Any = wanted
    if not settings.enabled:
        return None
    with _shared_lock:
        entry = registry.get(settings)
        if entry is None:
            entry = registry[settings] = [part_type(settings), 0]
        entry[1] += 1
    part: _P = entry[0]

    def release() -> None:
        with _shared_lock:
            entry[1] -= 1
            if entry[1] > 0 or registry.get(settings) is not entry:
                return
            del registry[settings]
        part.close()

    releases.append(release)
    return part
