"""The life of a sandbox's namespace: made in an order a crash cannot break, and an event
for each step.

A sandbox is recorded in the registry before its server is placed and its namespace made,
and a failed create undoes what it made before it forgets the record, so whatever a crash
interrupts, ``reap()`` can finish.

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
from dataclasses import replace
from typing import Any

from sqlfence.errors import NothingMade
from sqlfence.observe.settings import AuditOption
from sqlfence.policies.model import Policy
from sqlfence.sandbox.backends.base import Backend, Namespace, backend_for
from sqlfence.sandbox.credentials import CredentialsMissing
from sqlfence.sandbox.registry import Record, Registry
from sqlfence.sandbox.runtimes.base import Placement, PlacementRequest, Runtime, drop_namespace

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


def audit_sink(audit: AuditOption) -> EventSink | None:
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


def make(
    runtime: Runtime, request: PlacementRequest, record: Record, registry: Registry, policy: Policy
) -> tuple[Namespace, Backend, Placement, Record]:
    """Record the sandbox, place it on a server, make its namespace there, record where.

    Raises what the runtime or the backend raised, after undoing what was made.
    """
    registry.put(record)  # first, so a crash from here on is found by the reaper
    try:
        where = runtime.place(request)
    except BaseException:
        registry.remove(record.name)  # a server that half started carries labels for gc
        raise
    database: Backend | None = None
    try:
        database = backend_for(request.kind, request.root, where.admin_url, managed=where.managed)
        namespace = database.create(record.name, request.limits, policy, record.labels)
        record = replace(record, location=namespace.location)
        registry.put(record)
    except BaseException as error:
        _undo(where, database, registry, record.name, error)
        raise
    return namespace, database, where, record


def _undo(
    where: Placement, database: Backend | None, registry: Registry, name: str, error: BaseException
) -> None:
    """After a failed create: drop what it made, then forget the record. A drop that fails
    keeps the record, for gc to try again, unless the create never reached its server."""
    try:
        if database is not None and not isinstance(error, (NothingMade, CredentialsMissing)):
            drop_namespace(where, database, name, ())
        else:
            where.release()
    except Exception:
        return  # the namespace may exist: the record is how gc finds it
    finally:
        if database is not None:
            database.close()
    registry.remove(name)
