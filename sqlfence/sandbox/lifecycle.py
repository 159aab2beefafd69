"""Lifecycle events of sandboxes, and their cleanup when the interpreter exits.

Every step (created, connected, paused, snapshot, quota, destroyed ...) becomes one event
dict. It goes to the caller's ``on_event`` callable and, when ``audit`` is an
``sqlfence.observe.audit.AuditLog``, to ``AuditLog.emit`` as a ``sandbox.*`` event.
Sandboxes still alive at interpreter exit, or when a SIGTERM arrives and nobody else
handles it, are destroyed; SIGKILL leaves them to the reaper.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

EventSink = Callable[[dict[str, Any]], None]
# Events that record a refusal or a failure rather than a step that went well.
_FAILED = {"quota_exceeded", "connection_refused", "snapshot_refused", "container_failed"}
_CORE = ("event", "at", "agent_id", "tenant", "sandbox", "error")


class Destroyable(Protocol):
    """What exit cleanup needs of a sandbox."""

    def destroy(self) -> None:
        """Remove the sandbox (idempotent)."""
        ...


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


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = threading.Lock()
_done = False


def track(sandbox: Destroyable) -> None:
    """Destroy ``sandbox`` at interpreter exit (and on an unhandled SIGTERM) if still alive."""
    global _done  # noqa: PLW0603 - one process-wide hook, installed once
    _live.add(sandbox)
    with _installed:
        if _done:
            return
        _done = True
        atexit.register(_cleanup)
        _install_sigterm()


def untrack(sandbox: Destroyable) -> None:
    """Forget ``sandbox`` (it was destroyed)."""
    _live.discard(sandbox)


def _cleanup() -> None:
    for sandbox in list(_live):
        with contextlib.suppress(Exception):
            sandbox.destroy()


def _install_sigterm() -> None:
    # Only when nobody chose a handler: turning SIGTERM into SystemExit runs atexit hooks.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        _cleanup()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_sigterm)
