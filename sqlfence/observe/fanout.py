"""Building the observer the cursor calls (``build_observer``) from ``connect()``'s
keyword arguments: the pipeline of audit, monitor and telemetry parts (``pipeline.py``).

Connections with equal settings share one audit log, one monitor and one telemetry worker.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from sqlfence.observe.audit import AuditLog
from sqlfence.observe.monitor import Monitor
from sqlfence.observe.observer import NULL_OBSERVER, Observer
from sqlfence.observe.pipeline import FanoutObserver, Pipeline
from sqlfence.observe.settings import AuditSettings, MonitorSettings, TelemetrySettings
from sqlfence.observe.telemetry import Telemetry

__all__ = ["FanoutObserver", "Pipeline", "build_observer"]


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
    return Pipeline(audit=audit_log, monitor=monitor, telemetry=tel, release=tuple(releases))


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
