"""A sandbox's numbers: its connections' counters summed, and whether resources are read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlfence.observe.monitor import RESOURCES

RESOURCE_INTERVAL_S = 5.0
# The monitor's threshold fields for resource readings (alert_on_cpu_percent, ...).
_RESOURCE_ALERTS = tuple(dict.fromkeys(threshold for _, threshold in RESOURCES.values()))


def watches_resources(monitoring: Any) -> bool:
    """True when the monitoring settings alert on a resource reading."""
    if isinstance(monitoring, Mapping):
        return any(monitoring.get(key) is not None for key in _RESOURCE_ALERTS)
    settings = getattr(monitoring, "settings", monitoring)  # a Monitor, or its settings
    return any(getattr(settings, key, None) is not None for key in _RESOURCE_ALERTS)


def add_numbers(total: dict[str, float], metrics: Mapping[str, Any]) -> None:
    """Add the counters of ``metrics`` (one connection's) into ``total``."""
    for key, value in metrics.items():
        # Counters add up across connections; averages and percentiles do not.
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
