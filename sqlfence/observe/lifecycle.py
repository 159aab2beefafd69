"""The stages of observe/ in the package's exit registry (``sqlfence.exits``).

Observers, then telemetry, then alerts, then audit logs: they close after connections and
sandboxes, so a ``disconnect`` or ``sandbox.destroyed`` written at exit is still recorded.
"""

from __future__ import annotations

from sqlfence.exits import ALERTS, AUDIT, OBSERVERS, TELEMETRY, Flushable, register, unregister

__all__ = ["ALERTS", "AUDIT", "OBSERVERS", "TELEMETRY", "Flushable", "register", "unregister"]
