"""A sandbox's numbers: its connections' counters summed, whether resources are read, and
the readings fed to its monitor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlfence.observe.monitor import RESOURCES, Monitor
from sqlfence.observe.settings import MonitoringOption, resolve_monitoring

if TYPE_CHECKING:
    from sqlfence.proxy.connection import GuardedConnection

RESOURCE_INTERVAL_S = 5.0
# The monitor's threshold fields for resource readings (alert_on_cpu_percent, ...).
_RESOURCE_ALERTS = tuple(dict.fromkeys(threshold for _, threshold in RESOURCES.values()))


def watches_resources(monitoring: MonitoringOption) -> bool:
    """True when the monitoring settings alert on a resource reading."""
    resolved = resolve_monitoring(monitoring)
    settings = resolved.settings if isinstance(resolved, Monitor) else resolved
    return any(getattr(settings, key) is not None for key in _RESOURCE_ALERTS)


def report_resources(
    connections: Sequence[GuardedConnection], container: Mapping[str, Any], size: int, sandbox: str
) -> None:
    """Feed a sandbox's resource readings (its container's, and ``size`` bytes on disk) to
    its monitor, through one of its connections, whose rules (alert_on_cpu_percent...) alert."""
    if not connections:
        return
    connection = connections[0]
    report = getattr(connection._observer, "report_resource", None)
    if report is None:
        return
    readings = {
        "cpu_percent": container.get("cpu_percent"),
        "memory_mb": container.get("memory_used_mb"),
        "disk_mb": size / (1024 * 1024),
    }
    for kind, value in readings.items():
        if isinstance(value, (int, float)):
            report(kind, float(value), session=connection.session, sandbox=sandbox)


def add_numbers(total: dict[str, float], metrics: Mapping[str, Any]) -> None:
    """Add the counters of ``metrics`` (one connection's) into ``total``."""
    for key, value in metrics.items():
        # Counters add up across connections; averages and percentiles do not.
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
