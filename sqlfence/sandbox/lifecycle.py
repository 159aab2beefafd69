"""Lifecycle events of sandboxes.

Every step (created, connected, paused, snapshot, quota, destroyed ...) becomes one event
dict. It goes to the caller's ``on_event`` callable and, when ``audit`` is an
``sqlfence.observe.audit.AuditLog``, to ``AuditLog.emit`` as a ``sandbox.*`` event.
Sandboxes still alive at interpreter exit are destroyed in the ``SANDBOXES`` stage of
``sqlfence.exits``, before the audit log closes, so these events are still recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

EventSink = Callable[[dict[str, Any]], None]
# Events that record a refusal or a failure rather than a step that went well.
_FAILED = {"quota_exceeded", "connection_refused", "snapshot_refused", "container_failed"}
_CORE = ("event", "at", "agent_id", "tenant", "sandbox", "error")


def emit(sinks: tuple[EventSink, ...], event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Build the event and hand it to every sink; a failing sink never breaks the sandbox."""
    payload = {"event": f"sandbox.{event}", "at": time.time(), **fields}
    for sink in sinks:
        with contextlib.suppress(Exception):
            sink(payload)
    return payload


def audit_sink(audit: Any) -> EventSink | None:
    """A sink writing lifecycle events to ``audit`` when it is an ``AuditLog`` (has ``emit``)."""
    write = getattr(audit, "emit", None)
    if not callable(write):
        return None

    def sink(event: dict[str, Any]) -> None:
        kind = event["event"].removeprefix("sandbox.")
        details = {key: value for key, value in event.items() if key not in _CORE}
        write(
            event["event"],
            "error" if kind in _FAILED else "ok",
            agent_id=event.get("agent_id"),
            tenant=event.get("tenant"),
            sandbox=event.get("sandbox"),
            error=event.get("error"),
            details=details,
        )

    return sink
